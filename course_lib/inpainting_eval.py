"""How chapter 04 scores an inpainter, and the committed reference network.

The chapter's test masks (:data:`EVAL_MASKS`: a name -> the ``make_masks`` kind and
coverage), the hole PSNR of any number of filling methods over several mask seeds
(:func:`hole_psnr_by_seed`), the margin of the network over the *better* classical method
(:func:`margin_over_classical`) and its verdict against the bar the course sets
(:func:`margin_verdicts`: +2 dB on the centre block and the half image, not worse on 25%
blocks; Pathak et al. 2016 report their Context Encoder against PatchMatch-style
classical filling on central holes).

The glasses-removal edit is read by the attribute network, not by eye
(:func:`glasses_removal_finding`): is a trace of the glasses left, are eyes painted back?

The reference (:func:`reference_inpainter`) is the chapter's own ``cpu`` configuration
trained far longer by ``experiments/inpainting_reference.py``: the weights are committed in
float16 with their config and the ToyFaces render version, checked on loading.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from . import metrics
from .artifacts import reference_model
from .facedraw import RENDER_VERSION
from .inpainting import InpaintConfig, InpaintingNet, complete, mean_fill, opencv_inpaint
from .masks import make_masks
from .results import RESULTS_DIR
from .stats import BETTER, WORSE, compare_shares

__all__ = ["EVAL_MASKS", "BAR_DB", "hole_psnr_by_seed", "margin_over_classical", "margin_verdicts",
           "glasses_removal_finding", "REFERENCE_PATH", "reference_config", "reference_inpainter"]

# name -> (make_masks kind, coverage): the five test settings of chapter 04 and inpainting.json
EVAL_MASKS: dict[str, tuple[str, float]] = {
    "centre": ("center", 0.25),
    "half": ("half", 0.50),
    "blocks25": ("blocks", 0.25),
    "blocks40": ("blocks", 0.40),
    "freeform": ("freeform", 0.25),
}
# the bar: minimum margin (dB) of the network over the better of Telea / Navier-Stokes
BAR_DB: dict[str, float] = {"centre": 2.0, "half": 2.0, "blocks25": 0.0}

Filler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MaskMaker = Callable[[int, int, int], torch.Tensor]  # (batch, image_size, seed) -> (B, 1, H, W) mask


def fillers(model: InpaintingNet | None = None, fill: float = 0.5) -> dict[str, Filler]:
    """The methods the chapter compares, as ``fill(x, mask) -> completed x``: OpenCV's Telea
    and Navier-Stokes, the mean-colour fill, and (given ``model``) the network, whose holes
    are painted ``fill`` before it sees them."""
    f = {"telea": lambda x, m: opencv_inpaint(x * (1 - m), m, method="telea"),
         "ns": lambda x, m: opencv_inpaint(x * (1 - m), m, method="ns"),
         "mean": lambda x, m: mean_fill(x, m)}
    if model is not None:
        f["net"] = lambda x, m: complete(model, x, m, fill=fill)
    return f


def hole_psnr_by_seed(fillers: Mapping[str, Filler], images: torch.Tensor, *,
                      seeds: Sequence[int] = (7, 8, 9),
                      masks: Mapping[str, tuple[str, float] | MaskMaker] = EVAL_MASKS,
                      ) -> dict[str, dict[str, list[float]]]:
    """Hole PSNR (dB, mean over images) of every filler on every mask setting, per mask seed.

    ``fillers``: name -> ``fn(images, mask) -> completed images`` (B, 3, H, W) in [0, 1];
    ``images``: float (B, 3, H, W) in [0, 1]; ``seeds``: one mask draw per seed (the
    centre and half masks do not depend on it); ``masks``: name -> a ``make_masks``
    (kind, coverage), or a function ``(batch, image_size, seed) -> mask`` (B, 1, H, W)
    for masks of another shape (chapter 07's scratches). Returns
    ``{mask name: {filler: [psnr per seed]}}``.
    """
    if not fillers:
        raise ValueError("fillers is empty: pass a mapping name -> fn(images, mask)")
    if not seeds:
        raise ValueError("seeds is empty: pass at least one mask seed")
    if images.dim() != 4 or images.shape[1] != 3 or images.dtype == torch.uint8:
        raise ValueError(f"images must be float (B, 3, H, W) in [0, 1], got {images.dtype} {tuple(images.shape)}")
    out: dict[str, dict[str, list[float]]] = {}
    for name, spec in masks.items():
        out[name] = {f: [] for f in fillers}
        for seed in seeds:
            if callable(spec):
                mask = spec(len(images), images.shape[-1], seed)
            else:
                kind, coverage = spec
                mask = make_masks(kind, batch=len(images), image_size=images.shape[-1], coverage=coverage, seed=seed)
            for f, fill in fillers.items():
                out[name][f].append(metrics.psnr(fill(images, mask), images, mask=mask))
    return out


def margin_over_classical(psnr: Mapping[str, float], *, net: str = "net",
                          classical: Sequence[str] = ("telea", "ns")) -> float:
    """``psnr[net] - max(psnr[c] for c in classical)`` in dB (positive: the network wins)."""
    missing = [k for k in (net, *classical) if k not in psnr]
    if missing:
        raise ValueError(f"psnr lacks {missing}; it has {sorted(psnr)}")
    return float(psnr[net]) - max(float(psnr[c]) for c in classical)


def margin_verdicts(summary: Mapping[str, Mapping[str, float]], *, net: str = "net",
                    bar: Mapping[str, float] = BAR_DB) -> dict[str, dict]:
    """Per mask name: the network's margin over the better classical method, which method is
    best, and (where the course sets a bar) whether it is met. ``summary``: mask name ->
    ``{"net", "telea", "ns", ...}`` mean hole PSNRs."""
    verdicts = {}
    for name, row in summary.items():
        margin = margin_over_classical(row, net=net)
        best = max(("telea", "ns", net), key=lambda k: row[k])
        verdicts[name] = {"margin_db": round(margin, 2), "best": best,
                          "bar_db": bar.get(name), "met": None if name not in bar else margin >= bar[name]}
    return verdicts


def glasses_removal_finding(glasses_seen: Mapping[str, Sequence[float]], eyes_right: Mapping[str, Sequence[float]], *,
                            truth: str, before: str, no_eyes: str, alpha: float = 0.05) -> str:
    """The glasses-removal edit as the attribute network reads it, in words.

    ``glasses_seen[name]``: per face, 1 where the network reads glasses on ``name``'s images;
    it holds every filling method plus ``truth`` (the same faces drawn without glasses: the
    network's false alarms) and ``before`` (the faces with glasses). ``eyes_right[name]``: per
    face, 1 where the network reads the true face's eye colour on a filling method's image.
    One Holm family, paired over the faces: each method's glasses against ``truth`` (a trace
    left?) and each method's eyes against ``no_eyes``, a method that paints no eyes (are
    eyes painted back, beyond what a guess of the colour gets right?).
    """
    methods = [m for m in eyes_right if m != no_eyes]
    if truth not in glasses_seen or before not in glasses_seen or no_eyes not in eyes_right:
        raise ValueError(f"glasses_seen needs {truth!r} and {before!r}; eyes_right needs {no_eyes!r}")
    pairs = {("glasses", m): (glasses_seen[m], glasses_seen[truth]) for m in eyes_right}
    pairs.update({("eyes", m): (eyes_right[m], eyes_right[no_eyes]) for m in methods})
    verdicts = compare_shares(pairs, alpha=alpha)
    share = {k: float(np.mean(v)) for k, v in glasses_seen.items()}
    text = (f"The attribute network reads glasses on {share[before]:.0%} of the faces before the edit and on "
            f"{share[truth]:.0%} of the same faces drawn without glasses (its false alarms). After the fill it "
            "reads them on " + ", ".join(f"{share[m]:.0%} ({m})" for m in eyes_right) + ". ")
    left = [m for m in eyes_right if verdicts["glasses", m].verdict == BETTER]
    text += (f"More often than on the true faces, so a trace of the glasses is left: {', '.join(left)}. " if left else
             "No method leaves glasses the attribute network reads more often than on the true faces. ")
    eyes = {m: float(np.mean(v)) for m, v in eyes_right.items()}
    painted = [m for m in methods if verdicts["eyes", m].verdict == BETTER]
    text += ("It reads the true eye colour on " + ", ".join(f"{eyes[m]:.0%} ({m})" for m in eyes_right) + ": ")
    if painted:
        rest = [m for m in methods if m not in painted]
        verb = "paints" if len(painted) == 1 else "paint"
        text += (f"{', '.join(painted)} {verb} eyes back that the attribute network "
                 f"can read, more often than {no_eyes}, which paints none"
                 + (f"; {', '.join(rest)} {'does' if len(rest) == 1 else 'do'} not." if rest else "."))
    else:
        text += f"no method paints eyes back more often than {no_eyes}, which paints none."
    worse = [m for m in methods if verdicts["eyes", m].verdict == WORSE]
    if worse:
        text += f" Below {no_eyes}'s guess: {', '.join(worse)}."
    return text


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


# --- the committed reference ---------------------------------------------------------

REFERENCE_PATH = RESULTS_DIR / "inpainting_reference.pt"  # package data (pip install carries it)


def reference_config() -> InpaintConfig:
    """The reference's configuration: the ``cpu`` profile's with more steps (only ``steps``
    differs, so the live model is the reference run stopped early)."""
    return InpaintConfig.for_profile("cpu")


def reference_inpainter(path: str | os.PathLike = REFERENCE_PATH) -> InpaintingNet:
    """The committed reference network (``experiments/inpainting_reference.py``) in eval mode
    on the CPU, with ``.steps`` set. Raises a ValueError naming the mismatch if the file was
    written for another configuration or ToyFaces drawing (rerun the script's command), and a
    :class:`~course_lib.checkpoint.CheckpointError` for a Git LFS pointer, a truncated file or
    a file that is not this export."""
    return reference_model(path, config=reference_config(), data_version=RENDER_VERSION, what="inpainting reference",
                           rebuild="python experiments/inpainting_reference.py --steps 20000, then --export 20000")
