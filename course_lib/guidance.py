"""Classifier-free guidance (Ho & Salimans 2022), chapter 10: chapter 09's flow model,
conditioned on ToyFaces' true attributes.

One network learns both velocities: trained with the attributes given, except for a random
share ``p_uncond`` of the images whose attributes are all replaced by
:data:`~course_lib.diffusion_unet.NULL_LABEL` (:func:`course_lib.flow.flow_step`). At sampling
time the two are combined with a guidance scale ``w``:

    u_w(x, t | y) = u(x, t | null) + w * (u(x, t | y) - u(x, t | null))

``w = 0`` is the unconditional model, ``w = 1`` the conditional one, ``w > 1`` pushes each sample
further in the direction that makes its attributes more likely: samples match the requested
attributes better, up to a point, and pay in realism and variety. :func:`guidance_sweep`
measures both sides of that dial.

**Autoguidance** (Karras et al. 2024) needs no labels at all: the same formula, with the
unconditional velocity of a *weaker* model (here the same network trained for fewer steps) in
place of the unconditional one, and a good model's in place of the conditional one:

    u_w(x, t) = u_weak(x, t) + w * (u_good(x, t) - u_weak(x, t))

Where the two models agree, nothing changes; where the weak one errs, the step moves further
away from its error. :func:`autoguided_velocity` builds it for :func:`course_lib.flow.integrate`.
"""
from __future__ import annotations

import torch

from .diffusion_unet import NULL_LABEL
from .feature_net import AttributeNet, attribute_accuracy
from .flow import FlowModel, sample_flow
from .inputs import check_value
from .metrics import sample_quality

# The attributes chapter 10's model is told: the discrete ones a person sees at 32 px.
GUIDE_ATTRIBUTES = ("skin", "hair_color", "hair_style", "glasses", "beard", "hat", "background")


def guide(u_cond: torch.Tensor, u_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """The guided velocity ``u_uncond + scale * (u_cond - u_uncond)`` (any shapes that match)."""
    if not isinstance(scale, torch.Tensor):
        check_value(scale, "float", "guidance scale")
    return u_uncond + scale * (u_cond - u_uncond)


def guided_velocity(model: FlowModel, labels: torch.Tensor, scale: float):
    """``velocity(x, t)`` for :func:`course_lib.flow.integrate`: the EMA network's guided
    velocity for ``labels`` ``(B, K)``. One network call on the doubled batch (conditional and
    unconditional halves), except at ``scale`` 0 or 1, where one half is all it needs."""
    null = torch.full_like(labels, NULL_LABEL)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 1:
            return model(x, t, labels)
        if scale == 0:
            return model(x, t, null)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        u_cond, u_uncond = both.chunk(2)
        return guide(u_cond, u_uncond, scale)

    return velocity


@torch.no_grad()
def sample_guided(model: FlowModel, labels: torch.Tensor, *, scale: float, steps: int = 25,
                  method: str = "euler", seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """One image per row of ``labels`` ``(n, K)`` (the model's condition attributes, as in
    ``ToyFaces.labels[:, config.condition_index()]``), guided with ``scale``; noise seeded as
    :func:`course_lib.flow.sample_flow` seeds it. Returns ``(n, 3, S, S)`` in [0, 1] on the CPU."""
    device = next(model.parameters()).device
    out = []
    for first in range(0, len(labels), batch_size):
        part = labels[first:first + batch_size].to(device)
        out.append(sample_flow(model, len(part), steps=steps, method=method, seed=seed + first,
                               batch_size=len(part), velocity=guided_velocity(model, part, scale)))
    return torch.cat(out)


def autoguided_velocity(good: FlowModel, weak: FlowModel, scale: float):
    """``velocity(x, t)`` for :func:`course_lib.flow.integrate`: the good model's velocity
    guided away from the weak model's, :func:`guide` ``(u_good, u_weak, scale)``. Both models
    unconditional, of the same image size. ``scale`` 1 is the good model alone (one call per
    evaluation); any other scale calls both models. Chapter 09 uses it."""
    check_value(scale, "float", "autoguidance scale")
    if (good.image_size, good.channels) != (weak.image_size, weak.channels):
        raise ValueError(f"autoguidance needs two models of one kind of image: good {good.image_size} px x "
                         f"{good.channels}, weak {weak.image_size} px x {weak.channels}")

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 1:
            return good(x, t)
        return guide(good(x, t), weak(x, t), scale)

    return velocity


@torch.no_grad()
def guidance_sweep(model: FlowModel, net: AttributeNet, real_images: torch.Tensor, labels: torch.Tensor,
                   condition_index: list[int], *, scales=(0.0, 1.0, 2.0, 3.0, 5.0), steps: int = 25,
                   seed: int = 1) -> list[dict]:
    """For each guidance scale: samples for the attributes of ``real_images`` (``labels``: their
    full ToyFaces labels ``(n, A)``), scored by how often the attribute net reads back each
    requested attribute (``agreement``: mean over the condition attributes), and by the
    Frechet distance, fidelity and diversity against those real images."""
    real_feats = net.features(real_images)
    rows = []
    for scale in scales:
        images = sample_guided(model, labels[:, condition_index], scale=scale, steps=steps, seed=seed)
        accuracy = attribute_accuracy(net, images, labels)
        names = [list(accuracy)[i] for i in condition_index]
        rows.append({"scale": scale, "agreement": sum(accuracy[k] for k in names) / len(names),
                     "per_attribute": {k: accuracy[k] for k in names},
                     **sample_quality(real_images, images, n=len(images), net=net, real_feats=real_feats,
                                      scores=("frechet", "fidelity", "diversity"))})
    return rows
