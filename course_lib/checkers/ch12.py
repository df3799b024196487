"""Checkers for chapter 12 (self-supervision inside the generator): the dispersive loss and
REPA's alignment term.

Conventions (course_lib.ssl_flow): a hidden map ``(B, C, h, w)`` of the U-Net; a target map
``(B, D, h', w')`` of a frozen encoder, ``h'`` dividing ``h``; a projector maps C to D
channels per position. Each checker compares with an independent computation and names the
usual mistakes.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..ssl_flow import dispersive_loss, repa_loss
from .core import ExerciseError, check_scalar_loss, name_mistake, own_work, passed, run_student


def _pairwise_sq(h: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) squared distances, written out (not torch.cdist)."""
    return (h[:, None, :] - h[None, :, :]).pow(2).sum(-1)


@own_work(dispersive_loss)
def check_dispersive_loss(fn: Callable[..., torch.Tensor]) -> None:
    """``dispersive_loss(hidden, tau)`` = log mean_{i,j} exp(-||h_i - h_j||^2 / (D tau))."""
    g = torch.Generator().manual_seed(0)
    hidden = (0.6 * torch.randn(5, 2, 3, 3, generator=g)).requires_grad_(True)   # D = 18 numbers per image
    tau = 0.7
    got = run_student("dispersive_loss", fn, hidden, tau)
    check_scalar_loss("dispersive_loss", got, source="hidden")
    h = hidden.detach().flatten(1)
    d2 = _pairwise_sq(h)                                               # (B, B)
    n, dim = h.shape
    expected = torch.log(torch.exp(-d2 / (dim * tau)).mean())
    off = ~torch.eye(n, dtype=torch.bool)
    wrong = {
        "the distances are not divided by D, the numbers per image: use the mean squared difference "
        "||h_i - h_j||^2 / D, so tau means the same for any map size":
            torch.log(torch.exp(-d2 / tau).mean()),
        "the distance is not squared: use ||h_i - h_j||^2 (the squared L2 distance)":
            torch.log(torch.exp(-d2.sqrt() / (dim * tau)).mean()),
        "the sign in the exponent is wrong: exp(-distance / tau), so near pairs count most":
            torch.log(torch.exp(d2 / (dim * tau)).mean()),
        "the temperature multiplies the distance: divide by tau":
            torch.log(torch.exp(-d2 * tau / dim).mean()),
        "the log is missing: log of the mean of exp(...)":
            torch.exp(-d2 / (dim * tau)).mean(),
        "the log is taken before the mean: log mean exp, not mean of the exponents":
            (-d2 / (dim * tau)).mean(),
        "the pairs i = j are left out: Wang & He average over all pairs of the batch, i = j included":
            torch.log(torch.exp(-d2 / (dim * tau))[off].mean()),
        "the maps were averaged over their positions first: flatten each map to D numbers instead":
            torch.log(torch.exp(-_pairwise_sq(hidden.detach().mean((2, 3))) / (hidden.shape[1] * tau)).mean()),
    }
    name_mistake("dispersive_loss", got.reshape(()) if got.numel() == 1 else got, expected, wrong, atol=1e-5)
    same = run_student("dispersive_loss", fn, torch.ones(4, 3, 2, 2, requires_grad=True), 0.5)
    if abs(float(same.detach())) > 1e-5:
        raise ExerciseError(f"dispersive_loss: a batch of identical maps has every distance 0, so the loss must "
                            f"be log(1) = 0, got {float(same.detach()):.3g}.")
    (grad,) = torch.autograd.grad(got, hidden, allow_unused=True)
    if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0:
        raise ExerciseError("dispersive_loss: no gradient reaches hidden (a .detach() or a NumPy detour?); the "
                            "loss must spread the U-Net's maps, so it must train them.")
    passed("dispersive_loss", f"log mean exp(-||h_i - h_j||^2 / (D tau)); here {float(got.detach()):.4f}, "
           f"at most 0 = log 1")


class _Affine(torch.nn.Module):
    """A stand-in projector: a fixed 1x1 convolution from 3 to 4 channels and a tanh (not linear,
    as REPA's MLP is not: pooling before it is then another answer)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = torch.nn.Parameter(torch.randn(4, 3, 1, 1, generator=g))
        self.bias = torch.nn.Parameter(0.5 * torch.randn(4, generator=g))

    def forward(self, x):
        return torch.tanh(F.conv2d(x, self.weight, self.bias))


@own_work(repa_loss)
def check_repa_loss(fn: Callable[..., torch.Tensor]) -> None:
    """``repa_loss(hidden, target, proj)`` = -mean cos(avgpool(proj(hidden)), target) over images and positions."""
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 3, 4, 6, generator=g).requires_grad_(True)     # (B, C, h, w), h != w
    target = torch.randn(2, 4, 2, 3, generator=g)                          # (B, D, h/2, w/2)
    proj = _Affine()
    got = run_student("repa_loss", fn, hidden, target, proj)
    check_scalar_loss("repa_loss", got, source="hidden")
    with torch.no_grad():
        z = proj(hidden)                                                   # (2, 4, 4, 6)
        pooled = F.avg_pool2d(z, 2)                                        # (2, 4, 2, 3)
        cos = (pooled * target).sum(1) / (pooled.norm(dim=1) * target.norm(dim=1))   # (2, 2, 3)
        expected = -cos.mean()
        up = F.interpolate(target, size=z.shape[-2:], mode="nearest")
        flat_cos = F.cosine_similarity(pooled.flatten(1), target.flatten(1), dim=1)
        wrong = {
            "the cosine is not negated: the loss must fall as the two maps align, so return -mean cos":
                cos.mean(),
            "the cosine is taken over the positions instead of the channels: compare the D-channel "
            "vectors at each position (dim=1)":
                -F.cosine_similarity(pooled, target, dim=-1).mean(),
            "each image's whole map is compared as one vector: REPA compares position by position, "
            "then averages":
                -flat_cos.mean(),
            "the target was upsampled to the hidden grid: average-pool the projection to the target's "
            "grid instead (F.adaptive_avg_pool2d(z, target.shape[-2:]))":
                -F.cosine_similarity(z, up, dim=1).mean(),
            "the hidden map was pooled before the projector: project first, then pool":
                -F.cosine_similarity(proj(F.avg_pool2d(hidden, 2)), target, dim=1).mean(),
            "that is a mean squared error, not the negative cosine similarity":
                (pooled - target).pow(2).mean(),
            "1 - cos: REPA's term is -cos (the same gradient, but the checker expects -mean cos)":
                1 - cos.mean(),
        }
    name_mistake("repa_loss", got.reshape(()) if got.numel() == 1 else got, expected, wrong, atol=1e-5)
    (grad,) = torch.autograd.grad(got, hidden, allow_unused=True)
    if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0:
        raise ExerciseError("repa_loss: no gradient reaches hidden (a .detach()?); the alignment must train "
                            "the U-Net, not only the projector.")
    aligned = run_student("repa_loss", fn, torch.ones(1, 3, 2, 2), proj(torch.ones(1, 3, 1, 1)).detach() * 2, proj)
    if not math.isclose(float(aligned.detach()), -1.0, abs_tol=1e-5):
        raise ExerciseError("repa_loss: when the projection points the target's way at every position (any "
                            f"length), the loss must be -1, got {float(aligned.detach()):.4g}.")
    passed("repa_loss", "-mean over images and positions of cos(pool(proj(hidden)), target)")
