"""Chapter 12 checkers pass the reference, fail the stub and fail plausible wrong answers."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import ssl_flow
from course_lib.checkers.ch12 import check_dispersive_loss, check_repa_loss
from course_lib.checkers.core import ExerciseError

from exercise_stub import stub


def dispersive_loss(hidden, tau=0.5):   # written out: the checker rejects course_lib.ssl_flow's
    h = hidden.flatten(1)
    d2 = (h[:, None] - h[None]).pow(2).sum(-1) / h.shape[1]
    return torch.log(torch.exp(-d2 / tau).mean())


def repa_loss(hidden, target, proj):
    z = F.adaptive_avg_pool2d(proj(hidden), target.shape[-2:])
    return -F.cosine_similarity(z, target, dim=1).mean()


def test_references_pass(capsys):
    check_dispersive_loss(dispersive_loss)
    check_repa_loss(repa_loss)
    out = capsys.readouterr().out
    assert out.count("correct") == 2


def test_a_logsumexp_form_passes_too(capsys):
    def stable(hidden, tau=0.5):
        h = hidden.flatten(1)
        d2 = torch.cdist(h, h).pow(2) / h.shape[1]
        return torch.logsumexp(-d2.flatten() / tau, 0) - torch.log(torch.tensor(float(d2.numel())))
    check_dispersive_loss(stable)
    assert "correct" in capsys.readouterr().out


def _sq(h):
    h = h.flatten(1)
    return (h[:, None] - h[None]).pow(2).sum(-1)


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda h, tau=0.5: torch.log(torch.exp(-_sq(h) / tau).mean()), "not divided by D"),
    (lambda h, tau=0.5: torch.log(torch.exp(-_sq(h).sqrt() / (h[0].numel() * tau)).mean()), "not squared"),
    (lambda h, tau=0.5: torch.log(torch.exp(_sq(h) / (h[0].numel() * tau)).mean()), "sign"),
    (lambda h, tau=0.5: torch.log(torch.exp(-_sq(h) * tau / h[0].numel()).mean()), "multiplies"),
    (lambda h, tau=0.5: torch.exp(-_sq(h) / (h[0].numel() * tau)).mean(), "log is missing"),
    (lambda h, tau=0.5: (-_sq(h) / (h[0].numel() * tau)).mean(), "before the mean"),
    (lambda h, tau=0.5: torch.log(torch.exp(-_sq(h) / (h[0].numel() * tau))[~torch.eye(len(h), dtype=bool)].mean()),
     "i = j"),
    (lambda h, tau=0.5: torch.log(torch.exp(-_sq(h.mean((2, 3))) / (h.shape[1] * tau)).mean()), "positions first"),
    (lambda h, tau=0.5: torch.tensor(dispersive_loss(h, tau).item()), "no gradient"),
    (lambda h, tau=0.5: dispersive_loss(h, tau).detach(), "no gradient"),
    (lambda h, tau=0.5: torch.log(torch.exp(-_sq(h) / (h[0].numel() * tau)).sum()), "differ"),
    (lambda h, tau=0.5: ssl_flow.dispersive_loss(h, tau), "course_lib"),
])
def test_dispersive_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_dispersive_loss(wrong)


def _pool(proj, hidden, target):
    return F.adaptive_avg_pool2d(proj(hidden), target.shape[-2:])


@pytest.mark.parametrize("wrong, pattern", [
    (stub, "not implemented"),
    (lambda h, t, p: F.cosine_similarity(_pool(p, h, t), t, dim=1).mean(), "not negated"),
    (lambda h, t, p: -F.cosine_similarity(_pool(p, h, t), t, dim=-1).mean(), "over the positions"),
    (lambda h, t, p: -F.cosine_similarity(_pool(p, h, t).flatten(1), t.flatten(1), dim=1).mean(), "whole map"),
    (lambda h, t, p: -F.cosine_similarity(p(h), F.interpolate(t, size=h.shape[-2:]), dim=1).mean(), "upsampled"),
    (lambda h, t, p: -F.cosine_similarity(p(F.adaptive_avg_pool2d(h, t.shape[-2:])), t, dim=1).mean(),
     "before the projector"),
    (lambda h, t, p: (_pool(p, h, t) - t).pow(2).mean(), "mean squared error"),
    (lambda h, t, p: 1 - F.cosine_similarity(_pool(p, h, t), t, dim=1).mean(), "1 - cos"),
    (lambda h, t, p: -F.cosine_similarity(_pool(p, h, t), t, dim=1).sum(), "differ"),
    (lambda h, t, p: repa_loss(h, t, p).detach(), "no gradient"),
    (lambda h, t, p: -F.cosine_similarity(_pool(p, h.detach(), t), t, dim=1).mean(), "no gradient"),
    (lambda h, t, p: ssl_flow.repa_loss(h, t, p), "course_lib"),
])
def test_repa_wrong_answers_fail(wrong, pattern):
    with pytest.raises(ExerciseError, match=pattern):
        check_repa_loss(wrong)
