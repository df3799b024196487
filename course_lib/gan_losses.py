"""The losses and penalties of the GAN variants in :mod:`course_lib.gan`.

Every function takes the discriminator's outputs (logits for ``"ns"``, scores for the others)
as float ``(B,)`` tensors and returns a 0-d loss to *minimise*. :mod:`course_lib.gan`
re-exports them (``gan.discriminator_loss`` ...), so chapters keep one import.

- ``"ns"``        Goodfellow et al. 2014: eq. 1 for D, the non-saturating loss for G.
- ``"wgan-clip"`` Arjovsky et al. 2017: critic ``E f(G(z)) - E f(x)``, weights clipped.
- ``"wgan-gp"``   Gulrajani et al. 2017: the same critic loss plus a gradient penalty.
- ``"hinge"``     Lim & Ye 2017, used by SN-GAN (Miyato et al. 2018) and BigGAN: D only
                  learns from samples inside the margin, G maximises D's score.

R1 (Mescheder et al. 2018) is a penalty on D's gradient at *real* images and adds to any of
these losses.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .inputs import check_float_images
from .runtime import local_share, world_size


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(x)] - [log(1 - D(G(z)))], each averaged over its batch (Goodfellow eq. 1).

    ``D = sigmoid(logit)``; written with ``softplus`` (= BCE-with-logits), which is stable
    where ``log(sigmoid(.))`` underflows: ``-log sigmoid(a) = softplus(-a)`` and
    ``-log(1 - sigmoid(a)) = softplus(a)``. A perfect discriminator gives 0.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -E[log D(G(z))] (Goodfellow et al. 2014, section 3).

    Same fixed point as minimising log(1 - D(G(z))), but strong gradients exactly when
    the discriminator confidently rejects the samples (early in training).
    """
    return F.softplus(-fake_logits).mean()


def saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss E[log(1 - D(G(z)))]: what eq. 1 literally asks for."""
    return -F.softplus(fake_logits).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss E[f(G(z))] - E[f(x)] (minimised; Arjovsky et al. 2017, Algorithm 1)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss -E[f(G(z))] (also the hinge GAN's generator loss)."""
    return -fake_scores.mean()


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018, eq. 17).

    Zero once every real score is >= 1 and every fake score <= -1: confident samples stop
    contributing, so D does not keep pushing scores it already gets right.
    """
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(||grad_x_hat f(x_hat)||_2 - 1)^2] on x_hat = eps x + (1 - eps) G(z) (Gulrajani eq. 3).

    ``real`` and ``fake``: ``(B, ...)`` of the same shape. ``eps``: ``(B, 1, ..., 1)`` in
    [0, 1], one per sample (drawn uniformly when ``None``). The norm is taken per sample
    over *all* non-batch dimensions. ``create_graph=True`` keeps the gradient itself
    differentiable, so the penalty trains the critic's weights. Returns an unweighted
    scalar; multiply by lambda (10 in the paper).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    for name, t in (("real", real), ("fake", fake)):
        check_float_images(t, f"gradient_penalty: {name}")
    if eps is None:  # one per sample of the global batch, this rank's share (all of it outside torchrun)
        n = real.shape[0] * world_size()
        eps = local_share(torch.rand(n, *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # (B, ...)
    scores = critic(x_hat)
    (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)          # (B, ...)
    norms = grads.flatten(1).norm(2, dim=1)                                         # (B,)
    return ((norms - 1) ** 2).mean()


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||_2^2] at real images ``(B, ...)`` (Mescheder et al. 2018, eq. 9).

    Penalising D's slope on the data keeps it from growing sharp peaks around the real
    images, the oscillation their analysis finds; the paper adds ``gamma / 2`` times this to
    D's loss. Unweighted; differentiable in D's weights (``create_graph=True``).
    """
    x = real.detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(discriminator(x).float().sum(), x, create_graph=True)  # (B, ...)
    return grads.flatten(1).pow(2).sum(1).mean()


def clip_weights(module: nn.Module, clip: float) -> None:
    """WGAN's crude Lipschitz constraint: clamp every parameter to [-clip, clip]."""
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-clip, clip)
