"""What every checker shares: one error type, calling the student's code, comparing.

A checker is a plain function ``check_something(student_fn)``. It calls the student's
code on inputs it chooses, compares with the reference from course_lib, and either
prints one line starting with a check mark or raises :class:`ExerciseError` whose
message names the likely mistake ("std = exp(logvar)? use exp(0.5 * logvar)").

A checker decorated with :func:`own_work` names course_lib's own answers to its exercise:
while the student's code runs (in :func:`run_student`), a call into one of them fails the
check, so ``return reference_kl(mu, logvar)`` cannot pass ``check_kl_divergence``. The
checker itself calls the reference only outside the student's code.

:func:`use_yours` puts the student's code to work: a later cell trains or samples with the
student's function when its check passed, and with the library's (saying so) when not.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import linecache
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


class ExerciseError(AssertionError):
    """A student's answer is wrong (or missing). The message says what to fix.

    An AssertionError, so nbgrader and pytest count a failed check as a failed test; in a
    notebook IPython shows :meth:`_render_traceback_`'s few lines instead of the checker's
    traceback (the student needs the message, not the checker's internals)."""

    #: where in the student's code a crash happened ("line 3: return mu + std * eps"), if known
    where: str = ""

    def _render_traceback_(self) -> list[str]:
        """What IPython prints for this error: the message (at most 4 lines) and, for a
        crash in the student's code, the line that raised it. Never more than 5 lines."""
        lines = str(self).splitlines() or [""]
        if len(lines) > 4:
            lines = lines[:3] + ["... " + " ".join(line.strip() for line in lines[3:])]
        out = ["\x1b[1;31mExerciseError\x1b[0m: " + lines[0], *lines[1:]]
        if self.where:
            out.append(self.where)
        return out[:5]


def passed(name: str, detail: str = "") -> None:
    """Print the one-line success message every checker ends with."""
    print(f"\u2714 {name}: correct" + (f" ({detail})" if detail else ""))


# the last verdict of each own_work checker: checker -> (the function it checked, passed?)
_VERDICTS: dict[Callable[..., Any], tuple[Any, bool]] = {}

# course_lib's own answers to the exercise being checked: id(code object) -> "module.name"
_LIBRARY: contextvars.ContextVar[dict[int, str] | None] = contextvars.ContextVar("_LIBRARY", default=None)


def _label(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def own_work(*library: Callable[..., Any]) -> Callable[[F], F]:
    """Decorate a checker: while it runs the student's code, calling any of ``library``
    (course_lib's own implementation of the exercise) fails the check.

    The decorated checker lists them as ``checker.library`` (the tests submit each one)."""
    codes = {id(fn.__code__): _label(fn) for fn in library}

    def decorate(checker: F) -> F:
        @functools.wraps(checker)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _LIBRARY.set(codes)
            checked = args[0] if args else None
            try:
                result = checker(*args, **kwargs)
            except Exception:
                _VERDICTS[wrapper] = (checked, False)
                raise
            finally:
                _LIBRARY.reset(token)
            _VERDICTS[wrapper] = (checked, True)
            return result

        wrapper.library = library  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def use_yours(yours: F, library: F, check: Callable[..., Any]) -> F:
    """``yours`` if it passes ``check`` (a checker from this package), else ``library``.

    A chapter's later cells call this to train or sample with the student's own function:
    when ``check`` already ran on this very function (the check cell), its verdict is
    reused; otherwise the check runs now, quietly. Prints one line saying which one runs."""
    name = getattr(yours, "__name__", "function")
    verdict = _VERDICTS.get(check)
    if verdict is not None and verdict[0] is yours:
        ok = verdict[1]
    else:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                check(yours)
            ok = True
        except Exception:  # a wrong, missing or crashing answer: the library's runs instead
            ok = False
    if ok:
        print(f"\u2714 using your {name} here (it passed {check.__name__})")
        return yours
    print(f"note: your {name} has not passed {check.__name__} yet, so course_lib's "
          f"{_label(library)} runs here instead; solve the exercise and rerun this cell to use yours")
    return library


@contextmanager
def unwatched() -> Iterator[None]:
    """Stop watching for :func:`own_work` calls inside: for the hundreds of repeated calls of
    a training check, after the first calls were watched (watching costs about 3x there)."""
    token = _LIBRARY.set(None)
    try:
        yield
    finally:
        _LIBRARY.reset(token)


def _library_error(name: str, label: str) -> ExerciseError:
    return ExerciseError(
        f"{name}: your code calls {label}, course_lib's own answer to this exercise. Write the "
        "computation yourself with torch operations; the checker compares it with the library's.")


@contextmanager
def library_guard(name: str) -> Iterator[None]:
    """Run the student's code inside: a call into the checker's :func:`own_work` functions
    raises ExerciseError (at the call, and again afterwards if the student's code caught it).

    Watches through :func:`sys.setprofile`, which sees the call however the function was
    imported or renamed; it only reads, and stands aside when a profiler is already set."""
    codes = _LIBRARY.get() or {}
    if not codes or sys.getprofile() is not None:
        yield
        return
    hits: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and id(frame.f_code) in codes:
            hits.append(codes[id(frame.f_code)])
            raise _library_error(name, hits[0])    # unsets the profile; finally restores None

    sys.setprofile(profile)
    try:
        yield
    except Exception:
        if hits:
            raise _library_error(name, hits[0]) from None
        raise
    finally:
        sys.setprofile(None)
    if hits:
        raise _library_error(name, hits[0])


def _crash_site(fn: Callable[..., Any], exc: BaseException) -> str:
    """The last line of the student's own code in ``exc``'s traceback, as "line N: source"."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    tb, found = exc.__traceback__, ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            source = linecache.getline(filename, tb.tb_lineno, tb.tb_frame.f_globals).strip()
            found = f"  in your code, line {tb.tb_lineno}: {source}" if source else ""
        tb = tb.tb_next
    return found


# Crashes whose own message misleads a student, and what to say instead.
_CRASH_HINTS = {
    "Can't call numpy() on Tensor that requires grad":
        " The checker passes tensors that carry gradients, as the model's outputs do: compute with "
        "torch operations, not NumPy (a NumPy detour cuts the gradient).",
}


def run_student(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn a missing answer, a call into course_lib's own answer
    (see :func:`own_work`) or a crash into ExerciseError."""
    try:
        with library_guard(name):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseError(
            f"{name}: not implemented yet. Replace `raise NotImplementedError()` "
            f"with your code, then run this cell again."
        ) from None
    except ExerciseError:
        raise
    except Exception as exc:  # a crash is feedback too: say which call failed
        hint = next((h for k, h in _CRASH_HINTS.items() if k in str(exc)), "")
        err = ExerciseError(f"{name}: your code raised {type(exc).__name__}: {exc}{hint}")
        err.where = _crash_site(fn, exc)
        raise err from exc


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


def check_scalar(name: str, got: Any, *, hint: str) -> None:
    """Raise ExerciseError unless ``got`` is a one-element tensor; ``hint`` says how to reduce it."""
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if got.numel() != 1:
        raise ExerciseError(f"{name}: expected a scalar, got shape {tuple(got.shape)}; {hint}")


def check_scalar_loss(name: str, got: Any, *, source: str = "the model's output") -> None:
    """Raise ExerciseError unless ``got`` is a one-element tensor that carries gradients."""
    check_scalar(name, got, hint="average over the batch and the pixels.")
    if not got.requires_grad:
        raise ExerciseError(f"{name}: the result carries no gradient; compute it with torch operations "
                            f"on {source} (no .item(), no torch.no_grad()).")
