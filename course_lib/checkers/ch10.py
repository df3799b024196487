"""Checkers for chapter 10 (guidance): dropping the condition in training and combining the
conditional and unconditional velocities at sampling time (Ho & Salimans 2022).

Conventions (course_lib.guidance): ``labels`` are int64 ``(B, K)``, a dropped attribute is
``NULL_LABEL`` (-1); the guidance scale ``w`` gives the unconditional model at 0 and the
conditional one at 1.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion_unet import NULL_LABEL
from ..guidance import guide, guided_velocity
from .core import ExerciseError, name_mistake, own_work, passed, run_student


@own_work(guide, guided_velocity)
def check_guide(fn: Callable[..., torch.Tensor]) -> None:
    """``guide(u_cond, u_uncond, scale)`` = u_uncond + scale * (u_cond - u_uncond)."""
    g = torch.Generator().manual_seed(0)
    u_c, u_u = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    for scale in (3.0, 0.0, 1.0):  # 3 first: there every mistake below gives a different value
        got = run_student("guide", fn, u_c, u_u, scale)
        wrong = {
            "the two velocities are swapped: start from the unconditional one and move towards "
            "the conditional one, u_uncond + scale * (u_cond - u_uncond)":
                u_c + scale * (u_u - u_c),
            "that is the (1 + w) convention, u_cond + w (u_cond - u_uncond); here scale 1 must give "
            "the conditional velocity: u_uncond + scale * (u_cond - u_uncond)":
                u_c + scale * (u_c - u_u),
            "the unconditional velocity is missing: add the scaled difference to u_uncond":
                scale * (u_c - u_u),
            "it scales the conditional velocity only; guidance extrapolates the difference "
            "u_cond - u_uncond":
                scale * u_c,
        }
        name_mistake("guide", got, guide(u_c, u_u, scale), wrong)
    passed("guide", "u_w = u_uncond + w (u_cond - u_uncond): w = 0 unconditional, 1 conditional")


@own_work()  # course_lib has no drop_labels (flow_step drops inline): nothing to forbid
def check_drop_labels(fn: Callable[..., torch.Tensor]) -> None:
    """``drop_labels(labels, drop)``: rows where ``drop`` (bool ``(B,)``) is True become NULL_LABEL."""
    labels = torch.tensor([[0, 1, 2], [1, 0, 3], [2, 2, 0], [0, 0, 1]])
    drop = torch.tensor([True, False, True, False])
    got = run_student("drop_labels", fn, labels.clone(), drop.clone())
    expected = torch.where(drop[:, None], NULL_LABEL, labels)
    if isinstance(got, torch.Tensor) and got.shape == labels.shape and torch.equal(got, labels):
        raise ExerciseError("drop_labels: nothing was dropped; rows where `drop` is True must become "
                            f"NULL_LABEL ({NULL_LABEL}).")
    wrong = {
        "the rows where drop is False were dropped: keep those, drop the ones where it is True":
            torch.where(~drop[:, None], NULL_LABEL, labels),
        f"dropped rows must be NULL_LABEL ({NULL_LABEL}), not 0 (0 is a real class of every attribute)":
            torch.where(drop[:, None], 0, labels),
        "only the first attribute of a dropped row is NULL_LABEL: drop the whole row (drop[:, None] "
        "broadcasts over the attributes)":
            torch.cat([torch.where(drop, NULL_LABEL, labels[:, 0])[:, None], labels[:, 1:]], 1),
    }
    name_mistake("drop_labels", got, expected, wrong, atol=0)
    if got.dtype != labels.dtype:
        raise ExerciseError(f"drop_labels: labels are {labels.dtype}, the result is {got.dtype}; the "
                            "embedding tables need integer indices.")
    passed("drop_labels", "whole rows become NULL_LABEL where drop is True")
