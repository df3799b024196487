"""One trainer scaffold and one model registry: every ``train_*`` is a step function plus one
call of ``trainer.fit``, and every ``pretrained_*`` is its module's recipe from the table that
``registry.pretrained`` and the command-line trainer read."""
from __future__ import annotations

import ast
import importlib
from dataclasses import replace
from pathlib import Path

import pytest

import course_lib
from course_lib import pretext, registry, train as cli, trainer

LIB = Path(course_lib.__file__).parent
# The trainers that do without fit, and why (course_lib/trainer.py says the same).
OWN_SET_UP = {
    "fusion.train_variant": "builds its VAE after the seed and early-stops on it",
    "unsupervised.train_linear_autoencoder": "full-batch Adam on a data matrix, no config",
    "flow_toy.train_velocity_2d": "flow_toy.fit_velocity: the plain loop on vectors chapter 09 prints",
    "rcg.train_rep_generator": "flow_toy.fit_velocity on representations: seconds, no images, no loader",
}
# Cache names are part of every cached file's name: a rename makes every student's cache miss.
CACHE_NAMES = {
    "vae": "vae_ch02", "gan": "gan_ch03", "inpainter": "inpainter_ch04", "jigsaw": "jigsaw_ch05",
    "rotation": "rotation_ch05", "flip": "flip_ch05", "supervised": "supervised_ch05",
    "simclr": "simclr_ch05", "ssgan": "ssgan", "ddpm": "ddpm_ch08", "flow": "flow",
    "autoencoder": "autoencoder", "latent_flow": "latent_flow",
}
PRETRAINED = {  # registry name -> the module whose pretrained_<name> chapters import
    "vae": "vae", "gan": "gan", "inpainter": "inpainting", "jigsaw": "pretext", "rotation": "pretext",
    "flip": "pretext", "supervised": "pretext", "simclr": "contrastive", "ssgan": "ssgan",
    "ddpm": "diffusion", "flow": "flow", "autoencoder": "latent", "latent_flow": "latent",
}


def _trainers():
    """(module.function, names it calls) for every top-level ``train_*`` in the library."""
    for path in sorted(LIB.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("train_"):
                calls = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr
                         for n in ast.walk(node) if isinstance(n, ast.Call)
                         and isinstance(n.func, (ast.Name, ast.Attribute))}
                yield f"{path.stem}.{node.name}", calls


def test_every_trainer_goes_through_fit():
    """Each train_* calls fit (or fit_denoiser, which does), or another train_* that does."""
    found = dict(_trainers())
    assert len(found) >= 17, sorted(found)
    assert set(OWN_SET_UP) <= set(found), "an exempt trainer was renamed or removed: update OWN_SET_UP"
    through = {name for name, calls in found.items() if calls & {"fit", "fit_denoiser"}}
    for _ in range(3):  # delegation: train_attribute_classifier -> train_supervised -> fit
        through |= {name for name, calls in found.items()
                    if any(f"{m}.{c}" in through for c in calls for m in {n.split(".")[0] for n in found})}
    missing = set(found) - through - set(OWN_SET_UP)
    assert not missing, f"trainers with their own set-up (use trainer.fit): {sorted(missing)}"
    assert not (set(OWN_SET_UP) & through), "an exempt trainer now uses fit: drop it from OWN_SET_UP"
    denoiser = next(n for n in ast.parse((LIB / "diffusion.py").read_text()).body
                    if isinstance(n, ast.FunctionDef) and n.name == "fit_denoiser")
    assert any(isinstance(c, ast.Call) and getattr(c.func, "id", None) == "fit" for c in ast.walk(denoiser))


def test_no_trainer_repeats_the_set_up():
    """Loaders, checkpoints and the loop are fit's: no other trainer makes them."""
    for path in sorted(LIB.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            name = f"{path.stem}.{getattr(node, 'name', '')}"
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("train_")) or name in OWN_SET_UP:
                continue
            calls = [c.func for c in ast.walk(node) if isinstance(c, ast.Call)]
            named = {f.id for f in calls if isinstance(f, ast.Name)} | {
                f.attr for f in calls if isinstance(f, ast.Attribute) and f.attr == "loader"}
            assert not named & {"Checkpoint", "train", "DeviceLoader", "loader"}, (name, named)


def test_registry_names_and_cache_names_never_change():
    assert {name: r.cache_name for name, r in registry.RECIPES.items()} == CACHE_NAMES


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_every_pretrained_function_is_its_recipe(monkeypatch, name):
    calls = []
    monkeypatch.setattr(trainer.Recipe, "pretrained",
                        lambda self, config=None, **kw: calls.append((self, config, kw)) or "trained")
    module = importlib.import_module(f"course_lib.{PRETRAINED[name]}")
    config = object()
    assert getattr(module, f"pretrained_{name}")(config, progress=False, retrain=True) == "trained"
    assert registry.pretrained(name, config, progress=False, retrain=True) == "trained"
    assert calls[0] == calls[1] == (registry.RECIPES[name], config, {"progress": False, "retrain": True})


def test_pretrained_by_name_trains_once_then_loads_what_the_function_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    config = replace(pretext.RotationConfig.for_profile("smoke"), steps=2)
    first = registry.pretrained("rotation", config, progress=False)
    again = pretext.pretrained_rotation(config, progress=False)
    assert not first.from_cache and again.from_cache and again.path == first.path
    assert first.path.name.startswith("rotation_ch05-") and not again.model.training


def test_pretrained_names_an_unknown_model():
    with pytest.raises(ValueError, match="no model named 'vea'.*vae"):
        registry.pretrained("vea")


def test_the_cli_trains_from_the_registry():
    cli_to_registry = {"vae": "vae", "dcgan": "gan", "wgan-gp": "gan", "inpainting": "inpainter",
                       "jigsaw": "jigsaw", "rotation": "rotation", "ddpm": "ddpm"}
    assert set(cli.MODELS) == set(cli_to_registry)
    for cli_name, name in cli_to_registry.items():
        spec, recipe = cli.MODELS[cli_name], registry.RECIPES[name]
        assert (spec.build, spec.train) == (recipe.build, recipe.train), cli_name
    assert cli.MODELS["dcgan"].config("smoke") == registry.RECIPES["gan"].config("smoke")
    assert cli.MODELS["wgan-gp"].config("smoke").loss == "wgan-gp"
