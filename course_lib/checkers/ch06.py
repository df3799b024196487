"""Checkers for chapter 06 (fusion): the joint loss and the backbone weight transfer.

Conventions (course_lib.fusion): ``mask`` is (B, 1, H, W) with 1 = hole; the inpainting
term is the squared error on the hole, *summed per image* and averaged over the batch,
so it sits on the same per-image scale as the negative ELBO.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..fusion import find_backbone, inpainting_loss, joint_loss
from ..inpainting import InpaintingNet, masked_mse_loss
from ..vae import VAE
from .core import ExerciseError, check_close, passed, run_student


def _case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 3, 8, 8, generator=g)
    fill = torch.rand(3, 3, 8, 8, generator=g)
    mask = torch.zeros(3, 1, 8, 8)
    mask[0, :, 2:6, 2:6] = 1          # a centre block
    mask[1, :, 4:, :] = 1             # the bottom half
    mask[2, :, 0:3, 5:8] = 1          # a corner block
    elbo = torch.tensor(123.4)
    return elbo, fill, x, mask


def check_joint_loss(joint_loss_fn: Callable[..., torch.Tensor]) -> None:
    """``joint_loss_fn(elbo, fill, x, mask, lam=...)`` = elbo + lam * L_inpainting."""
    elbo, fill, x, mask = _case(0)
    sq = (fill - x) ** 2
    hole = (sq * mask).flatten(1).sum(1).mean()
    for lam in (2.5, 0.0):
        got = run_student("joint_loss", joint_loss_fn, elbo, fill, x, mask, lam=lam)
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"joint_loss: expected a torch.Tensor, got {type(got).__name__}.")
        if got.numel() != 1:
            raise ExerciseError(f"joint_loss: expected a scalar, got shape {tuple(got.shape)}; "
                                "sum over pixels per image, then average over the batch.")
        value = got.detach().float().reshape(())
        if lam == 0.0 and not torch.allclose(value, elbo, rtol=1e-5):
            raise ExerciseError(f"joint_loss: with lam = 0 the loss must equal the ELBO term "
                                f"({elbo.item():.4g}), got {value.item():.4g}.")
        if lam == 0.0:
            continue
        wrong = {
            "the inpainting term counts the whole image; only the hole (mask == 1) must count":
                elbo + lam * sq.flatten(1).sum(1).mean(),
            "the mask is inverted: it measures the known pixels; 1 marks the hole":
                elbo + lam * (sq * (1 - mask)).flatten(1).sum(1).mean(),
            "the inpainting term is a mean over hole values (chapter 04's masked MSE); here it "
            "is summed per image like the ELBO, then averaged over the batch":
                elbo + lam * masked_mse_loss(fill, x, mask),
            "the inpainting term is summed over the batch too; average it over the images":
                elbo + lam * (sq * mask).sum(),
            "lambda multiplies the ELBO; it weighs the inpainting term: elbo + lam * L_inp":
                lam * elbo + hole,
            "lambda is missing: elbo + lam * L_inp":
                elbo + hole,
            "the inpainting term is subtracted; both terms are minimised, so add it":
                elbo - lam * hole,
            "the ELBO term is missing: L = L_ELBO + lam * L_inp":
                lam * hole,
        }
        expected = joint_loss(elbo, fill, x, mask, lam=lam)
        if not torch.allclose(value, expected.reshape(()), rtol=1e-5):
            for message, candidate in wrong.items():
                if torch.allclose(value, candidate.reshape(()), rtol=1e-5):
                    raise ExerciseError(f"joint_loss: {message}.")
        check_close("joint_loss", got.reshape(()), expected.reshape(()),
                    hint="L = elbo + lam * sum over hole pixels of (fill - x)^2, mean over images.")
    passed("joint_loss", f"hole term {inpainting_loss(fill, x, mask).item():.3f} per image")


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_transfer(transfer_fn: Callable[[nn.Module, nn.Module], object]) -> None:
    """``transfer_fn(src, dst)`` copies the backbone of ``src`` (an InpaintingNet) into the
    encoder of ``dst`` (a VAE), and nothing else."""
    torch.manual_seed(0)
    src = InpaintingNet()
    dst = VAE(latent_dim=4, image_size=16)
    src_before, dst_before = _snapshot(src), _snapshot(dst)
    run_student("transfer", transfer_fn, src, dst)
    src_prefix, src_backbone = find_backbone(src)
    dst_prefix, dst_backbone = find_backbone(dst)
    for key, value in src.state_dict().items():
        if not torch.equal(value, src_before[key]):
            raise ExerciseError(f"transfer: it changed the source's {key}; read from `src`, write to `dst`.")
    if dst_backbone is src_backbone or any(
            a.data_ptr() == b.data_ptr() for a in dst.parameters() for b in src.parameters()):
        raise ExerciseError("transfer: the two models now share the same parameter tensors (you "
                            "assigned modules or parameters). Training the VAE would then change "
                            "the inpainting network too: copy the values with "
                            "load_state_dict(...) or tensor.copy_().")
    missing = [dst_prefix + k for k, v in dst_backbone.state_dict().items()
               if not torch.equal(v, src_backbone.state_dict()[k])]
    if len(missing) == len(dst_backbone.state_dict()):
        raise ExerciseError(
            "transfer: nothing was copied. Keys differ between the models "
            f"('{src_prefix}conv1.weight' in the source, '{dst_prefix}conv1.weight' in the VAE): "
            "copy backbone to backbone, e.g. dst.encoder.backbone.load_state_dict("
            "src.backbone.state_dict()).")
    if missing:
        raise ExerciseError(f"transfer: these backbone tensors were not copied: {', '.join(missing)}.")
    changed = [k for k, v in dst.state_dict().items()
               if not k.startswith(dst_prefix) and not torch.equal(v, dst_before[k])]
    if changed:
        raise ExerciseError(f"transfer: it changed layers outside the backbone: {', '.join(changed)}; "
                            "only conv1-conv3 of the backbone come from the inpainting model.")
    if not all(p.requires_grad for p in dst.parameters()):
        raise ExerciseError("transfer: some VAE parameters no longer require gradients; the "
                            "fine-tuned initialisation keeps them all trainable.")
    passed("transfer", f"{len(dst_backbone.state_dict())} backbone tensors copied, the rest untouched")
