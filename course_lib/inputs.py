"""Checks on what users pass in: float images in [0, 1], masks of 0 and 1, config fields.

Two kinds, by what they cost. Dtype and shape checks read tensor metadata only; they run
everywhere, in every training step. A value-range check reads the values: on a CPU tensor
that is a reduction of a few microseconds, but on an accelerator it is a host sync that
stalls the pipeline once per step. So :func:`range_check_due` runs range checks on CPU
tensors always and on accelerator tensors only where the caller says it is an entry point
(the first batch a model sees, a data set handed to a loader), never per step.

Config dataclasses check their fields once, at construction, with :func:`validate_fields`:
one rule per field, written as it would be said (``lr="float > 0"``), so a wrong type or a
value out of range is refused where it is made, not deep inside torch later.
"""
from __future__ import annotations

import dataclasses
import math
import operator
import re

import torch

__all__ = ["check_float_images", "check_unit_range", "check_mask", "range_check_due",
           "validate_fields", "check_seed", "SEED_MAX"]

SEED_MAX = 2**32 - 1  # NumPy's limit, and small enough that seed + 1 or seed * 8 stays in range


def range_check_due(x: torch.Tensor, *, entry: bool = False) -> bool:
    """Whether a value-range check on ``x`` is cheap here: on the CPU, or at an entry point."""
    return entry or x.device.type == "cpu"


def check_float_images(x: torch.Tensor, what: str) -> None:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor (uint8 images are not)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of float images, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be float images in [0, 1], got dtype {x.dtype}"
                        + (": convert uint8 images with images.float() / 255"
                           if x.dtype == torch.uint8 else ""))


def check_unit_range(x: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` unless every value of ``x`` lies in [0, 1] (reads the values)."""
    if x.numel() == 0:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = lo.item(), hi.item()
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{what} contains NaN (a diverged model, or a division by zero upstream?)")
    if lo < 0 or hi > 1:
        hint = (": these look like 0..255 pixel values; divide by 255" if hi > 1.5 and lo >= 0
                else " (images in [-1, 1]? use (x + 1) / 2)" if lo >= -1 and hi <= 1 else "")
        raise ValueError(f"{what} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")


def check_mask(mask: torch.Tensor, what: str = "mask", *, entry: bool = False) -> None:
    """A mask is float or bool with 1 = hole, 0 = known: refuse uint8 (0/255 image masks)
    always, and values outside [0, 1] where a range check is cheap (:func:`range_check_due`)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (1 = hole, 0 = known), got {type(mask).__name__}")
    if not (mask.is_floating_point() or mask.dtype == torch.bool):
        raise TypeError(f"{what} must be float or bool with 1 = hole and 0 = known, got dtype "
                        f"{mask.dtype}" + (" (a 0/255 image mask? use (mask > 127).float())"
                                           if mask.dtype == torch.uint8 else ""))
    if mask.is_floating_point() and range_check_due(mask, entry=entry) and mask.numel():
        lo, hi = torch.aminmax(mask.detach())
        if lo.item() < 0 or hi.item() > 1:
            raise ValueError(f"{what} must hold values in [0, 1] (1 = hole, 0 = known), got values "
                             f"in [{lo.item():.3g}, {hi.item():.3g}]"
                             + (": a 0/255 mask? use (mask > 127).float()" if hi.item() > 1.5 else ""))


# --------------------------------------------------------------------------- config fields
_RULE = re.compile(r"(int|float|bool|seed)(?: in ([\[(])(\S+), (\S+)([\])])| (>=|>|<=|<) (\S+))?")
_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _in_range(value, rule: str) -> bool:
    kind, open_lo, lo, hi, close_hi, op, bound = _RULE.fullmatch(rule).groups()
    if op is not None:
        return _COMPARE[op](value, float(bound))
    if lo is not None:
        low_ok = value >= float(lo) if open_lo == "[" else value > float(lo)
        high_ok = value <= float(hi) if close_hi == "]" else value < float(hi)
        return low_ok and high_ok
    return True


def check_value(value, rule, what: str) -> None:
    """Check one value against a rule: a tuple of allowed values, or ``"int >= 1"``,
    ``"float > 0"``, ``"float in [0, 1)"``, ``"bool"``, ``"seed"`` (an int in
    [0, :data:`SEED_MAX`]). ``TypeError`` for a wrong type, ``ValueError`` out of range."""
    if isinstance(rule, tuple):
        if value not in rule:
            raise ValueError(f"{what} must be one of {rule}, got {value!r}")
        return
    match = _RULE.fullmatch(rule)
    if match is None:
        raise ValueError(f"bad validation rule {rule!r} for {what}")
    kind = match.group(1)
    if kind == "seed":
        rule = f"int in [0, {SEED_MAX}]"
        kind = "int"
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = rule.replace("int", "an int", 1) if kind == "int" else (
        "True or False" if kind == "bool" else rule.replace("float", "a number", 1))
    if not ok:
        raise TypeError(f"{what} must be {expected}, got {value!r} ({type(value).__name__})")
    if kind == "float" and not math.isfinite(value):
        raise ValueError(f"{what} must be {expected} (finite), got {value!r}")
    if not _in_range(value, rule):
        raise ValueError(f"{what} must be {expected}, got {value!r}")


def check_seed(seed, what: str = "seed") -> int:
    """``seed`` if it is an int in [0, :data:`SEED_MAX`]; else a TypeError or ValueError."""
    check_value(seed, "seed", what)
    return seed


def validate_fields(config, rules: dict) -> None:
    """Check the fields of a config dataclass against ``rules`` (``{field: rule}``, rules as
    in :func:`check_value`; a tuple-valued field, e.g. ``widths``, has each element checked).
    Called from ``__post_init__``, so a bad value fails where the config is made; the error
    names the class, the field, the value and what was expected."""
    name = type(config).__name__
    for field in rules:
        if field not in {f.name for f in dataclasses.fields(config)}:
            raise ValueError(f"{name} has no field {field!r} to validate")
    for field, rule in rules.items():
        value = getattr(config, field)
        if isinstance(value, (tuple, list)) and not isinstance(rule, tuple):
            for i, item in enumerate(value):
                check_value(item, rule, f"{name}.{field}[{i}]")
        else:
            check_value(value, rule, f"{name}.{field}")
