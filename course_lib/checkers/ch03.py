"""Checkers for chapter 03 (GANs): discriminator loss, non-saturating generator loss,
gradient penalty, and the alternating training step (checked on the playground's 2-D ring).

Each takes the student's function, compares it with :mod:`course_lib.gan` on inputs
chosen so that the plausible mistakes give different numbers, and names the mistake.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import gan
from ..playground import high_quality_fraction, mlp, modes_covered, ring_centers, sample_data
from .core import ExerciseError, check_close, library_guard, own_work, passed, run_student, unwatched

# Logits far from 0 on both sides, so sign errors and swapped labels change the value.
_REAL = torch.tensor([2.0, -0.5, 1.5, 3.0, 0.2, -1.0])
_FAKE = torch.tensor([-1.5, 0.3, -2.5, 1.0, -0.2, 0.5])


def _matches(got, value: torch.Tensor) -> bool:
    return isinstance(got, torch.Tensor) and got.shape == value.shape and torch.allclose(
        got.detach().float(), value.float(), atol=1e-5, rtol=1e-4)


def _scalar(name: str, got) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if got.dim() != 0:
        raise ExerciseError(f"{name}: expected a scalar (average over the batch), got shape {tuple(got.shape)}. "
                            f"Did you forget .mean()?")
    return got


@own_work(gan.discriminator_loss)
def check_discriminator_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(real_logits, fake_logits)`` = -mean log D(x) - mean log(1 - D(G(z))), D = sigmoid."""
    name = "discriminator_loss"
    got = _scalar(name, run_student(name, fn, _REAL.clone(), _FAKE.clone()))
    expected = gan.discriminator_loss(_REAL, _FAKE)
    sp = F.softplus
    wrong = {
        "The sign is flipped: the loss is the *negative* log-likelihood, -log D(x) - log(1 - D(G(z))).":
            -expected,
        "Real and fake labels are swapped: real images get target 1, generated images target 0.":
            sp(_REAL).mean() + sp(-_FAKE).mean(),
        "You averaged over the concatenated batch; this course adds the two averages "
        "(real term + fake term), as in Goodfellow's eq. 1.":
            expected / 2,
        "The inputs are logits: you applied sigmoid twice (sigmoid, then BCE-with-logits). "
        "Use F.binary_cross_entropy_with_logits on the logits, or softplus.":
            F.binary_cross_entropy_with_logits(torch.sigmoid(_REAL), torch.ones(6))
            + F.binary_cross_entropy_with_logits(torch.sigmoid(_FAKE), torch.zeros(6)),
        "Only the real term is there: add the fake term -mean log(1 - D(G(z))).": sp(-_REAL).mean(),
        "Only the fake term is there: add the real term -mean log D(x).": sp(_FAKE).mean(),
    }
    for hint, value in wrong.items():
        if _matches(got, value):
            raise ExerciseError(f"{name}: {hint}")
    check_close(name, got, expected, hint="Expected softplus(-real).mean() + softplus(fake).mean().")
    out = _scalar(name, run_student(name, fn, _REAL.clone().requires_grad_(True), _FAKE.clone().requires_grad_(True)))
    if not out.requires_grad:
        raise ExerciseError(f"{name}: the value is right but no gradient flows back to the logits, so the "
                            "discriminator cannot learn from it. Do not .detach() or call .item(); build "
                            "the loss from the logits with torch operations.")
    # A perfect discriminator costs ~0; a completely fooled one costs ~400 (finite!).
    perfect = run_student(name, fn, torch.full((4,), 30.0), torch.full((4,), -30.0))
    check_close(name, _scalar(name, perfect), torch.tensor(0.0), atol=1e-4,
                hint="A perfect discriminator (huge positive logits on real, huge negative on fake) "
                     "should have loss ~0.")
    fooled = _scalar(name, run_student(name, fn, torch.full((4,), -200.0), torch.full((4,), 200.0)))
    if not torch.isfinite(fooled).all():
        raise ExerciseError(f"{name}: the loss is inf for a completely fooled discriminator (logits +-200): "
                            f"log(sigmoid(x)) underflows. Compute it stably from the logits, e.g. with "
                            f"F.binary_cross_entropy_with_logits or softplus.")
    check_close(name, fooled, torch.tensor(400.0), rtol=1e-3, hint="A fooled discriminator should cost ~400.")
    passed(name)


@own_work(gan.generator_loss)
def check_generator_loss(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(fake_logits)`` = -mean log D(G(z)) (the non-saturating loss), finite and with its
    full gradient where D rejects the fakes outright (logits -30 and -120)."""
    name = "generator_loss"
    got = _scalar(name, run_student(name, fn, _FAKE.clone()))
    expected = gan.generator_loss(_FAKE)
    wrong = {
        "This is the saturating minimax loss mean log(1 - D(G(z))); its gradient vanishes when D "
        "rejects the samples. Use the non-saturating -mean log D(G(z)).": gan.saturating_generator_loss(_FAKE),
        "The sign is flipped: minimise -log D(G(z)).": -expected,
        "Wrong target: the generator wants D(G(z)) = 1 (label 'real'), not 0.": F.softplus(_FAKE).mean(),
        "The inputs are logits: you applied sigmoid twice.":
            F.binary_cross_entropy_with_logits(torch.sigmoid(_FAKE), torch.ones(6)),
    }
    for hint, value in wrong.items():
        if _matches(got, value):
            raise ExerciseError(f"{name}: {hint}")
    check_close(name, got, expected, hint="Expected softplus(-fake_logits).mean().")
    # Non-saturating: a strong gradient exactly where D rejects the fakes (logit -10).
    logits = torch.full((3,), -10.0, requires_grad=True)
    out = _scalar(name, run_student(name, fn, logits))
    if not out.requires_grad:
        raise ExerciseError(f"{name}: the value is right but no gradient flows back to the logits, so "
                            f"the generator cannot learn from it. Do not .detach() the loss, call "
                            f".item() or go through NumPy; build it from fake_logits with torch operations.")
    (grad,) = torch.autograd.grad(out, logits, allow_unused=True)
    if grad is None:
        raise ExerciseError(f"{name}: the loss does not depend on fake_logits; compute it from them.")
    if grad.abs().mean() < 0.1:
        raise ExerciseError(f"{name}: the gradient vanishes when D rejects the fakes (logit -10); "
                            f"the non-saturating loss should still push hard there.")
    # Where D is sure (logits -30, -120) the loss is softplus(-x) = 30, 120 and its gradient
    # -1/B per logit; log(sigmoid(x)) underflows there, and log(sigmoid(x) + 1e-8) caps at 18.4.
    far = torch.tensor([-30.0, -120.0], requires_grad=True)
    out = _scalar(name, run_student(name, fn, far))
    stable = "Compute it from the logits: F.softplus(-fake_logits).mean(), or BCE-with-logits with target 1."
    if not torch.isfinite(out):
        raise ExerciseError(f"{name}: the loss is {out.item()} at logits -30 and -120 (D sure the fakes are "
                            f"fake): log(sigmoid(x)) underflows to log(0). {stable}")
    if abs(out.item() - 75.0) > 0.01:
        raise ExerciseError(f"{name}: at logits -30 and -120 the loss is {out.item():.2f}, expected 75.00 "
                            "(-log sigmoid(x) = softplus(-x)). A constant inside the log, log(sigmoid(x) + "
                            f"1e-8), caps it at 18.4 and kills its gradient there. {stable}")
    (grad,) = torch.autograd.grad(out, far, allow_unused=True)
    if grad is None or not torch.allclose(grad, torch.full_like(grad, -0.5), atol=1e-3):
        got = "none" if grad is None else ", ".join(f"{v:.2g}" for v in grad.tolist())
        raise ExerciseError(f"{name}: at logits -30 and -120 the gradient is ({got}), expected (-0.5, -0.5): "
                            f"it vanishes where D rejects the fakes. {stable}")
    passed(name)


class _Critic(nn.Module):
    """A small non-linear critic on (B, 3, 4, 4) inputs: gradient norms vary with x."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 1)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1)).flatten() * 3


def _variants(critic, real, fake, eps):
    """Reference penalty and the plausible mistakes, keyed by the hint for each."""
    def penalty(points, reduce, create_graph=True):
        points = points.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(points).sum(), points, create_graph=create_graph)
        return reduce(g)

    per_sample = lambda g: ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()  # noqa: E731
    x_hat = eps * real + (1 - eps) * fake
    return {
        "The penalty must be on the interpolates x_hat = eps * real + (1 - eps) * fake, not on the real images.":
            penalty(real, per_sample),
        "The penalty must be on the interpolates x_hat = eps * real + (1 - eps) * fake, not on the fake images.":
            penalty(fake, per_sample),
        "eps weighs the real images: x_hat = eps * real + (1 - eps) * fake (you swapped them).":
            penalty(eps * fake + (1 - eps) * real, per_sample),
        "The norm is over the wrong dimension: take one L2 norm per sample over all non-batch dims, "
        "e.g. grads.flatten(1).norm(dim=1), not norm(dim=1) on the (B, C, H, W) gradient.":
            penalty(x_hat, lambda g: ((g.norm(dim=1) - 1) ** 2).mean()),
        "The norm is over the whole batch: take one L2 norm per sample, grads.flatten(1).norm(dim=1).":
            penalty(x_hat, lambda g: (g.norm() - 1) ** 2),
        "Square the distance from 1: (||grad|| - 1) ** 2, not ||grad|| - 1 or ||grad||^2.":
            penalty(x_hat, lambda g: (g.flatten(1).norm(dim=1) - 1).mean()),
        "Penalise (||grad|| - 1)^2, not ||grad||^2.":
            penalty(x_hat, lambda g: (g.flatten(1).norm(dim=1) ** 2).mean()),
    }


@own_work(gan.gradient_penalty)
def check_gradient_penalty(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(critic, real, fake, eps)`` = mean over samples of (||grad critic(x_hat)||_2 - 1)^2."""
    name = "gradient_penalty"
    critic = _Critic()
    g = torch.Generator().manual_seed(0)
    real = torch.rand(5, 3, 4, 4, generator=g)
    fake = torch.rand(5, 3, 4, 4, generator=g)
    eps = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]).view(5, 1, 1, 1)
    got = _scalar(name, run_student(name, fn, critic, real.clone(), fake.clone(), eps.clone()))
    expected = gan.gradient_penalty(critic, real, fake, eps=eps)
    for hint, value in _variants(critic, real, fake, eps).items():
        if _matches(got, value):
            raise ExerciseError(f"{name}: {hint}")
    check_close(name, got, expected,
                hint="Expected ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean() with grads of critic(x_hat).sum() "
                     "w.r.t. x_hat.")
    # The penalty has to train the critic: its gradient w.r.t. the critic's weights must exist.
    if not got.requires_grad or got.grad_fn is None:
        raise ExerciseError(f"{name}: the value is right but it is not differentiable w.r.t. the critic's weights. "
                            f"Pass create_graph=True to torch.autograd.grad so the penalty can train the critic.")
    params = list(critic.parameters())
    got_grads = torch.autograd.grad(got, params, allow_unused=True)
    ref_grads = torch.autograd.grad(expected, params, allow_unused=True)
    for p, gg, rg in zip(params, got_grads, ref_grads):
        gg = torch.zeros_like(p) if gg is None else gg      # the output bias never matters
        rg = torch.zeros_like(p) if rg is None else rg
        if not torch.allclose(gg, rg, atol=1e-5, rtol=1e-4):
            raise ExerciseError(f"{name}: the value is right but its gradient w.r.t. the critic's weights is not. "
                                f"Did you detach something, or forget create_graph=True?")
    passed(name)


# ----------------------------------------------------------------------------- the alternating step
def _ring_players(seed: int, width: int = 64, depth: int = 3):
    """The playground's players (:mod:`course_lib.playground`): G maps 2-D noise to points,
    D maps points to one logit; Adam as the playground's "ns" preset (lr 2e-3, betas 0.5, 0.9)."""
    torch.manual_seed(seed)
    generator = mlp(n_in=2, n_out=2, width=width, depth=depth)
    discriminator = nn.Sequential(mlp(n_in=2, n_out=1, width=width, depth=depth), nn.Flatten(0))  # (B,) logits
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.9))
    return generator, discriminator, opt_g, opt_d


def reference_gan_step(generator, discriminator, opt_g, opt_d, real, z) -> tuple[float, float]:
    """One D step on real + detached fake, then one G step (Goodfellow et al. 2014, Algorithm 1
    with k = 1 and the non-saturating generator loss). Returns ``(d_loss, g_loss)`` floats."""
    fake = generator(z)
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = gan.generator_loss(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def _pair(name: str, out) -> tuple[float, float]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ExerciseError(f"{name}: return the two losses as a tuple (d_loss.item(), g_loss.item()), "
                            f"got {type(out).__name__}.")
    try:
        return tuple(float(v.detach() if isinstance(v, torch.Tensor) else v) for v in out)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError(f"{name}: the two losses must be numbers (loss.item()).") from None


def _one_step(name: str, fn: Callable) -> None:
    """Run the student's step once beside the reference on copies of the same players, batch
    and noise, watching which optimizer steps when and where the gradients went."""
    players = _ring_players(seed=0)
    ref = copy.deepcopy(players)
    g = torch.Generator().manual_seed(1)
    real, z = sample_data("ring", 64, generator=g), torch.randn(64, 2, generator=g)
    generator, discriminator, opt_g, opt_d = players
    events: list[tuple[str, bool]] = []   # (optimizer, did G hold a non-zero gradient at that step?)

    def watch(label):
        def hook(optimizer, args, kwargs):
            g_grad = any(p.grad is not None and p.grad.abs().max() > 0 for p in generator.parameters())
            events.append((label, g_grad))
        return hook

    opt_d.register_step_pre_hook(watch("D"))
    opt_g.register_step_pre_hook(watch("G"))
    try:
        with library_guard(name):
            got = fn(generator, discriminator, opt_g, opt_d, real.clone(), z.clone())
    except NotImplementedError:
        run_student(name, fn)                                   # the usual "not implemented" message
    except RuntimeError as err:
        if "backward through the graph a second time" in str(err):
            raise ExerciseError(
                f"{name}: the fake was not detached in the D step: d_loss.backward() went through G's graph "
                "and freed it, so g_loss.backward() could not use it again. Score the fakes with "
                "discriminator(fake.detach()) in the D step: D's loss must not reach G.") from None
        raise ExerciseError(f"{name}: your code raised RuntimeError: {err}") from err
    except ExerciseError:
        raise
    except Exception as err:
        raise ExerciseError(f"{name}: your code raised {type(err).__name__}: {err}") from err
    d_got, g_got = _pair(name, got)
    d_ref, g_ref = reference_gan_step(*ref, real, z)
    labels = [label for label, _ in events]
    if labels.count("D") == 0 or labels.count("G") == 0:
        raise ExerciseError(f"{name}: each optimizer must step once (opt_d.step() in the D step, opt_g.step() in "
                            f"the G step); the optimizers stepped {labels or 'never'}.")
    if labels[0] != "D":
        raise ExerciseError(f"{name}: the generator stepped before the discriminator. Step D first (on real and "
                            "detached fake), then G against the updated D.")
    if labels.count("D") > 1 and labels.index("G") > 1:
        raise ExerciseError(f"{name}: opt_d stepped {labels.index('G')} times before the G step; this exercise "
                            "takes one D step per call (k = 1 in Goodfellow et al.'s Algorithm 1), then one G step.")
    if labels.count("D") > 1:
        raise ExerciseError(f"{name}: opt_d.step() was called again during the G step. g_loss.backward() also "
                            "fills D's gradients (D is part of the graph), and stepping opt_d on them moves D "
                            "to help G fool it. In the G step only opt_g steps.")
    if labels.count("G") > 1:
        raise ExerciseError(f"{name}: opt_g stepped {labels.count('G')} times; one G step per call.")
    if events[0][1]:
        raise ExerciseError(f"{name}: when opt_d stepped, G's weights held gradients of the D loss: the fake "
                            "was not detached in the D step (discriminator(fake) instead of "
                            "discriminator(fake.detach())). D's loss must not train G: the D step's gradient "
                            "pushes G's samples to look *fake*.")
    d_moved = max((a - b).abs().max().item() for a, b in zip(discriminator.parameters(), ref[1].parameters()))
    g_moved = max((a - b).abs().max().item() for a, b in zip(generator.parameters(), ref[0].parameters()))
    if abs(d_got - d_ref) > 1e-4 * max(1.0, abs(d_ref)) or d_moved > 1e-5:
        raise ExerciseError(f"{name}: the D step differs from the reference (d_loss {d_got:.4f}, expected "
                            f"{d_ref:.4f}): d_loss = discriminator_loss(discriminator(real), "
                            "discriminator(fake.detach())), then opt_d.zero_grad(), d_loss.backward(), opt_d.step().")
    if abs(g_got - g_ref) > 1e-4 * max(1.0, abs(g_ref)) or g_moved > 1e-5:
        hint = ("score the fake of the given z (fake = generator(z), no fresh noise) with the *updated* D: "
                "g_loss = generator_loss(discriminator(fake)) after opt_d.step(), then opt_g.zero_grad(), "
                "g_loss.backward(), opt_g.step().")
        if abs(g_got - gan.saturating_generator_loss(ref[1](ref[0](z))).item()) < 0.5 and g_got < 0:
            hint = "use the non-saturating generator_loss (-log D(G(z))), not log(1 - D(G(z))). " + hint
        raise ExerciseError(f"{name}: the G step differs from the reference (g_loss {g_got:.6f}, the reference's "
                            f"{g_ref:.6f}; G's weights differ by up to {g_moved:.2g}): {hint}")


@own_work(reference_gan_step, gan.update_d, gan.update_g, gan.make_step)
def check_gan_step(fn: Callable, *, steps: int = 600, min_modes: int = 6, seed: int = 0) -> None:
    """``fn(generator, discriminator, opt_g, opt_d, real, z) -> (d_loss, g_loss)``: one
    discriminator step on ``real`` and the detached ``generator(z)``, then one generator step.

    First one step beside the reference (same players, batch and noise): right losses, right
    weights, opt_d stepped once and before opt_g, no D-loss gradient in G. Then ``steps`` steps
    on the playground's ring of 8 Gaussians (batch 128, one CPU thread, seconds): at least
    ``min_modes`` modes covered (:func:`course_lib.playground.modes_covered`)."""
    name = "gan_step"
    _one_step(name, fn)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                      # MLPs this small run faster on one thread
    with unwatched():                            # the first call was watched (_one_step)
        try:
            generator, discriminator, opt_g, opt_d = _ring_players(seed)
            g = torch.Generator().manual_seed(seed)
            for step in range(steps):
                real, z = sample_data("ring", 128, generator=g), torch.randn(128, 2, generator=g)
                d_loss, g_loss = _pair(name, run_student(name, fn, generator, discriminator, opt_g, opt_d, real, z))
                if not (torch.isfinite(torch.tensor(d_loss)) and torch.isfinite(torch.tensor(g_loss))):
                    raise ExerciseError(f"{name}: the losses became ({d_loss}, {g_loss}) at step {step}.")
            with torch.no_grad():
                points = generator(torch.randn(2000, 2, generator=g)).numpy()
        finally:
            torch.set_num_threads(threads)
    modes = modes_covered(points, ring_centers())
    sharp = high_quality_fraction(points, ring_centers())
    if modes < min_modes:
        raise ExerciseError(f"{name}: after {steps} steps on the ring the generator covers {modes} of 8 modes "
                            f"({sharp:.0%} of its points on a mode); the bar is {min_modes}. The one-step "
                            "comparison passed, so look at what changes over many calls (state kept between calls?).")
    passed(name, f"one step = the reference; {steps} steps on the ring: {modes}/8 modes, "
                 f"{sharp:.0%} of the points on a mode")
