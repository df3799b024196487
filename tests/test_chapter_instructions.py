"""Every `dataclasses.replace(cfg, ...)` a chapter's prose tells the reader to try builds a
valid config (chapter 03's "Things to try" once passed a field GANConfig does not have)."""
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from course_lib import gan
from course_lib.vae import VAEConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"02_vae": lambda: VAEConfig.for_profile("smoke"), "03_gan": lambda: gan.GANConfig.for_profile("smoke"),
           "03b_gan_measured": lambda: gan.GANConfig.for_profile("smoke")}


def prose_replace_calls(chapter: str) -> list[str]:
    """The `dataclasses.replace(cfg, ...)` expressions in the chapter's markdown (not its code
    cells), with balanced parentheses."""
    text = (ROOT / "solutions" / f"{chapter}.md").read_text()
    prose = re.sub(r"```\{code-cell\}.*?```", "", text, flags=re.S)
    calls = []
    for match in re.finditer(r"dataclasses\.replace\(cfg", prose):
        depth, i = 0, match.start() + len("dataclasses.replace")
        for j in range(i, len(prose)):
            depth += {"(": 1, ")": -1}.get(prose[j], 0)
            if depth == 0:
                calls.append(prose[match.start():j + 1])
                break
    return calls


@pytest.mark.parametrize("chapter", sorted(CONFIGS))
def test_every_suggested_replace_builds_a_config(chapter):
    calls = prose_replace_calls(chapter)
    assert calls, f"no dataclasses.replace(cfg, ...) found in {chapter}'s prose"
    cfg = CONFIGS[chapter]()
    for call in calls:
        new = eval(call, {"dataclasses": dataclasses, "cfg": cfg, "gan": gan})  # raises on an unknown field
        assert type(new) is type(cfg), call


def test_paper_settings_are_the_papers():
    """Gulrajani et al. 2017 and Arjovsky et al. 2017, Algorithm 1 of each; Radford et al. 2016."""
    cfg = gan.GANConfig.for_profile("smoke")
    gp = dataclasses.replace(cfg, **gan.PAPER_SETTINGS["wgan-gp"])
    assert (gp.loss, gp.optimizer, gp.lr_g, gp.lr_d, gp.beta1, gp.beta2, gp.d_steps, gp.gp_weight) == \
        ("wgan-gp", "adam", 1e-4, 1e-4, 0.0, 0.9, 5, 10.0)
    clip = dataclasses.replace(cfg, **gan.PAPER_SETTINGS["wgan-clip"])
    assert (clip.loss, clip.optimizer, clip.lr_d, clip.d_steps, clip.clip) == ("wgan-clip", "rmsprop", 5e-5, 5, 0.01)
    dcgan = dataclasses.replace(cfg, **gan.PAPER_SETTINGS["dcgan"])
    assert (dcgan.lr_g, dcgan.beta1) == (2e-4, 0.5)
    G, D = gan.build(clip)
    opt_g, opt_d = gan.make_optimizers(G, D, clip)
    assert isinstance(opt_g, torch.optim.RMSprop) and isinstance(opt_d, type(opt_g))
    assert isinstance(gan.make_optimizers(G, D, gp)[1], torch.optim.Adam)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        gan.GANConfig(optimizer="sgd")
