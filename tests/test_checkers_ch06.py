"""Chapter 06 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import numpy as np
import pytest
import torch

from course_lib.checkers.ch06 import check_holm, check_joint_loss, check_transfer, check_welch_t
from course_lib.checkers.core import ExerciseError
from course_lib.inpainting import masked_mse_loss

from exercise_stub import stub


# Written out: the checkers reject course_lib's own answers (own_work).
def joint_loss(elbo, x_hat, x, mask, *, lam):
    return elbo + lam * ((x_hat - x) ** 2 * mask).flatten(1).sum(1).mean()


def transfer_backbone(src, dst, *, freeze=False):
    dst.encoder.backbone.load_state_dict(src.backbone.state_dict())
    for p in dst.encoder.backbone.parameters():
        p.requires_grad_(not freeze)


def welch_se_df(a, b):
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return np.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


def holm(p, alpha=0.05):
    m, rejected = len(p), [False] * len(p)
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        if p[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


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
    # the inpainting term added as a number: right value, no gradient for the inpainting decoder
    (lambda e, f, x, m, lam: e + lam * (_sq(f, x) * m).flatten(1).sum(1).mean().item(),
     "x_hat gets no gradient: the inpainting term was added as a number"),
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


# ---- Exercise 6.3: Welch's t statistic and df ------------------------------------------


def _reference_welch_t(a, b):
    se, df = welch_se_df(a, b)
    return (a.mean() - b.mean()) / se, df


def _parts(a, b, ddof=1):
    return a.mean() - b.mean(), a.var(ddof=ddof) / len(a), b.var(ddof=ddof) / len(b)


def _welch_ddof0(a, b):
    d, va, vb = _parts(a, b, ddof=0)
    return d / np.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


def _pooled(a, b):
    na, nb = len(a), len(b)
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    return (a.mean() - b.mean()) / np.sqrt(sp2 * (1 / na + 1 / nb)), na + nb - 2


def _student_df(a, b):
    return _reference_welch_t(a, b)[0], len(a) + len(b) - 2


def _no_sqrt(a, b):
    d, va, vb = _parts(a, b)
    return d / (va + vb), _reference_welch_t(a, b)[1]


def _flipped(a, b):
    t, df = _reference_welch_t(a, b)
    return -t, df


def _df_over_n(a, b):
    d, va, vb = _parts(a, b)
    return _reference_welch_t(a, b)[0], (va + vb) ** 2 / (va**2 / len(a) + vb**2 / len(b))


def test_welch_t_reference_passes(capsys):
    check_welch_t(_reference_welch_t)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (_welch_ddof0, "ddof=0"),
    (_pooled, "Student's pooled t"),
    (_student_df, "Student's; Welch's df"),
    (_no_sqrt, "square root"),
    (_flipped, "sign is flipped"),
    (_df_over_n, "divides by n, not by n - 1"),
    (lambda a, b: _reference_welch_t(a, b)[0], "expected a pair"),
    (lambda a, b: (_reference_welch_t(a, b)[0] + 0.1, _reference_welch_t(a, b)[1]), "t = .*expected"),
    (lambda a, b: ("t", "df"), "two numbers"),
])
def test_welch_t_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_welch_t(wrong)


# ---- Exercise 6.4: Holm's step-down procedure -------------------------------------------

def _no_correction(p, alpha=0.05):
    return [q <= alpha for q in p]


def _bonferroni(p, alpha=0.05):
    return [q <= alpha / len(p) for q in p]


def _step_down(p, alpha, threshold, stop=True):
    out, going = [False] * len(p), True
    for rank, i in enumerate(np.argsort(p)):
        going = (going or not stop) and p[i] <= threshold(alpha, len(p), rank)
        out[i] = going
    return out


def _no_stop(p, alpha=0.05):
    return _step_down(p, alpha, lambda a, m, r: a / (m - r), stop=False)


def _off_by_one(p, alpha=0.05):
    return _step_down(p, alpha, lambda a, m, r: a / (m - r + 1))


def _sorted_order(p, alpha=0.05):
    return sorted(holm(p, alpha=alpha), reverse=True)   # rejections first, as in sorted p order


def _alpha_ignored(p, alpha=0.05):
    return holm(p, alpha=0.05)


def _hochberg(p, alpha=0.05):
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    k = max((r + 1 for r, i in enumerate(order) if p[i] <= alpha / (m - r)), default=0)
    return [order.index(i) < k for i in range(m)]


def test_holm_reference_passes(capsys):
    check_holm(holm)
    assert "correct" in capsys.readouterr().out
    check_holm(lambda p, alpha: np.array(holm(p, alpha=alpha)))   # a bool array is fine too


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (_no_correction, "no correction"),
    (_bonferroni, "Bonferroni"),
    (_no_stop, "stops at the first p"),
    (_off_by_one, "off by one"),
    (_sorted_order, "sorted order"),
    (_alpha_ignored, "alpha is ignored"),
    (lambda p, alpha: holm(p, alpha=alpha)[:-1], "one per p-value"),
    (lambda p, alpha: 3, "list of bools"),
    (lambda p, alpha: [True] * len(p), "expected"),
    (lambda p, alpha: _step_down(p, alpha, lambda a, m, r: a / (m - r) - 1e-12), "equal to its threshold"),
    (_hochberg, "Hochberg's step-up"),
    (lambda p, alpha: np.array([holm(p, alpha=alpha)]), r"flat list of bools.*shape \(1, "),
])
def test_holm_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_holm(wrong)
