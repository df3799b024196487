"""Rounds 2-4 of chapter 12's study (``load_result("ssl_generation_round2")``, ``..._round3``, ...)
in words and one figure.

``experiments/ssl_generation.py --round R`` registered its questions, controls and seeds before
its first run, trained every arm for every seed, and wrote the verdicts (``--analyse``) into the
file's ``"analysis"``. Round 1 could not answer: one of its positive controls could not pass by
design. Round 2 asks the conditioning questions on *coverage* (the ``diversity`` score, Naeem
et al. 2020: the share of real faces with a generated face among their nearest neighbours), with
a control that can pass there; round 3 asks representation alignment (with the rotation
encoder) and the dispersive loss on the Frechet distance, under the control that fits it (twice
the steps); round 4 asks REPA and self-guidance with 500 training faces, with twelve times the
faces as its control. Everything here reads the file, so a hand-made dict of the same shape tests it:

- :func:`round_table`: every arm (conditional ones at w = 1), the round's primary score with its
  interval and the other scores;
- :func:`round_verdicts`: the controls, the family (Holm), the secondary contrasts;
- :func:`round_finding`: the verdicts as sentences, "cannot answer" when a positive control failed;
- :func:`plot_tradeoff`: fidelity against coverage over the guidance scale (round 2).
"""
from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["SCORES", "ARMS", "round_table", "round_verdicts", "round_finding", "plot_tradeoff"]

# score key in the file -> (name in the sentences, decimals)
SCORES = {"diversity": ("coverage", 3), "fidelity": ("fidelity", 3), "frechet": ("Frechet", 1),
          "kid": ("KID (x 1e4)", 0), "diversity_rotation": ("coverage in the rotation encoder's features", 3),
          "frechet_rotation": ("Frechet in the rotation encoder's features", 2)}
# arms as the analysis summary names them (conditional arms at w = 1) -> what they are
ARMS = {"none": "none (unconditional)", "none_2x": "none, twice the steps", "none_6000": "none, N = 6000 faces",
        "attributes w=1": "true attributes", "clusters w=1": "clusters, SimCLR",
        "clusters_random w=1": "clusters, random encoder", "rcg w=1": "RCG, generated reps",
        "rcg (real representations) w=1": "RCG, real reps", "repa_rotation": "REPA, rotation encoder",
        "repa_simclr": "REPA, SimCLR encoder", "repa_random": "REPA, random encoder", "dispersive": "dispersive loss"}
CANNOT_ANSWER = "cannot answer"


def _score(result: dict, name: str) -> str:
    reg = result["registration"]
    contrast = {**reg["primary_family"], **reg["controls"], **reg["secondary"]}[name]
    return contrast[2] if len(contrast) > 2 else "frechet"


def _primary(result: dict) -> str:
    """The round's primary score: the one its questions are asked on."""
    return _score(result, next(iter(result["registration"]["primary_family"])))


def round_table(result: dict) -> str:
    """One row per arm (conditional ones at w = 1), means over the seeds: the primary score with
    its 95% interval first, then coverage, fidelity, Frechet and KID (those not primary)."""
    summary, primary = result["analysis"]["summary"], _primary(result)
    others = [k for k in ("diversity", "fidelity", "frechet", "kid") if k != primary]
    head = f"{SCORES[primary][0]} (95% CI)"
    lines = [f"{'arm':28}{head:>26}" + "".join(f"{SCORES[k][0].split(' ')[0]:>10}" for k in others)]
    for key, label in ARMS.items():
        s = summary.get(key)
        if s is None:
            continue
        c, places = s[primary], SCORES[primary][1]
        lines.append(f"{label:28}{c['mean']:13.{places}f} [{c['ci'][0]:.{places}f}, {c['ci'][1]:.{places}f}]"
                     + "".join(f"{s[k]['mean']:10.{SCORES[k][1]}f}" if k in s else f"{'':10}" for k in others))
    return "\n".join(lines)


def _line(result: dict, name: str, c: dict, *, verdict: bool = True) -> str:
    label, places = SCORES[_score(result, name)]
    text = (f"{c['diff']:+.{places}f} {label}, 95% CI [{c['low']:+.{places}f}, {c['high']:+.{places}f}], "
            f"p {c['p']:.3g}" + (f", Holm {c['p_adjusted']:.3g}" if c["p_adjusted"] != c["p"] else ""))
    return f"  {name}\n      {c['verdict'] + ': ' if verdict else ''}{text}"


def round_verdicts(result: dict) -> str:
    """The controls, the family and the secondary contrasts as printed lines (a difference is
    the first arm minus the second; coverage and fidelity: higher is better; Frechet and KID:
    lower)."""
    a = result["analysis"]
    lines = ["controls:"] + [_line(result, n, c) for n, c in a["controls"].items()]
    lines += ["questions, one Holm family" + ("" if a["answered"] else ": CANNOT ANSWER, a positive control "
                                              "failed") + ":"]
    lines += [_line(result, n, c) for n, c in a["family"].items()]
    lines += ["secondary (each on its own, intervals to read, no claims):"]
    lines += [_line(result, n, c, verdict=False) for n, c in a["secondary"].items()]
    return "\n".join(lines)


def _interval(result: dict, name: str, c: dict) -> str:
    label, places = SCORES[_score(result, name)]
    return f"{c['diff']:+.{places}f} {label} [{c['low']:+.{places}f}, {c['high']:+.{places}f}]"


def round_finding(result: dict) -> str:
    """What a round found, in sentences generated from its verdicts."""
    a, reg = result["analysis"], result["registration"]
    n = len(reg["seeds"])
    out = []
    for name, c in a["controls"].items():
        kind, _, what = name.partition(": ")
        word = {"positive": "Positive control", "negative": "Negative control"}.get(kind, "Control")
        out.append(f"{word} ({what}): {c['verdict']}, {_interval(result, name, c)}.")
    if not a["answered"]:
        out.append(f"So, by the rule registered before the run, this round cannot answer its {len(a['family'])} "
                   "questions: a measurement that does not see a known effect says nothing about smaller ones.")
        return " ".join(out)
    out.append("The measurement can see the known effect, so the questions are answered:")
    for name, c in a["family"].items():
        words = {"better": "yes", "worse": "no, it is worse",
                 "no clear difference": f"no clear difference at {n} seeds"}.get(c["verdict"], c["verdict"])
        out.append(f"{name}: {words} ({_interval(result, name, c).replace(' [', ', 95% CI [')}, "
                   f"Holm p {c['p_adjusted']:.3g}).")
    return "\n".join(out)


def plot_tradeoff(result: dict, ax=None):
    """Fidelity (density) against coverage for each conditional arm over its guidance scales,
    and the unconditional model as one point. Returns the axes."""
    summary = result["analysis"]["summary"]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for arm, marker in (("attributes", "s-"), ("clusters", "o-"), ("clusters_random", "v--"), ("rcg", "^-")):
        rows = sorted((float(k.split("w=")[1]), s) for k, s in summary.items() if k.startswith(arm + " w="))
        if not rows:
            continue
        xs, ys = [s["diversity"]["mean"] for _, s in rows], [s["fidelity"]["mean"] for _, s in rows]
        ax.plot(xs, ys, marker, label=arm)
        for (w, _), x, y in zip(rows, xs, ys):
            ax.annotate(f"w={w:g}", (x, y), fontsize=7)
    none = summary["none"]
    ax.plot([none["diversity"]["mean"]], [none["fidelity"]["mean"]], "k*", markersize=12, label="none")
    ax.set(xlabel="coverage (diversity)", ylabel="fidelity (density)",
           title="round 2: mean over seeds; real faces score about 1 on both")
    ax.legend(fontsize=8)
    return ax
