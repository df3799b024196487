"""Round 2 of chapter 12's study (``load_result("ssl_generation_round2")``) in words and one figure.

``experiments/ssl_generation.py --round 2`` registered its questions, controls and seeds before
its first run, trained every arm for every seed, and wrote the verdicts (``--analyse``) into the
file's ``"analysis"``. Round 1 could not answer: its positive control could not pass by design.
Round 2 asks the conditioning questions on *coverage* (the ``diversity`` score, Naeem et al.
2020: the share of real faces with a generated face among their nearest neighbours), with
a control that can pass there. Everything here reads the file, so a hand-made dict of the same
shape tests it:

- :func:`round2_table`: every arm at w = 1, the primary score with its interval and the others;
- :func:`round2_verdicts`: the controls, the family (Holm), the secondary contrasts;
- :func:`round2_finding`: the verdicts as sentences, "cannot answer" when the control failed;
- :func:`plot_tradeoff`: fidelity against coverage over the guidance scale.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["SCORES", "ARMS", "round2_table", "round2_verdicts", "round2_finding", "plot_tradeoff"]

# score key in the file -> (name in the sentences, decimals)
SCORES = {"diversity": ("coverage", 3), "fidelity": ("fidelity", 3), "frechet": ("Frechet", 1),
          "diversity_rotation": ("coverage in the rotation encoder's features", 3)}
# arms as the analysis summary names them at w = 1 -> what they are
ARMS = {"none": "none (unconditional)", "attributes w=1": "true attributes",
        "clusters w=1": "clusters, SimCLR", "clusters_random w=1": "clusters, random encoder",
        "rcg w=1": "RCG, generated reps", "rcg (real representations) w=1": "RCG, real reps"}
CANNOT_ANSWER = "cannot answer"


def _score(result: dict, name: str) -> str:
    reg = result["registration"]
    contrast = {**reg["primary_family"], **reg["controls"], **reg["secondary"]}[name]
    return contrast[2] if len(contrast) > 2 else "frechet"


def round2_table(result: dict) -> str:
    """One row per arm at w = 1: coverage with its 95% interval (the primary score), fidelity,
    Frechet and coverage in the second feature space, means over the seeds."""
    summary = result["analysis"]["summary"]
    lines = [f"{'arm':28}{'coverage (95% CI)':>24}{'fidelity':>10}{'Frechet':>9}{'coverage, rot.':>16}"]
    for key, label in ARMS.items():
        s = summary.get(key)
        if s is None:
            continue
        c = s["diversity"]
        rot = s.get("diversity_rotation", {}).get("mean", float("nan"))
        lines.append(f"{label:28}{c['mean']:11.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]"
                     f"{s['fidelity']['mean']:10.3f}{s['frechet']['mean']:9.1f}{rot:16.3f}")
    return "\n".join(lines)


def _line(result: dict, name: str, c: dict, *, verdict: bool = True) -> str:
    label, places = SCORES[_score(result, name)]
    text = (f"{c['diff']:+.{places}f} {label}, 95% CI [{c['low']:+.{places}f}, {c['high']:+.{places}f}], "
            f"p {c['p']:.3g}" + (f", Holm {c['p_adjusted']:.3g}" if c["p_adjusted"] != c["p"] else ""))
    return f"  {name}\n      {c['verdict'] + ': ' if verdict else ''}{text}"


def round2_verdicts(result: dict) -> str:
    """The controls, the family and the secondary contrasts as printed lines (a difference is
    the first arm minus the second; coverage and fidelity: higher is better; Frechet: lower)."""
    a = result["analysis"]
    lines = ["control:"] + [_line(result, n, c) for n, c in a["controls"].items()]
    lines += ["questions, one Holm family" + ("" if a["answered"] else ": CANNOT ANSWER, the positive control "
                                              "failed") + ":"]
    lines += [_line(result, n, c) for n, c in a["family"].items()]
    lines += ["secondary (each on its own, intervals to read, no claims):"]
    lines += [_line(result, n, c, verdict=False) for n, c in a["secondary"].items()]
    return "\n".join(lines)


def round2_finding(result: dict) -> str:
    """What round 2 found, in sentences generated from its verdicts."""
    a, reg = result["analysis"], result["registration"]
    (control_name, control), = a["controls"].items()
    label, places = SCORES[_score(result, control_name)]
    n = len(reg["seeds"])
    out = [f"Positive control ({control_name.removeprefix('positive: ')}): {control['verdict']}, "
           f"{control['diff']:+.{places}f} {label} [{control['low']:+.{places}f}, {control['high']:+.{places}f}]."]
    if not a["answered"]:
        out.append(f"So, by the rule registered before the run, round 2 cannot answer its {len(a['family'])} "
                   "questions: a measurement that does not see the true attributes' effect says nothing about "
                   "smaller ones.")
        return " ".join(out)
    out.append("The measurement can see what conditioning does, so the questions are answered:")
    for name, c in a["family"].items():
        label, places = SCORES[_score(result, name)]
        words = {"better": "yes", "worse": "no, it is worse",
                 "no clear difference": f"no clear difference at {n} seeds"}.get(c["verdict"], c["verdict"])
        out.append(f"{name}: {words} ({c['diff']:+.{places}f} {label}, 95% CI [{c['low']:+.{places}f}, "
                   f"{c['high']:+.{places}f}], Holm p {c['p_adjusted']:.3g}).")
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
