"""Every chapter-03 checker passes the reference, fails the stub, and fails plausible wrong
answers with a message that names the mistake."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import gan
from course_lib.checkers.ch03 import check_discriminator_loss, check_generator_loss, check_gradient_penalty
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


# ----------------------------------------------------------------------------- discriminator loss
def test_discriminator_loss_reference_passes(capsys):
    check_discriminator_loss(gan.discriminator_loss)
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
    (lambda r, f: F.binary_cross_entropy_with_logits(torch.cat([r, f]), torch.cat([torch.ones_like(r), torch.zeros_like(f)])),
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
    check_generator_loss(gan.generator_loss)
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
])
def test_generator_loss_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_generator_loss(wrong)


# ----------------------------------------------------------------------------- gradient penalty
def reference_gp(critic, real, fake, eps):
    return gan.gradient_penalty(critic, real, fake, eps=eps)


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
