"""The course's trained models by name: one table for ``pretrained(name)`` and the CLI.

Each model module declares how its models are configured, built, trained and cached beside
its trainer (``RECIPES``, of :class:`course_lib.trainer.Recipe`); :data:`RECIPES` here joins
them, and ``python -m course_lib.train`` trains from the same entries. The names are those of
the ``pretrained_*`` functions, which stay as the chapters' entry points:

    from course_lib.registry import pretrained
    vae = pretrained("vae").model               # the same as vae.pretrained_vae().model

The cache names (``recipe.cache_name``) are part of every cached file's name: renaming one
makes every student's cache miss, so they never change.
"""
from __future__ import annotations

from course_lib import contrastive, diffusion, flow, gan, inpainting, latent, pretext, ssgan, vae
from course_lib.checkpoint import Trained
from course_lib.trainer import Recipe

RECIPES: dict[str, Recipe] = {
    **vae.RECIPES,            # vae (chapter 02)
    **gan.RECIPES,            # gan (03)
    **inpainting.RECIPES,     # inpainter (04)
    **pretext.RECIPES,        # jigsaw, rotation, flip, supervised (05)
    **contrastive.RECIPES,    # simclr (05)
    **ssgan.RECIPES,          # ssgan (06)
    **diffusion.RECIPES,      # ddpm (08)
    **flow.RECIPES,           # flow (09)
    **latent.RECIPES,         # autoencoder, latent_flow (11)
}


def pretrained(name: str, config=None, *, progress: bool | str = "auto", retrain: bool = False) -> Trained:
    """The trained model ``name`` (a key of :data:`RECIPES`) for ``config`` (default: the
    current profile's), trained once and then loaded from the cache; ``retrain=True`` trains
    it again. Returns a :class:`~course_lib.checkpoint.Trained` (``.model`` in eval mode)."""
    if name not in RECIPES:
        raise ValueError(f"no model named {name!r}; the names are {', '.join(sorted(RECIPES))}")
    return RECIPES[name].pretrained(config, progress=progress, retrain=retrain)
