"""Checkers for chapter 07 (applications): the AUROC of an anomaly score and a latent
attribute direction for editing."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..applications import attribute_direction, auroc
from .core import ExerciseError, check_close, own_work, passed, run_student


@own_work(auroc)
def check_auroc(auroc_fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """``auroc_fn(normal_scores, anomaly_scores)``: P(anomaly scores higher), ties count 1/2."""
    cases = [
        (torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0.9, 0.4, 0.65])),  # with a tie
        (torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0.5, 2.5])),              # mostly wrong way
        (torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.0, 1.0])),              # all tied: 0.5
    ]
    for normal, anomalous in cases:
        got = run_student("auroc", auroc_fn, normal.clone(), anomalous.clone())
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"auroc: expected a number, got {type(got).__name__}.") from None
        # the definition, pair by pair (independent of applications.auroc, which is scikit-learn's)
        strict = float((anomalous[:, None] > normal[None, :]).double().mean())
        loose = float((anomalous[:, None] >= normal[None, :]).double().mean())
        expected = (strict + loose) / 2                           # ties count one half
        if abs(value - expected) < 1e-6:
            continue
        if abs(value - (1 - expected)) < 1e-6:
            raise ExerciseError("auroc: the roles are swapped: count how often an *anomaly* scores "
                                "higher than a normal image (higher score = more anomalous).")
        if abs(value - strict) < 1e-6:
            raise ExerciseError("auroc: ties are not counted; a tie between an anomaly and a "
                                "normal image counts one half.")
        if abs(value - loose) < 1e-6:
            raise ExerciseError("auroc: ties count one half, not one (use > plus 0.5 * ==).")
        if value > 1 or value < 0:
            raise ExerciseError(f"auroc: {value:.3g} is not a probability; divide the count of "
                                "pairs by n_normal * n_anomalous.")
        raise ExerciseError(f"auroc: expected {expected:.4f} for normal={normal.tolist()} and "
                            f"anomalous={anomalous.tolist()}, got {value:.4f}.")
    passed("auroc", "pairs compared, ties count one half")


@own_work(attribute_direction)
def check_attribute_direction(direction_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``direction_fn(mu, has_attribute)``: mean mu with the attribute minus mean mu without."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(12, 5, generator=g)
    has = torch.tensor([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])  # unbalanced groups on purpose
    got = run_student("attribute_direction", direction_fn, mu.clone(), has.clone())
    expected = attribute_direction(mu, has)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape:
        b = has.bool()
        wrong = {
            "the sign is reversed: with minus without, so that adding it adds the attribute":
                -expected,
            "it subtracts the mean of *all* faces; subtract the mean of the faces without it":
                mu[b].mean(0) - mu.mean(0),
            "it uses sums, not means; the groups have different sizes":
                mu[b].sum(0) - mu[~b].sum(0),
            "it is normalised to unit length; keep the raw difference of means, so alpha = 1 "
            "moves a typical face by one typical difference":
                expected / expected.norm(),
        }
        for message, candidate in wrong.items():
            if torch.allclose(got.float(), candidate, atol=1e-5):
                raise ExerciseError(f"attribute_direction: {message}.")
    check_close("attribute_direction", got, expected,
                hint="mean of mu over faces with the attribute minus mean over faces without it.")
    passed("attribute_direction", "difference of the two group means")
