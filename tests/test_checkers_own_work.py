"""Rules every checker follows (issue 29): the chapters' own solutions pass; calling
course_lib's own answer instead of writing one fails; a failed check shows a few lines."""
import re
from pathlib import Path

import pytest
import torch

from course_lib import (
    applications,
    contrastive,
    diffusion,
    flow,
    fusion,
    gan,
    guidance,
    images,
    inpainting,
    latent,
    masks,
    metrics,
    pretext,
    shortcuts,
    ssl_flow,
    stats,
    tiles,
    unsupervised,
    vae,
)
from course_lib.checkers import ch00, ch01, ch02, ch03, ch03b, ch04, ch05, ch06, ch07, ch08, ch09, ch10, ch11, ch12
from course_lib.checkers.core import ExerciseError

ROOT = Path(__file__).resolve().parents[1]
CHECKERS = {name: getattr(module, name) for module in (ch00, ch01, ch02, ch03, ch03b, ch04, ch05, ch06, ch07, ch08,
                                                        ch09, ch10, ch11, ch12) for name in dir(module)
            if name.startswith("check_") and getattr(module, name).__module__ == module.__name__}


def _strip_tags(cell: str) -> str:
    return "\n".join(line for line in cell.splitlines() if not line.startswith(":tags:"))


def exercises() -> list[tuple[str, str, str]]:
    """(chapter, solution cell, check cell) for every exercise in solutions/*.md."""
    found = []
    for path in sorted((ROOT / "solutions").glob("*.md")):
        cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", path.read_text(), flags=re.S)
        for before, check in zip(cells, cells[1:]):
            if check.startswith(":tags: [check]") and "### BEGIN SOLUTION" in before:
                found.append((path.stem, _strip_tags(before), _strip_tags(check)))
    return found


# What the solution cells find in their notebook's namespace.
PREAMBLE = """
import math
import numpy as np
import torch
import torch.nn.functional as F
from course_lib import diffusion, flow, gan
from course_lib.vae import elbo_loss as reference_elbo_loss, kl_divergence as reference_kl
"""


def test_every_exercise_is_found():
    assert len(exercises()) == 37
    assert {re.search(r"check_\w+", check).group() for _, _, check in exercises()} == set(CHECKERS)


@pytest.mark.parametrize("chapter, solution, check", exercises(),
                         ids=[re.search(r"check_\w+", c).group() for _, _, c in exercises()])
def test_the_chapters_solution_passes_its_checker(chapter, solution, check, capsys):
    namespace: dict = {}
    exec(PREAMBLE + solution, namespace)
    exec(check, namespace)
    assert "\u2714" in capsys.readouterr().out


def _pca(x, k):
    pca = unsupervised.pca_fit(x, k)
    codes = unsupervised.pca_project(x, pca)
    return codes, unsupervised.pca_reconstruct(codes, pca)


def _welch(a, b):
    se, df = stats.welch_se_df(a, b)
    return (a.mean() - b.mean()) / se, df


# The shortcut a student might take for each exercise: return course_lib's own answer.
SHORTCUTS = {
    "check_to_unit_range": (images.to_float,),
    "check_pca": (_pca,),
    "check_cluster_purity": (unsupervised.cluster_purity,),
    "check_reparameterize": (vae.reparameterize,),
    "check_kl_divergence": (vae.kl_divergence,),
    "check_elbo_loss": (lambda *a: vae.elbo_loss(*a).loss,),
    "check_train_step": (lambda model, opt, x: vae.vae_step(model, opt, x)["loss"].item(),),
    "check_discriminator_loss": (gan.discriminator_loss,),
    "check_generator_loss": (gan.generator_loss,),
    "check_gradient_penalty": (lambda critic, real, fake, eps: gan.gradient_penalty(critic, real, fake, eps=eps),),
    "check_gan_step": (ch03.reference_gan_step,),
    "check_density_coverage": (metrics.density_coverage,),
    "check_apply_mask": (masks.apply_mask,),
    "check_masked_mse_loss": (inpainting.masked_mse_loss,),
    "check_shuffle_tiles": (tiles.shuffle_tiles, tiles.unshuffle_tiles),
    "check_greedy_hamming": (ch05.reference_greedy_hamming,),
    "check_rotation_batch": (pretext.rotation_batch,),
    "check_border_features": (lambda x, width=2: shortcuts.border_strips(x, width=width),),
    "check_nt_xent": (contrastive.nt_xent,),
    "check_transfer": (fusion.transfer_backbone,),
    "check_joint_loss": (fusion.joint_loss,),
    "check_welch_t": (_welch,),
    "check_holm": (stats.holm,),
    "check_attribute_direction": (applications.attribute_direction,),
    "check_auroc": (applications.auroc,),
    "check_q_sample": (diffusion.q_sample,),
    "check_diffusion_loss": (diffusion.diffusion_loss,),
    "check_reverse_step": (diffusion.reverse_step,),
    "check_interpolant": (flow.interpolant,),
    "check_flow_loss": (flow.flow_loss,),
    "check_euler_step": (flow.euler_step,),
    "check_guide": (guidance.guide,),
    "check_edge_l1": (latent.edge_l1,),
    "check_generate": (lambda velocity, decode, scale, noise, steps: latent.generate(velocity, decode, scale, noise,
                                                                                      steps=steps),),
    "check_dispersive_loss": (ssl_flow.dispersive_loss,),
    "check_repa_loss": (ssl_flow.repa_loss,),
}
# course_lib has no function for these exercises (flow_step drops labels inline)
NO_LIBRARY_ANSWER = {"check_drop_labels"}


def test_every_checker_has_a_shortcut_row():
    assert set(SHORTCUTS) | NO_LIBRARY_ANSWER == set(CHECKERS)
    for name, checker in CHECKERS.items():
        assert hasattr(checker, "library"), f"{name} is not decorated with own_work"
        assert bool(checker.library) == (name not in NO_LIBRARY_ANSWER), name


@pytest.mark.parametrize("name", sorted(SHORTCUTS))
def test_calling_the_librarys_answer_fails(name):
    """Forwarding to course_lib (under any name: here through a lambda) fails, even though
    the values are the reference's."""
    wrapped = [lambda *a, _f=f, **k: _f(*a, **k) for f in SHORTCUTS[name]]
    with pytest.raises(ExerciseError, match=r"your code calls course_lib\.[\w.]+, course_lib's own answer"):
        CHECKERS[name](*wrapped)


def test_the_library_is_allowed_again_after_the_check():
    with pytest.raises(ExerciseError, match="own answer"):
        ch02.check_kl_divergence(vae.kl_divergence)
    assert vae.kl_divergence(torch.zeros(1, 2), torch.zeros(1, 2)).item() == 0


def test_a_caught_library_call_still_fails():
    def sneaky(mu, logvar):
        try:
            return vae.kl_divergence(mu, logvar)
        except Exception:
            return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    with pytest.raises(ExerciseError, match="own answer"):
        ch02.check_kl_divergence(sneaky)


# --- what a student sees ------------------------------------------------------------------
@pytest.mark.parametrize("wrong", [
    lambda x: x.float(),                                   # a plain mistake
    lambda x: x.float().reshape(7, -1),                       # a crash in the student's code
    lambda x: images.to_float(x),                          # the library's answer
])
def test_a_failed_check_renders_in_at_most_5_lines_and_stays_an_assertion(wrong):
    with pytest.raises(ExerciseError) as err:
        ch00.check_to_unit_range(wrong)
    assert isinstance(err.value, AssertionError)           # nbgrader and pytest count it as a failure
    lines = err.value._render_traceback_()
    assert 1 <= len(lines) <= 5
    assert str(err.value).splitlines()[0] in lines[0]


def test_a_long_message_is_cut_to_5_lines():
    lines = ExerciseError("\n".join(f"line {i}" for i in range(9)))._render_traceback_()
    assert len(lines) == 4 and "line 8" in lines[-1]


def test_ipython_shows_the_short_rendering(capsys):
    shell = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell.instance()
    capsys.readouterr()
    result = shell.run_cell("def to_unit_range(x):\n    return x.float().reshape(7, -1)\n\n"
                            "from course_lib.checkers.ch00 import check_to_unit_range\n"
                            "check_to_unit_range(to_unit_range)\n")
    shown = capsys.readouterr().out.strip().splitlines()
    assert isinstance(result.error_in_exec, AssertionError)
    assert 1 <= len(shown) <= 5, shown
    assert "your code raised RuntimeError" in shown[0]
    assert "line 2: return x.float().reshape(7, -1)" in shown[-1]     # where, in the student's cell


# ------------------------------------------------------------------ use_yours: the student's code at work
def test_use_yours_returns_the_students_function_once_its_check_passed(capsys):
    from course_lib.checkers import use_yours
    from course_lib.checkers.ch02 import check_kl_divergence
    from course_lib.vae import kl_divergence as library_kl

    def kl_divergence(mu, logvar):
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)

    check_kl_divergence(kl_divergence)                      # the check cell: its verdict is kept
    capsys.readouterr()
    assert use_yours(kl_divergence, library_kl, check_kl_divergence) is kl_divergence
    assert "using your kl_divergence" in capsys.readouterr().out


def test_use_yours_falls_back_to_the_library_with_a_note(capsys):
    from course_lib.checkers import use_yours
    from course_lib.checkers.ch02 import check_kl_divergence
    from course_lib.vae import kl_divergence as library_kl

    def kl_divergence(mu, logvar):
        raise NotImplementedError()

    assert use_yours(kl_divergence, library_kl, check_kl_divergence) is library_kl   # never checked: checks now
    out = capsys.readouterr().out
    assert out.startswith("note: your kl_divergence has not passed check_kl_divergence") and out.count("\n") == 1

    def wrong(mu, logvar):                                   # checked and failed in the check cell
        return (mu ** 2).sum(dim=1)

    with pytest.raises(ExerciseError):
        check_kl_divergence(wrong)
    assert use_yours(wrong, library_kl, check_kl_divergence) is library_kl
