"""The committed SS-GAN experiment (``experiments/ssgan.py``, chapter 06) in words and one figure.

``load_result("ssgan")`` holds a registered comparison: chapter 03's DCGAN and the same DCGAN
with the rotation loss (:mod:`course_lib.ssgan`), trained at chapter 03's budget over the
registered seeds, scored with the sample-quality metrics, and a label-budget probe of each
discriminator beside a random one. The script wrote two questions, each with its own positive
control, before the first GAN trained, and its ``"analysis"`` holds the verdicts. Chapter 06
reads it through these functions, so a results cell is one call:

- :func:`report`: the registration, the table of means and the verdicts;
- :func:`plot_seeds`: one dot per training seed, per score;
- :func:`literature_finding`: the direction found here beside the published directions
  (:data:`PUBLISHED_FID`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["METRICS", "PUBLISHED_FID", "report", "plot_seeds", "literature_finding"]

# score -> (label, higher is better?)
METRICS = {"frechet": ("Frechet (lower is better)", False), "fidelity": ("fidelity", True),
           "diversity": ("diversity", True), "probe": ("probe, few labels", True),
           "probe_all": ("probe, all labels", True)}
# FID of the unconditional baseline and of SS-GAN, SNGAN/ResNet models at 100k iterations, as the
# Mimicry reproduction reports them (Lee & Town 2020); SS-GAN's own paper (Chen et al. 2019)
# reports lower FID than its baseline on CIFAR-10 and ImageNet.
PUBLISHED_FID = {"Mimicry, CIFAR-10 (FID)": (16.77, 14.65), "Mimicry, CelebA 64 px (FID)": (5.71, 6.03)}
SAMPLES = "samples: SS-GAN vs DCGAN (Frechet)"


def _contrast(name: str, c: dict, places: int) -> str:
    interval = (f"{c['diff']:+.{places}f} [{c['low']:+.{places}f}, {c['high']:+.{places}f}]" if "low" in c
                else f"{c['diff']:+.{places}f}")
    p = f", p {c['p']:.3g}" if "p" in c else ""
    holm = f", Holm {c['p_adjusted']:.3g}" if "p_adjusted" in c and c["p_adjusted"] != c.get("p") else ""
    return f"  {name}\n      {c['verdict']}: {interval}{p}{holm}"


def _places(name: str) -> int:
    return 1 if "Frechet" in name else 3


def report(ss: dict) -> str:
    """The experiment as printed text: what ran, the means, the rotation accuracy, the verdicts."""
    s, exp, cfg, reg = ss["summary"], ss["experiment"], ss["configs"]["dcgan"], ss["registration"]
    lines = [f"from: {ss['command']}; ToyFaces render version {ss['render_version']}; seeds {reg['seeds']} "
             f"(power {reg['power']['power_at_seeds']:.2f} for {reg['power']['effect_sd']} sd at alpha "
             f"{reg['power']['alpha_per_test']:.3f}); alpha {exp['alpha']}, beta {exp['beta']}",
             f"both GANs: {cfg['steps']} discriminator steps of {cfg['batch_size']} faces, {cfg['image_size']} px, "
             f"width {cfg['width']}; the DCGAN also scored at its step {reg['half_way_step']} snapshot",
             ss["frechet_label"], f"probe: {exp['budgets'][0]} and {exp['budgets'][-1]} labelled faces", "",
             f"{'':<22}" + "".join(f"{label:>26}" for label, _ in METRICS.values())]
    for variant, row in s.items():
        lines.append(f"{variant:<22}" + "".join(
            f"{row[m]['mean']:>17.3f} ± {row[m]['std']:.3f}" if m in row else f"{'-':>26}" for m in METRICS))
    rot = s["ssgan"]["rotation_acc"]
    lines += ["", f"SS-GAN discriminator's rotation accuracy on held-out real faces: {rot['mean']:.3f} ± "
                  f"{rot['std']:.3f} (chance 0.25)", ""]
    a = ss.get("analysis")
    if a is None:
        return "\n".join(lines + ["the run is not finished: no verdicts yet"])
    lines.append("controls (each question's own, at alpha):")
    lines += [_contrast(n, c, _places(n)) for n, c in a["controls"].items()]
    lines.append("questions (one Holm family; " + reg["rule"] + "):")
    lines += [_contrast(n, c, _places(n)) for n, c in a["questions"].items()]
    lines.append("secondary (intervals to read, no claims):")
    lines += [_contrast(n, c, _places(n)) for n, c in a["secondary"].items()]
    return "\n".join(lines)


def plot_seeds(ss: dict):
    """One panel per score, one dot per training seed and a bar at the mean. Returns the figure."""
    s = ss["summary"]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(14, 2.6))
    for ax, (m, (label, _)) in zip(axes, METRICS.items()):
        names = [v for v in s if m in s[v]]
        for i, variant in enumerate(names):
            vals = s[variant][m]["values"]
            ax.plot([i] * len(vals), vals, "o", alpha=0.7)
            ax.plot([i - 0.2, i + 0.2], [np.mean(vals)] * 2, "k-")
        ax.set_xticks(range(len(names)), [n.replace(" discriminator", "\nD") for n in names], fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_xlim(-0.5, len(names) - 0.5)
    fig.suptitle("one dot per training seed, bar = mean", fontsize=9)
    fig.tight_layout()
    return fig


def literature_finding(ss: dict, *, published: dict = PUBLISHED_FID) -> str:
    """The published directions, the one measured here (the registered verdict on the samples)
    and the discriminators' features, as printed lines ending in one finding."""
    s, a = ss["summary"], ss["analysis"]
    lines = [f"{name:<30} baseline {base:.2f} -> SS-GAN {ss_fid:.2f}: SS-GAN {'better' if ss_fid < base else 'worse'}"
             for name, (base, ss_fid) in published.items()]
    ours = a["questions"][SAMPLES]
    lines.append(f"{'here, ToyFaces (domain Frechet)':<30} DCGAN {s['dcgan']['frechet']['mean']:.1f} -> SS-GAN "
                 f"{s['ssgan']['frechet']['mean']:.1f}: {ours['verdict']}")
    celeba = next((v for k, v in published.items() if "CelebA" in k), None)
    celeba_worse = celeba is not None and celeba[1] > celeba[0]
    n = len(ss["registration"]["seeds"])
    lines.append("finding: " + {
        "better": "on ToyFaces SS-GAN improves the samples, the direction of CIFAR-10 and ImageNet, "
                  + ("unlike Mimicry's CelebA faces." if celeba_worse else "as on CelebA."),
        "worse": "on ToyFaces SS-GAN makes the samples worse, the direction Mimicry found on CelebA faces, "
                 "not the one of CIFAR-10 and ImageNet.",
        "no clear difference": f"at chapter 03's budget and with {n} seeds, the rotation loss does not change the "
                               f"sample quality measurably on ToyFaces (the interval says how large a change the "
                               f"data still allow).",
        "cannot answer": "the measurement could not see what the second half of training buys (its positive "
                         "control failed), so it cannot say whether the rotation loss changes the samples.",
    }.get(ours["verdict"], ours["verdict"]))
    for name, c in a["questions"].items():
        if name != SAMPLES:
            lines.append(f"{name}: {c['verdict']} ({c['diff']:+.3f})")
    return "\n".join(lines)
