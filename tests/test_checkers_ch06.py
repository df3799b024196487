"""Chapter 06 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch

from course_lib.checkers.ch06 import check_joint_loss, check_transfer
from course_lib.checkers.core import ExerciseError
from course_lib.fusion import joint_loss, transfer_backbone
from course_lib.inpainting import masked_mse_loss



def stub(*args, **kwargs):
    raise NotImplementedError()


def test_joint_loss_reference_passes(capsys):
    check_joint_loss(joint_loss)
    assert "correct" in capsys.readouterr().out


def _sq(f, x):
    return (f - x) ** 2


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda e, f, x, m, lam: e + lam * _sq(f, x).flatten(1).sum(1).mean(), "whole image"),
    (lambda e, f, x, m, lam: e + lam * (_sq(f, x) * (1 - m)).flatten(1).sum(1).mean(), "inverted"),
    (lambda e, f, x, m, lam: e + lam * masked_mse_loss(f, x, m), "mean over hole values"),
    (lambda e, f, x, m, lam: e + lam * (_sq(f, x) * m).sum(), "summed over the batch"),
    (lambda e, f, x, m, lam: lam * e + (_sq(f, x) * m).flatten(1).sum(1).mean(), "multiplies the ELBO"),
    (lambda e, f, x, m, lam: e + (_sq(f, x) * m).flatten(1).sum(1).mean(), "lambda is missing"),
    (lambda e, f, x, m, lam: e - lam * (_sq(f, x) * m).flatten(1).sum(1).mean(), "subtracted"),
    (lambda e, f, x, m, lam: lam * (_sq(f, x) * m).flatten(1).sum(1).mean(), "ELBO term is missing"),
    (lambda e, f, x, m, lam: e + lam * (_sq(f, x) * m).flatten(1).sum(1), "scalar"),
    (lambda e, f, x, m, lam: e + lam * (_sq(f, x) * m).flatten(1).sum(1).mean() + 1.0, "differ"),
])
def test_joint_loss_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_joint_loss(lambda e, f, x, m, *, lam: wrong(e, f, x, m, lam))


def test_transfer_reference_passes(capsys):
    check_transfer(transfer_backbone)
    assert "correct" in capsys.readouterr().out


def _only_weights(src, dst):
    for name in ("conv1", "conv2", "conv3"):
        getattr(dst.encoder.backbone, name).weight.data.copy_(getattr(src.backbone, name).weight.data)


def _also_decoder(src, dst):
    dst.encoder.backbone.load_state_dict(src.backbone.state_dict())
    torch.nn.init.zeros_(dst.decoder.fc.bias)


def _frozen(src, dst):
    transfer_backbone(src, dst, freeze=True)


def _shared(src, dst):
    dst.encoder.backbone = src.backbone


def _strict_false(src, dst):
    dst.load_state_dict(src.state_dict(), strict=False)


def _reverse(src, dst):
    src.backbone.load_state_dict(dst.encoder.backbone.state_dict())


def _only_conv1(src, dst):
    dst.encoder.backbone.conv1.load_state_dict(src.backbone.conv1.state_dict())


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (_only_weights, "not copied: encoder.backbone.conv1.bias"),
    (_only_conv1, "not copied: encoder.backbone.conv2.weight"),
    (_also_decoder, "outside the backbone: decoder.fc.bias"),
    (_frozen, "no longer require gradients"),
    (_shared, "share the same parameter"),
    (_strict_false, "nothing was copied"),
    (_reverse, "changed the source"),
])
def test_transfer_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_transfer(wrong)
