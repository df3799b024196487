"""Every chapter-03 checker passes the reference, fails the stub, and fails plausible wrong
answers with a message that names the mistake."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import gan
from course_lib.checkers.ch03 import (
    check_discriminator_loss,
    check_gan_step,
    check_generator_loss,
    check_gradient_penalty,
)
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


# ----------------------------------------------------------------------------- discriminator loss
def test_discriminator_loss_reference_passes(capsys):
    check_discriminator_loss(lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean())
    assert "\u2714 discriminator_loss" in capsys.readouterr().out


def test_discriminator_loss_bce_formulation_passes(capsys):
    def bce(r, f):
        return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
    check_discriminator_loss(bce)
    assert "\u2714" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (lambda r, f: -(F.softplus(-r).mean() + F.softplus(f).mean()), "sign is flipped"),
    (lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(), "swapped"),
    (lambda r, f: F.binary_cross_entropy_with_logits(torch.cat([r, f]),
                                                     torch.cat([torch.ones_like(r), torch.zeros_like(f)])),
     "concatenated"),
    (lambda r, f: F.binary_cross_entropy_with_logits(torch.sigmoid(r), torch.ones_like(r))
     + F.binary_cross_entropy_with_logits(torch.sigmoid(f), torch.zeros_like(f)), "sigmoid twice"),
    (lambda r, f: F.softplus(-r).mean(), "Only the real term"),
    (lambda r, f: F.softplus(-r) + F.softplus(f), "scalar"),
    (lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(), "stably"),
    (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "differ"),
    (lambda r, f: (F.softplus(-r).mean() + F.softplus(f).mean()).detach(), "no gradient flows back to the logits"),
])
def test_discriminator_loss_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_discriminator_loss(wrong)


# ----------------------------------------------------------------------------- generator loss
def test_generator_loss_reference_passes(capsys):
    check_generator_loss(lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)))
    check_generator_loss(lambda f: F.softplus(-f).mean())
    assert "\u2714 generator_loss" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (lambda f: torch.log(1 - torch.sigmoid(f)).mean(), "saturating"),
    (lambda f: -F.softplus(-f).mean(), "sign is flipped"),
    (lambda f: F.softplus(f).mean(), "Wrong target"),
    (lambda f: F.binary_cross_entropy_with_logits(torch.sigmoid(f), torch.ones_like(f)), "sigmoid twice"),
    (lambda f: F.softplus(-f), "scalar"),
    (lambda f: F.softplus(-f).mean().detach() * 0 + 0.5, "differ"),
    # right value, but detached: used to crash with "element 0 of tensors does not require grad"
    (lambda f: F.softplus(-f).mean().detach(), "no gradient flows back to the logits"),
    (lambda f: torch.tensor(F.softplus(-f).mean().item()), "no gradient flows back to the logits"),
    # unstable forms: inf where D is sure (the discriminator's checker rejects the same form),
    # and a constant in the log that caps the loss and kills its gradient
    (lambda f: -torch.log(torch.sigmoid(f)).mean(), "loss is inf at logits -30 and -120.*underflows"),
    (lambda f: -torch.log(torch.sigmoid(f) + 1e-8).mean(), "loss is 18.42, expected 75.00.*caps it at 18.4"),
])
def test_generator_loss_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_generator_loss(wrong)


# ----------------------------------------------------------------------------- gradient penalty
def reference_gp(critic, real, fake, eps):
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def make_gp(*, on="interp", create_graph=True, norm="per_sample", square=True):
    def gp(critic, real, fake, eps):
        points = {"interp": eps * real + (1 - eps) * fake, "real": real, "fake": fake,
                  "swapped": eps * fake + (1 - eps) * real}[on]
        points = points.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(points).sum(), points, create_graph=create_graph)
        n = {"per_sample": lambda: g.flatten(1).norm(dim=1), "dim1": lambda: g.norm(dim=1),
             "batch": lambda: g.norm(), "last": lambda: g.norm(dim=-1)}[norm]()
        return ((n - 1) ** 2).mean() if square else (n - 1).mean()
    return gp


def test_gradient_penalty_reference_passes(capsys):
    check_gradient_penalty(reference_gp)
    check_gradient_penalty(make_gp())
    assert capsys.readouterr().out.count("\u2714 gradient_penalty") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (make_gp(on="real"), "not on the real images"),
    (make_gp(on="fake"), "not on the fake images"),
    (make_gp(on="swapped"), "swapped"),
    (make_gp(create_graph=False), "create_graph=True"),
    (make_gp(norm="dim1"), "wrong dimension"),
    (make_gp(norm="batch"), "whole batch"),
    (make_gp(norm="last"), "differ"),
    (make_gp(square=False), "Square"),
    (lambda c, r, f, e: make_gp()(c, r, f, e).detach(), "not differentiable"),
])
def test_gradient_penalty_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_gradient_penalty(wrong)


# ----------------------------------------------------------------------------- the alternating step
def reference_gan_step(generator, discriminator, opt_g, opt_d, real, z):
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


def test_gan_step_reference_passes(capsys):
    check_gan_step(reference_gan_step)
    out = capsys.readouterr().out
    assert "\u2714 gan_step" in out and "modes" in out


def test_gan_step_no_grad_fake_and_fresh_forward_passes(capsys):
    """The other common right answer: the D step's fake under no_grad, G(z) run again for G."""
    def fresh(generator, discriminator, opt_g, opt_d, real, z):
        with torch.no_grad():
            fake = generator(z)
        d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = gan.generator_loss(discriminator(generator(z)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss, g_loss                        # 0-d tensors are accepted too
    check_gan_step(fresh, steps=50, min_modes=0)
    assert "\u2714 gan_step" in capsys.readouterr().out


def not_detached_reused(generator, discriminator, opt_g, opt_d, real, z):
    fake = generator(z)
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake))        # no .detach()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = gan.generator_loss(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def not_detached_fresh(generator, discriminator, opt_g, opt_d, real, z):
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(generator(z)))  # no .detach()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = gan.generator_loss(discriminator(generator(z)))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def d_stepped_in_g_step(generator, discriminator, opt_g, opt_d, real, z):
    fake = generator(z)
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = gan.generator_loss(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    opt_d.step()  # D stepped on G's loss
    return d_loss.item(), g_loss.item()


def g_first(generator, discriminator, opt_g, opt_d, real, z):
    g_loss = gan.generator_loss(discriminator(generator(z)))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(generator(z).detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    return d_loss.item(), g_loss.item()


def saturating(generator, discriminator, opt_g, opt_d, real, z):
    fake = generator(z)
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = gan.saturating_generator_loss(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def two_d_steps(generator, discriminator, opt_g, opt_d, real, z):
    fake = generator(z)
    for _ in range(2):
        d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
    g_loss = gan.generator_loss(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def g_step_on_fresh_z(generator, discriminator, opt_g, opt_d, real, z):
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(generator(z).detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = gan.generator_loss(discriminator(generator(torch.randn_like(z))))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def no_g_step(generator, discriminator, opt_g, opt_d, real, z):
    fake = generator(z)
    d_loss = gan.discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    return d_loss.item(), 0.0


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented"),
    (not_detached_reused, "fake was not detached in the D step: d_loss.backward"),
    (not_detached_fresh, "G's weights held gradients of the D loss: the fake was not detached"),
    (d_stepped_in_g_step, "opt_d.step\\(\\) was called again during the G step"),
    (g_first, "generator stepped before the discriminator"),
    (saturating, "non-saturating"),
    (no_g_step, "each optimizer must step once"),
    (two_d_steps, "opt_d stepped 2 times before the G step.*one D step per call"),
    (g_step_on_fresh_z, r"g_loss \d\.\d{6}, the reference's \d\.\d{6}; G's weights differ.*the given z"),
    (lambda *args: 1.0, "tuple"),
])
def test_gan_step_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_gan_step(wrong)
