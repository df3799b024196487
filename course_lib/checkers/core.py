"""What every checker shares: one error type, calling the student's code, comparing.

A checker is a plain function ``check_something(student_fn)``. It calls the student's
code on inputs it chooses, compares with the reference from course_lib, and either
prints one line starting with a check mark or raises :class:`ExerciseError` whose
message names the likely mistake ("std = exp(logvar)? use exp(0.5 * logvar)").
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class ExerciseError(AssertionError):
    """A student's answer is wrong (or missing). The message says what to fix."""


def passed(name: str, detail: str = "") -> None:
    """Print the one-line success message every checker ends with."""
    print(f"\u2714 {name}: correct" + (f" ({detail})" if detail else ""))


def run_student(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn a missing answer or a crash into ExerciseError."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseError(
            f"{name}: not implemented yet. Replace `raise NotImplementedError()` "
            f"with your code, then run this cell again."
        ) from None
    except ExerciseError:
        raise
    except Exception as exc:  # a crash is feedback too: say which call failed
        raise ExerciseError(f"{name}: your code raised {type(exc).__name__}: {exc}") from exc


def check_dtype(name: str, got: torch.Tensor, expected: torch.dtype, *, hint: str = "") -> None:
    """Raise ExerciseError unless ``got`` has dtype ``expected`` (say why it matters)."""
    if got.dtype != expected:
        raise ExerciseError(
            f"{name}: the result has dtype {got.dtype}, but the inputs are {expected}; the "
            f"model's {expected} weights would refuse it (\"expected scalar type\" errors later). "
            + (hint or "Use torch operations on the inputs (no NumPy, no dtype=torch.float64).")
        )


def check_close(
    name: str,
    got: Any,
    expected: torch.Tensor,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str = "",
) -> None:
    """Raise ExerciseError unless ``got`` is a tensor of ``expected``'s shape and values."""
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        raise ExerciseError(
            f"{name}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}."
            + (f" {hint}" if hint else "")
        )
    if not torch.isfinite(got).all():
        raise ExerciseError(f"{name}: the result contains NaN or inf.")
    if not torch.allclose(got.detach().float(), expected.float(), atol=atol, rtol=rtol):
        err = (got.detach().float() - expected.float()).abs().max().item()
        raise ExerciseError(
            f"{name}: values differ from the reference (max abs error {err:.3g})."
            + (f" {hint}" if hint else "")
        )


def name_mistake(name: str, got: Any, expected: torch.Tensor, wrong: dict[str, torch.Tensor], *,
                 atol: float = 1e-5) -> None:
    """Compare ``got`` with ``expected``; when they differ, raise the message of the first
    plausible wrong answer ``got`` equals (``wrong``: message -> that answer's value), else
    :func:`check_close`'s generic mismatch."""
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.allclose(
            got.detach().float(), expected.float(), atol=atol, rtol=1e-4):
        for message, value in wrong.items():
            if torch.allclose(got.detach().float(), value.float(), atol=atol, rtol=1e-4):
                raise ExerciseError(f"{name}: {message}.")
    check_close(name, got, expected, atol=atol)


def check_scalar_loss(name: str, got: Any, *, source: str = "the model's output") -> None:
    """Raise ExerciseError unless ``got`` is a one-element tensor that carries gradients."""
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if got.numel() != 1:
        raise ExerciseError(f"{name}: expected a scalar, got shape {tuple(got.shape)}; "
                            "average over the batch and the pixels.")
    if not got.requires_grad:
        raise ExerciseError(f"{name}: the result carries no gradient; compute it with torch operations "
                            f"on {source} (no .item(), no torch.no_grad()).")
