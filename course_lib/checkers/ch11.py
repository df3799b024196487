"""Checkers for chapter 11 (latent generation): the autoencoder's edge term and generating
through the decoder.

Conventions (course_lib.latent): images ``(B, 3, H, W)`` in [0, 1]; latents ``(B, C, h, w)``
scaled by ``scale`` (one over the training latents' standard deviation) in the flow's space.
Each checker compares with an independent computation and names the usual mistakes.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..flow import integrate
from ..latent import edge_l1, edges, generate
from .core import ExerciseError, check_scalar_loss, name_mistake, own_work, passed, run_student


def _differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


@own_work(edge_l1, edges)
def check_edge_l1(fn: Callable[..., torch.Tensor]) -> None:
    """``edge_l1(recon, images)``: mean |d_x recon - d_x images| + mean |d_y recon - d_y images|."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 6, 5, generator=g)          # H != W: a transposed difference shows
    recon = torch.rand(2, 3, 6, 5, generator=g).requires_grad_(True)
    got = run_student("edge_l1", fn, recon, images)
    check_scalar_loss("edge_l1", got, source="recon")
    (rx, ry), (ix, iy) = _differences(recon.detach()), _differences(images)
    expected = (rx - ix).abs().mean() + (ry - iy).abs().mean()
    wrong = {
        "only the horizontal differences (along W) are compared; add the vertical ones (along H)":
            (rx - ix).abs().mean(),
        "only the vertical differences (along H) are compared; add the horizontal ones (along W)":
            (ry - iy).abs().mean(),
        "that is the L1 between the images themselves, not between their edges: take finite "
        "differences of each first (x[..., :, 1:] - x[..., :, :-1] and x[..., 1:, :] - x[..., :-1, :])":
            (recon.detach() - images).abs().mean(),
        "the differences are squared: this term is an L1, mean of the absolute values":
            (rx - ix).pow(2).mean() + (ry - iy).pow(2).mean(),
        "the absolute value is taken after averaging (|mean(a - b)|): take the mean of |a - b|":
            (rx - ix).mean().abs() + (ry - iy).mean().abs(),
        "the edges' absolute values are compared (| |d recon| - |d images| |): a dark-to-light edge "
        "would then match a light-to-dark one; compare the signed differences":
            (rx.abs() - ix.abs()).abs().mean() + (ry.abs() - iy.abs()).abs().mean(),
        "the two directions are averaged: add them (mean over d_x plus mean over d_y)":
            ((rx - ix).abs().mean() + (ry - iy).abs().mean()) / 2,
    }
    name_mistake("edge_l1", got.reshape(()) if got.numel() == 1 else got, expected, wrong)
    flat = torch.full((1, 3, 4, 4), 0.3)
    same = run_student("edge_l1", fn, flat + 0.2, flat)     # a brightness shift has the same edges
    if abs(float(same)) > 1e-6:
        raise ExerciseError("edge_l1: two images that differ by a constant have the same edges, so the "
                            f"result must be 0, got {float(same):.3g}.")
    passed("edge_l1", "mean |d_x| difference + mean |d_y| difference")


class _ToyVelocity(torch.nn.Module):
    """``u(x, t) = 1 - x + t``: a velocity that depends on both ``x`` and ``t``."""

    def forward(self, x, t):
        return 1 - x + t.view(-1, 1, 1, 1)


def _toy_decode(z: torch.Tensor) -> torch.Tensor:
    """A stand-in decoder: tells latents apart (not linear, not scale-free), ``(B, C, h, w)`` -> same."""
    return torch.sigmoid(z) + 0.1 * z


@own_work(generate)
def check_generate(fn: Callable[..., torch.Tensor]) -> None:
    """``generate(velocity, decode, scale, noise, steps)`` = decode(integrate(velocity, noise) / scale)."""
    velocity, scale, steps = _ToyVelocity(), 2.5, 4
    noise = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    got = run_student("generate", fn, velocity, _toy_decode, scale, noise.clone(), steps)
    z = noise.clone()
    dt = 1 / steps
    for i in range(steps):                                   # Euler, written out (independent of the library)
        z = z + dt * velocity(z, torch.full((3,), i * dt))
    expected = _toy_decode(z / scale)
    z_heun = integrate(velocity, noise.clone(), steps=steps, method="heun")
    wrong = {
        "the latent is multiplied by scale before decoding: the flow works on latents * scale, so "
        "divide by scale to get back to the decoder's latents":
            _toy_decode(z * scale),
        "the scale is not undone: decode(z / scale), where z is the end of the flow":
            _toy_decode(z),
        "the noise itself is decoded: integrate the flow from the noise first (flow.integrate)":
            _toy_decode(noise / scale),
        "the flow's end point is returned without decoding: return decode(z / scale)":
            z / scale,
        "the noise was divided by scale before integrating: the flow starts from the noise as it is "
        "(its space is already the scaled one)":
            _toy_decode(integrate(velocity, noise / scale, steps=steps) / scale),
        "that is Heun's method; use Euler steps here (flow.integrate's default)":
            _toy_decode(z_heun / scale),
    }
    name_mistake("generate", got, expected, wrong)
    passed("generate", "decode(z_1 / scale), z_1 the end of the flow from the noise")
