"""Chapter 10's guidance sweep in words (``tests/test_guidance_report.py`` checks each case).

A row of the sweep (:func:`course_lib.guidance.guidance_sweep`) holds the guidance ``scale``,
the ``agreement`` (share of requested attributes the attribute network reads back), and the
sample scores ``frechet`` (lower is nearer the real faces), ``fidelity`` (density: best
*nearest* the real faces' own value, above it samples crowd into the dense regions of the data)
and ``diversity`` (coverage).
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["guidance_findings"]


def _join(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def guidance_findings(sweep: Sequence[dict], *, real: dict, learned: float = 0.05) -> str:
    """What the guidance sweep shows: read-back from the unguided floor (the smallest scale,
    w = 0) to its best scale, the scale whose samples are nearest the data (lowest Frechet
    distance; fidelity nearest the real faces' ``real["fidelity"]``), and whether the largest
    scale only costs. ``learned``: the rise in read-back below which the model has not learned
    to follow its condition."""
    by = {r["scale"]: r for r in sweep}
    floor, top = by[min(by)], by[max(by)]
    best_read = max(sweep, key=lambda r: r["agreement"])
    best_fd = min(sweep, key=lambda r: r["frechet"])
    best_fid = min(sweep, key=lambda r: abs(r["fidelity"] - real["fidelity"]))
    follows = best_read["agreement"] - floor["agreement"] >= learned
    text = (f"Read-back climbs from {floor['agreement']:.0%} at w = {floor['scale']:g} (the unguided floor) to "
            f"{best_read['agreement']:.0%} at w = {best_read['scale']:g}. " if follows else
            f"Read-back stays near the unguided floor ({floor['agreement']:.0%} at w = {floor['scale']:g}) at every "
            "scale: the model has not learned to follow its condition, so guidance has nothing to amplify. ")
    text += (f"The Frechet distance is lowest at w = {best_fd['scale']:g} ({best_fd['frechet']:.0f}; real faces "
             f"{real['frechet']:.0f}) and fidelity is nearest the real faces' {real['fidelity']:.2f} at "
             f"w = {best_fid['scale']:g} ({best_fid['fidelity']:.2f}).")
    if not follows:
        return text
    worse = [name for name, off in (
        ("the Frechet distance", top["frechet"] > best_read["frechet"]),
        ("the fidelity", abs(top["fidelity"] - real["fidelity"]) > abs(best_read["fidelity"] - real["fidelity"])),
        ("the diversity", top["diversity"] < best_read["diversity"])) if off]
    if top is not best_read and top["agreement"] <= best_read["agreement"] and worse:
        return text + (f" At w = {top['scale']:g} read-back is no higher than at w = {best_read['scale']:g} and "
                       f"{_join(worse)} {'are' if len(worse) > 1 else 'is'} worse: pushed that far past the "
                       "conditional velocity, guidance only costs.")
    return text + f" Up to w = {top['scale']:g} guidance has not yet turned against the samples on these measures."
