"""Checkers for chapter 03b (measuring GANs): fidelity and diversity as density and coverage
(Naeem et al. 2020, eq. 4-5), on feature vectors.

The reference here is an independent computation (a loop over real samples in float64), not
:func:`course_lib.metrics.density_coverage`; the inputs are chosen so that each plausible
mistake gives a different pair of numbers.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..metrics import density_coverage, fidelity_diversity
from .core import ExerciseError, own_work, passed, run_student


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


def _answers(real: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, tuple[float, float]]:
    """The right (density, coverage) and what each plausible mistake gives instead."""
    r, f = real.double(), fake.double()
    n, m = len(r), len(f)
    d_rr = torch.cdist(r, r)                                    # (N, N), 0 on the diagonal
    radius = d_rr.kthvalue(k + 1, dim=1).values                 # k-th nearest *other* real sample
    radius_self = d_rr.kthvalue(k, dim=1).values                # counting the sample itself
    inside = torch.cdist(r, f) <= radius[:, None]               # (N real, M fake)
    inside_self = torch.cdist(r, f) <= radius_self[:, None]
    d_ff = torch.cdist(f, f)
    radius_fake = d_ff.kthvalue(k + 1, dim=1).values
    inside_fake = torch.cdist(f, r) <= radius_fake[:, None]     # (M fake, N real): balls around fakes
    coverage = inside.any(1).double().mean().item()
    return {
        "right": (inside.sum().item() / (k * m), coverage),
        "no 1/k": (inside.sum().item() / m, coverage),
        "1/(kN)": (inside.sum().item() / (k * n), coverage),
        "self": (inside_self.sum().item() / (k * m), inside_self.any(1).double().mean().item()),
        "fake balls": (inside_fake.sum().item() / (k * n), inside_fake.any(1).double().mean().item()),
        "precision": (inside.sum().item() / (k * m), inside.any(0).double().mean().item()),
    }


MISTAKES = {
    "no 1/k": "fidelity is k times too large: divide the count by k * M, so that real faces score about 1 "
              "(each real sample lies in about k real balls)",
    "1/(kN)": "fidelity is divided by k * N (the real samples); average over the M *generated* samples: "
              "divide by k * M",
    "self": "the radius counts the sample itself as its nearest neighbour (distance 0): take the k-th "
            "nearest *other* real sample, kthvalue(k + 1) of the real-real distances",
    "fake balls": "the balls are drawn around the generated samples; draw them around the real ones, "
                  "radius = distance to the k-th nearest other real sample",
    "precision": "diversity is the share of *generated* samples inside some real ball (that is precision); "
                 "coverage is the share of *real* samples whose ball holds at least one generated sample",
}


def _pair(name: str, got) -> tuple[float, float]:
    if not isinstance(got, dict) or set(got) != {"density", "coverage"}:
        raise ExerciseError(f"{name}: return a dict with exactly the keys 'density' and 'coverage', "
                            f"got {got if not isinstance(got, dict) else sorted(got)!r}.")
    values = []
    for key in ("density", "coverage"):
        value = got[key]
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ExerciseError(f"{name}: {key} must be one number, got a tensor of shape {tuple(value.shape)}.")
            value = value.item()
        if not isinstance(value, (int, float)):
            raise ExerciseError(f"{name}: {key} must be a number, got {type(value).__name__}.")
        values.append(float(value))
    return values[0], values[1]


@own_work(density_coverage, fidelity_diversity)
def check_density_coverage(fn: Callable[..., dict]) -> None:
    """``density_coverage(real_feats, fake_feats, k)`` -> ``{"density": float, "coverage": float}``."""
    name = "density_coverage"
    cases = [  # N != M, so 1/(kN) and 1/(kM) differ; a shifted fake set, so real and fake roles differ
        (_features(40, 6, seed=1), _features(30, 6, seed=2, shift=0.4), 5),
        (_features(25, 4, seed=3), _features(50, 4, seed=4, shift=-0.2), 3),
    ]
    for real, fake, k in cases:
        got = _pair(name, run_student(name, fn, real.clone(), fake.clone(), k=k))
        answers = _answers(real, fake, k)
        right = answers.pop("right")
        if all(abs(a - b) <= 1e-5 for a, b in zip(got, right)):
            continue
        for mistake, value in answers.items():
            if all(abs(a - b) <= 1e-5 for a, b in zip(got, value)):
                raise ExerciseError(f"{name}: {MISTAKES[mistake]}.")
        raise ExerciseError(f"{name}: density {got[0]:.4f}, coverage {got[1]:.4f}; expected {right[0]:.4f} and "
                            f"{right[1]:.4f} for {len(real)} real and {len(fake)} generated samples, k = {k}.")
    passed(name, "density = 1/(kM) sum of ball memberships, coverage = share of real balls that hold a sample")
