"""Checkers for chapter 06 (fusion): the joint loss, the backbone weight transfer, and the
statistics that judge the experiment (Welch's t statistic, Holm's correction).

Conventions (course_lib.fusion): ``mask`` is (B, 1, H, W) with 1 = hole; the inpainting
term is the squared error on the hole, *summed per image* and averaged over the batch,
so it sits on the same per-image scale as the negative ELBO.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..fusion import find_backbone, inpainting_loss, joint_loss, transfer_backbone
from ..inpainting import InpaintingNet, masked_mse_loss
from ..stats import holm, holm_adjusted, welch_se_df, welch_t_test
from ..vae import VAE
from .ch04 import hole_case
from .core import ExerciseError, check_close, check_scalar, own_work, passed, run_student


@own_work(joint_loss, inpainting_loss)
def check_joint_loss(joint_loss_fn: Callable[..., torch.Tensor]) -> None:
    """``joint_loss_fn(elbo, x_hat, x, mask, lam=...)`` = elbo + lam * L_inpainting, with the
    reference's gradients w.r.t. the ELBO and x_hat (the joint model trains on it)."""
    elbo, (x_hat, x, mask) = torch.tensor(123.4), hole_case(0)   # chapter 04's three holes
    sq = (x_hat - x) ** 2
    hole = (sq * mask).flatten(1).sum(1).mean()
    for lam in (2.5, 0.0):
        got = run_student("joint_loss", joint_loss_fn, elbo, x_hat, x, mask, lam=lam)
        check_scalar("joint_loss", got, hint="sum over pixels per image, then average over the batch.")
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
                elbo + lam * masked_mse_loss(x_hat, x, mask),
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
        expected = joint_loss(elbo, x_hat, x, mask, lam=lam)
        if not torch.allclose(value, expected.reshape(()), rtol=1e-5):
            for message, candidate in wrong.items():
                if torch.allclose(value, candidate.reshape(()), rtol=1e-5):
                    raise ExerciseError(f"joint_loss: {message}.")
        check_close("joint_loss", got.reshape(()), expected.reshape(()),
                    hint="L = elbo + lam * sum over hole pixels of (x_hat - x)^2, mean over images.")
    inputs = [elbo.clone().requires_grad_(True), x_hat.clone().requires_grad_(True)]
    out = run_student("joint_loss", joint_loss_fn, inputs[0], inputs[1], x, mask, lam=2.5)
    grads = torch.autograd.grad(out.sum(), inputs, allow_unused=True) if (
        isinstance(out, torch.Tensor) and out.requires_grad) else (None, None)
    ref_in = [elbo.clone().requires_grad_(True), x_hat.clone().requires_grad_(True)]
    ref_grads = torch.autograd.grad(joint_loss(ref_in[0], ref_in[1], x, mask, lam=2.5), ref_in)
    for g, want, what in zip(grads, ref_grads, ("the ELBO", "x_hat")):
        if g is None or not torch.allclose(g, want, atol=1e-6, rtol=1e-4):
            term = "inpainting" if what == "x_hat" else "ELBO"
            raise ExerciseError(f"joint_loss: the value is right but {what} gets {'no' if g is None else 'a wrong'} "
                                f"gradient: the {term} term was added as a number (.item(), .detach() or NumPy), "
                                "so it cannot train the model. Keep both terms torch tensors.")
    passed("joint_loss", f"hole term {inpainting_loss(x_hat, x, mask).item():.3f} per image")


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@own_work(transfer_backbone)
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


def _welch_parts(a: np.ndarray, b: np.ndarray, *, ddof: int = 1) -> tuple[float, float, float]:
    """(mean difference, squared standard error of a's mean, of b's mean)."""
    return a.mean() - b.mean(), a.var(ddof=ddof) / len(a), b.var(ddof=ddof) / len(b)


@own_work(welch_se_df, welch_t_test)
def check_welch_t(welch_t_fn: Callable[[np.ndarray, np.ndarray], tuple[float, float]]) -> None:
    """``welch_t_fn(a, b)`` returns Welch's ``(t, df)`` for two 1-D NumPy samples."""
    rng = np.random.default_rng(6)
    # unequal sizes and variances: there the pooled (Student) test and ddof=0 both differ
    cases = [(rng.normal(1.0, 0.5, 3), rng.normal(0.0, 2.0, 5)),
             (rng.normal(0.0, 1.0, 4), rng.normal(0.3, 0.2, 6))]
    for a, b in cases:
        got = run_student("welch_t", welch_t_fn, a.copy(), b.copy())
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise ExerciseError(f"welch_t: expected a pair (t, df), got {type(got).__name__}.")
        try:
            t, df = (float(np.asarray(v, dtype=float)) for v in got)
        except (TypeError, ValueError):
            raise ExerciseError(f"welch_t: t and df must be two numbers, got {got!r:.60}.") from None
        se, ref_df = welch_se_df(a, b)
        diff, va, vb = _welch_parts(a, b)
        d0, va0, vb0 = _welch_parts(a, b, ddof=0)
        na, nb = len(a), len(b)
        pooled = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
        wrong_t = {
            "the variances use ddof=0; the unbiased sample variance divides by n - 1 (ddof=1)":
                d0 / np.sqrt(va0 + vb0),
            "this is Student's pooled t (one variance for both samples); Welch keeps "
            "s_a^2 / n_a + s_b^2 / n_b": diff / np.sqrt(pooled * (1 / na + 1 / nb)),
            "the standard error is missing its square root: se = sqrt(s_a^2/n_a + s_b^2/n_b)":
                diff / (va + vb),
            "the sign is flipped: t = (mean(a) - mean(b)) / se": -diff / se,
        }
        wrong_df = {
            "the variances use ddof=0; the unbiased sample variance divides by n - 1 (ddof=1)":
                (va0 + vb0) ** 2 / (va0**2 / (na - 1) + vb0**2 / (nb - 1)),
            "df = n_a + n_b - 2 is Student's; Welch's df is (va + vb)^2 / (va^2/(n_a-1) + vb^2/(n_b-1)) "
            "with va = s_a^2/n_a, vb = s_b^2/n_b": na + nb - 2,
            "the df's denominator divides by n, not by n - 1": (va + vb) ** 2 / (va**2 / na + vb**2 / nb),
        }
        for name, value, ref, wrong in (("t", t, diff / se, wrong_t), ("df", df, ref_df, wrong_df)):
            if np.isclose(value, ref, rtol=1e-6):
                continue
            for message, candidate in wrong.items():
                if np.isclose(value, candidate, rtol=1e-6):
                    raise ExerciseError(f"welch_t: {message}.")
            raise ExerciseError(f"welch_t: {name} = {value:.4g}, expected {ref:.4g} for a = {np.round(a, 3)}, "
                                f"b = {np.round(b, 3)}.")
    passed("welch_t", "t and the Welch-Satterthwaite df agree with course_lib.stats")


# (p-values, alpha) chosen so that each known mistake gives a different answer somewhere
_HOLM_CASES = [([0.02, 0.3, 0.001, 0.024, 0.021], 0.05),   # stops at 0.02; 0.024 would pass alone
               ([0.3, 0.02, 0.004], 0.05),                 # Holm rejects 0.02, Bonferroni does not
               ([0.02, 0.5], 0.05),                        # 0.02 passes alpha / m, not alpha / (m + 1)
               ([0.008, 0.04, 0.5], 0.10),                 # another alpha
               ([0.05, 0.01], 0.05),                       # p equal to its threshold is rejected (<=)
               ([0.04, 0.045, 0.2], 0.05),                 # none: no correction rejects two
               ([0.03, 0.04], 0.05)]                       # none: Hochberg's step-up rejects both


def _holm_mistakes(p: list[float], alpha: float) -> dict[str, list[bool]]:
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])

    def step_down(threshold, stop=True, strict=False):
        out, going = [False] * m, True
        for rank, i in enumerate(order):
            passes = p[i] < threshold(rank) if strict else p[i] <= threshold(rank)
            going = (going or not stop) and passes
            out[i] = going
        return out

    holm_sorted = [holm(p, alpha=alpha)[i] for i in order]
    passing = [rank for rank, i in enumerate(order) if p[i] <= alpha / (m - rank)]
    hochberg = [rank <= max(passing, default=-1) for rank in range(m)]        # by rank
    return {
        "this is Hochberg's step-up procedure (reject every p below the largest one that passes its "
        "threshold); Holm steps down: start at the smallest p and stop at the first that fails":
            [hochberg[order.index(i)] for i in range(m)],
        "a p-value equal to its threshold is rejected: Holm rejects while p <= alpha / (m - i + 1), "
        "not p < alpha / (m - i + 1)":
            step_down(lambda r: alpha / (m - r), strict=True),
        "no correction: p <= alpha for each of m tests lets about alpha * m false 'clear "
        "differences' through; compare the i-th smallest p with alpha / (m - i + 1)":
            [q <= alpha for q in p],
        "this is Bonferroni (every p against alpha / m): valid, but Holm relaxes the threshold "
        "step by step, alpha / m, alpha / (m - 1), ...": [q <= alpha / m for q in p],
        "Holm stops at the first p that fails its threshold: every larger p is not rejected "
        "either, even if it would pass its own threshold": step_down(lambda r: alpha / (m - r), stop=False),
        "the thresholds are off by one: the smallest p is compared with alpha / m":
            step_down(lambda r: alpha / (m - r + 1)),
        "the answer is in sorted order; return one bool per input p-value, in the input's order":
            holm_sorted,
        "alpha is ignored (0.05 hard-coded?): use the alpha argument": holm(p, alpha=0.05),
    }


@own_work(holm, holm_adjusted)
def check_holm(holm_fn: Callable[..., Sequence[bool]]) -> None:
    """``holm_fn(pvalues, alpha=...)`` returns one bool per p-value: rejected by Holm's procedure."""
    answers, mistakes = [], {}
    for p, alpha in _HOLM_CASES:
        got = run_student("holm", holm_fn, list(p), alpha=alpha)
        try:
            got = [bool(v) for v in got]
        except (TypeError, ValueError):
            shape = getattr(got, "shape", None)
            raise ExerciseError(f"holm: expected a flat list of bools, one per p-value, got {type(got).__name__}"
                                + (f" of shape {tuple(shape)}; flatten it or build a list" if shape else "")
                                + ".") from None
        if len(got) != len(p):
            raise ExerciseError(f"holm: expected {len(p)} bools (one per p-value), got {len(got)}.")
        answers.append(got)
        for message, wrong in _holm_mistakes(p, alpha).items():
            mistakes.setdefault(message, []).append(wrong)
    expected = [holm(p, alpha=alpha) for p, alpha in _HOLM_CASES]
    if answers != expected:
        for message, wrong in mistakes.items():
            if wrong == answers:
                raise ExerciseError(f"holm: {message}.")
        case = next(i for i, (a, e) in enumerate(zip(answers, expected)) if a != e)
        p, alpha = _HOLM_CASES[case]
        raise ExerciseError(f"holm: for p = {p}, alpha = {alpha} expected {expected[case]}, got {answers[case]}.")
    passed("holm", f"{len(_HOLM_CASES)} families, step-down thresholds alpha / (m - i + 1)")
