"""The committed SS-GAN experiment (``experiments/ssgan.py``, chapter 06) in words and one figure.

``load_result("ssgan")`` holds both GANs (chapter 03's DCGAN and the same DCGAN with the
rotation loss, :mod:`course_lib.ssgan`) trained over a few seeds and scored with the
sample-quality metrics, plus a probe of each discriminator's features beside a randomly
initialised one. Chapter 06 reads it through these functions, so a results cell is one call:

- :func:`report`: what was run, the table of means, the SS-GAN discriminator's rotation
  accuracy and the tests (SS-GAN against DCGAN per score, Welch and Holm; each trained
  discriminator's probe against the random one);
- :func:`plot_seeds`: one dot per training seed, per score;
- :func:`literature_finding`: the direction found here beside the published directions
  (:data:`PUBLISHED_FID`), and what the discriminators' features show.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .stats import BETTER, UNCLEAR, WORSE, Comparison, compare_all

__all__ = ["METRICS", "PUBLISHED_FID", "verdicts", "report", "plot_seeds", "literature_finding"]

# score -> (label, higher is better?)
METRICS = {"frechet": ("Frechet (lower is better)", False), "fidelity": ("fidelity", True),
           "diversity": ("diversity", True), "probe": ("discriminator probe", True)}
# FID of the unconditional baseline and of SS-GAN, SNGAN/ResNet models at 100k iterations, as the
# Mimicry reproduction reports them (Lee & Town 2020); SS-GAN's own paper (Chen et al. 2019)
# reports lower FID than its baseline on CIFAR-10 and ImageNet.
PUBLISHED_FID = {"Mimicry, CIFAR-10 (FID)": (16.77, 14.65), "Mimicry, CelebA 64 px (FID)": (5.71, 6.03)}


def _constant(ss: dict) -> list[str]:
    """Scores with the same value for every seed of both GANs: no spread, no test."""
    s = ss["summary"]
    return [m for m in METRICS if np.ptp(s["ssgan"][m]["values"]) == 0 and np.ptp(s["dcgan"][m]["values"]) == 0]


def verdicts(ss: dict, *, alpha: float = 0.05) -> dict[str, Comparison]:
    """SS-GAN against DCGAN on every score with a spread: Welch's test, Holm over the scores."""
    s, constant = ss["summary"], _constant(ss)
    return compare_all({m: (s["ssgan"][m]["values"], s["dcgan"][m]["values"]) for m in METRICS if m not in constant},
                       higher_is_better={m: hib for m, (_, hib) in METRICS.items()}, alpha=alpha)


def report(ss: dict, *, alpha: float = 0.05) -> str:
    """The experiment as printed text: what ran, the means, the rotation accuracy, the tests."""
    s, exp, cfg = ss["summary"], ss["experiment"], ss["configs"]["dcgan"]
    lines = [f"from: {ss['command']}; ToyFaces render version {ss['render_version']}; seeds {exp['seeds']}; "
             f"alpha {exp['alpha']}, beta {exp['beta']}",
             f"both GANs: {cfg['steps']} discriminator steps of {cfg['batch_size']} faces, {cfg['image_size']} px, "
             f"width {cfg['width']}", ss["frechet_label"], "",
             f"{'':<22}" + "".join(f"{label:>28}" for label, _ in METRICS.values())]
    for variant, row in s.items():
        lines.append(f"{variant:<22}" + "".join(
            f"{row[m]['mean']:>19.3f} ± {row[m]['std']:.3f}" if m in row else f"{'-':>28}" for m in METRICS))
    rot = s["ssgan"]["rotation_acc"]
    lines += ["", f"SS-GAN discriminator's rotation accuracy on held-out real faces: {rot['mean']:.3f} ± "
                  f"{rot['std']:.3f} (chance 0.25)"]
    for m in _constant(ss):
        lines.append(f"{METRICS[m][0]}: the same value for every seed of both GANs ({s['ssgan'][m]['values'][0]:.3f} "
                     f"vs {s['dcgan'][m]['values'][0]:.3f}): nothing to test")
    lines += ["", f"{'SS-GAN vs DCGAN':<22}{'difference':>11}{'95% interval':>20}{'p':>8}{'Holm p':>8}  verdict"]
    for m, v in verdicts(ss, alpha=alpha).items():
        lines.append(f"{METRICS[m][0]:<22}{v.diff:>+11.3f}   [{v.low:+.3f}, {v.high:+.3f}]{v.p:>8.3f}"
                     f"{v.p_adjusted:>8.3f}  SS-GAN {v.verdict}")
    floor = compare_all({v: (s[v]["probe"]["values"], s["random discriminator"]["probe"]["values"])
                         for v in ("dcgan", "ssgan")}, alpha=alpha)
    lines.append("discriminator probe vs a random discriminator: "
                 + "; ".join(f"{v} {r.diff:+.3f} (Holm p {r.p_adjusted:.3f}: {r.verdict})" for v, r in floor.items()))
    return "\n".join(lines)


def plot_seeds(ss: dict):
    """One panel per score, one dot per training seed and a bar at the mean. Returns the figure."""
    s = ss["summary"]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(12, 2.6))
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


def literature_finding(ss: dict, *, alpha: float = 0.05, published: dict = PUBLISHED_FID) -> str:
    """The published directions, the one measured here (Welch, Holm over the scores) and the
    discriminators' probe, as printed lines ending in one finding."""
    s, n_seeds = ss["summary"], len(ss["experiment"]["seeds"])
    lines = [f"{name:<30} baseline {base:.2f} -> SS-GAN {ss_fid:.2f}: SS-GAN {'better' if ss_fid < base else 'worse'}"
             for name, (base, ss_fid) in published.items()]
    found = verdicts(ss, alpha=alpha)
    ours = found["frechet"]
    direction = {BETTER: "better", WORSE: "worse", UNCLEAR: "not clearly different"}[ours.verdict]
    lines.append(f"{'here, ToyFaces (domain Frechet)':<30} DCGAN {s['dcgan']['frechet']['mean']:.1f} -> SS-GAN "
                 f"{s['ssgan']['frechet']['mean']:.1f}: SS-GAN {direction} (Welch, Holm p {ours.p_adjusted:.3f})")
    celeba = next((v for k, v in published.items() if "CelebA" in k), None)
    celeba_worse = celeba is not None and celeba[1] > celeba[0]
    lines.append("finding: " + {
        BETTER: "on ToyFaces SS-GAN improves the samples, the direction of CIFAR-10 and ImageNet, "
                + ("unlike Mimicry's CelebA faces." if celeba_worse else "as on CelebA."),
        WORSE: "on ToyFaces SS-GAN makes the samples worse, the direction Mimicry found on CelebA faces, "
               "not the one of CIFAR-10 and ImageNet.",
        UNCLEAR: f"at this budget and with {n_seeds} seeds, the rotation loss does not change the sample quality "
                 "measurably on ToyFaces, in either published direction.",
    }[ours.verdict])
    if "probe" in found:
        probe = found["probe"]
        lines.append(f"discriminator features: SS-GAN's probe is {probe.diff:+.3f} from the DCGAN's "
                     f"({probe.verdict} after Holm)")
    return "\n".join(lines)
