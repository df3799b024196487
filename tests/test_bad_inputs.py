"""Bad input across the public API: one table, each row a mistake a user makes, the
exception it must raise and a pattern its message must contain, naming what was expected.

This is the one place new bad inputs are added: append a row to CASES (in its section).
A row is ``bad(id, exception type, regex, call)``; ``call`` receives a :class:`Ctx` with a
temporary folder (``c.tmp``) and ``c.env(name, value)`` to set an environment variable for
this case only. Every call must fail fast (no training, no network).
"""
from __future__ import annotations

import dataclasses
import json
import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import (
    applications,
    checkpoint,
    contrastive,
    datasets,
    diffusion,
    flow,
    gan,
    gan_reference,
    guidance,
    inpainting,
    inpainting_eval,
    jigsaw,
    masks,
    metrics,
    pretext,
    profiles,
    results,
    runtime,
    ssgan,
    tiles,
    unsupervised,
    vae,
)
from course_lib.backbone import ConvBackbone
from course_lib.facedraw import RENDER_VERSION
from course_lib.images import to_float
from course_lib.loop import Budget, History, train as loop_train
from course_lib.plots import show_images
from course_lib.toyfaces import ToyFaces, sample_attributes
from course_lib.train import main as cli_main


@dataclasses.dataclass
class Ctx:
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def env(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)

    def file(self, name: str = "a_file", data: bytes = b"not a folder") -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path


def bad(id: str, exc: type[BaseException], match: str, call, *, marks=()):
    return pytest.param(call, exc, match, id=id, marks=marks)


def _gan_players(config):
    """(G, D, opt_g, opt_d, config) for gan.make_step."""
    generator, discriminator = gan.build(config)
    return (generator, discriminator, *gan.make_optimizers(generator, discriminator, config), config)


def img(b: int = 2, s: int = 16, c: int = 3, scale: float = 1.0) -> torch.Tensor:
    """Float images (b, c, s, s) in [0, scale]."""
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(0)) * scale


def hole(b: int = 2, s: int = 16, value: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    m = torch.zeros(b, 1, s, s, dtype=dtype)
    m[:, :, s // 4: s // 2, s // 4: s // 2] = value
    return m


def folder(c: Ctx, layout: dict[str, int]) -> Path:
    """An image folder: {relative path: grey value} written as 8x8 PNGs."""
    root = c.tmp / "pics"
    for rel, value in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(root / rel)
    return root


def saved(c: Ctx, **models) -> Path:
    return checkpoint.save_checkpoint(c.tmp / "c.pt", models=models or torch.nn.Linear(2, 2))


def _adam_checkpoint(c: Ctx) -> tuple[Path, torch.nn.Module]:
    model = torch.nn.Linear(2, 2)
    path = checkpoint.save_checkpoint(c.tmp / "c.pt", models=model,
                                      optimizers={"opt": torch.optim.Adam(model.parameters())})
    return path, model


@dataclasses.dataclass
class Cfg:
    width: int = 2


CFG = Cfg()  # the one default config every call shares


def _load_or_train(c: Ctx, name="tiny", config=CFG, **kw):
    return checkpoint.load_or_train(name, lambda m, cfg: [], config=config,
                                    build=lambda cfg: torch.nn.Linear(2, 2), device="cpu", **kw)


def warned(call):
    """``call()`` with UserWarnings raised as errors: a row can expect a skip's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        return call()


def huge_png(path: Path, side: int = 14000) -> Path:
    """A valid PNG header for a side x side 1-bit image (PIL refuses it at open, unread)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def float_tiff(path: Path, low: float = -1.0, high: float = 1.0) -> Path:
    Image.fromarray(np.linspace(low, high, 64, dtype=np.float32).reshape(8, 8), "F").save(path)
    return path


SMOKE_CLI = ["vae", "--profile", "smoke", "--train-size", "8", "--batch-size", "8"]


def lfs_pointer(c: Ctx) -> Path:
    """What a clone without Git LFS holds in place of a weights file."""
    return c.file("ref.pt", b"version https://git-lfs.github.com/spec/v1\noid sha256:0123abcd\nsize 748714\n")


def truncated(c: Ctx, source: Path) -> Path:
    """The first 4 kB of a committed weights file: a download cut short."""
    return c.file("ref.pt", source.read_bytes()[:4096])


def vae_checkpoint(c: Ctx) -> Path:
    return checkpoint.save_checkpoint(c.tmp / "vae.pt", models=vae.VAE(latent_dim=4, image_size=16))


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")

CASES = [
    # ------------------------------------------------------------------ data sets
    bad("dataset-unknown-name", ValueError, r"unknown data set 'imagenet'; expected one of",
        lambda c: datasets.load_dataset("imagenet")),
    bad("dataset-image-size-zero", ValueError, "image_size must be a positive int",
        lambda c: datasets.load_dataset("toyfaces", image_size=0)),
    bad("dataset-image-size-float", ValueError, "image_size must be a positive int",
        lambda c: datasets.load_dataset("toyfaces", image_size=32.0)),
    bad("dataset-image-size-str", ValueError, "image_size must be a positive int",
        lambda c: datasets.load_dataset("toyfaces", image_size="64")),
    bad("dataset-size-negative", ValueError, "size must be a positive int or None",
        lambda c: datasets.load_dataset("toyfaces", size=-3)),
    bad("dataset-size-fraction", ValueError, "size must be a positive int or None",
        lambda c: datasets.load_dataset("toyfaces", size=2.5)),
    bad("dataset-split-all-for-toyfaces", ValueError, r"split must be one of \('train', 'val', 'test'\)",
        lambda c: datasets.load_dataset("toyfaces", split="all")),
    bad("dataset-split-typo", ValueError, "split must be one of",
        lambda c: datasets.load_dataset("cifar10", split="training")),
    bad("imagefolder-no-root", FileNotFoundError, "imagefolder needs root=",
        lambda c: datasets.load_dataset("imagefolder")),
    bad("imagefolder-missing-root", FileNotFoundError, "does not exist or is not a folder",
        lambda c: datasets.load_dataset("imagefolder", root=c.tmp / "nowhere")),
    bad("imagefolder-root-is-a-file", FileNotFoundError, "does not exist or is not a folder",
        lambda c: datasets.load_dataset("imagefolder", root=c.file())),
    bad("imagefolder-no-images", FileNotFoundError, r"no images \(.jpg, .jpeg, .png",
        lambda c: datasets.load_dataset("imagefolder", root=c.tmp)),
    bad("imagefolder-loose-images-beside-classes", ValueError, "belong to no class: move them into a class folder",
        lambda c: datasets.load_dataset("imagefolder", split="all",
                                        root=folder(c, {"cats/a.png": 10, "stray.png": 20}))),
    bad("celeba-no-root", FileNotFoundError, "CelebA needs root=<folder>",
        lambda c: datasets.load_dataset("celeba")),
    bad("celeba-missing-files", FileNotFoundError, "CelebA files are missing.*img_align_celeba",
        lambda c: datasets.load_dataset("celeba", root=c.tmp)),
    bad("cifar10-not-downloaded", FileNotFoundError, "Pass download=True once when online",
        lambda c: datasets.load_dataset("cifar10", root=c.tmp)),
    bad("toyfaces-size-zero", ValueError, "size must be a positive int",
        lambda c: ToyFaces(size=0, cache=False)),
    bad("toyfaces-tiny-images", ValueError, "image_size must be an int >= 8",
        lambda c: ToyFaces(size=4, image_size=4, cache=False)),
    bad("toyfaces-split", ValueError, r"split must be one of \('train', 'val', 'test'\), got 'holdout'",
        lambda c: ToyFaces(split="holdout", size=4, cache=False)),
    bad("toyfaces-unknown-attribute", KeyError, "unknown ToyFaces attribute 'smiling'; known",
        lambda c: ToyFaces(size=2, image_size=8, cache=False).column("smiling")),
    bad("imageset-float-images", ValueError, r"images must be uint8 \(N, C, H, W\)",
        lambda c: datasets.ImageSet(img(), None, name="x")),
    # ------------------------------------------------------------------ loaders
    bad("loader-3d-images", ValueError, r"images must be \(N, C, H, W\)",
        lambda c: runtime.DeviceLoader(torch.zeros(4, 8, 8, dtype=torch.uint8), batch_size=2, device="cpu")),
    bad("loader-int32-images", ValueError, r"uint8 \(0..255\) or float in \[0, 1\]",
        lambda c: runtime.DeviceLoader(torch.zeros(4, 3, 8, 8, dtype=torch.int32), batch_size=2, device="cpu")),
    bad("loader-float-0-255", ValueError, r"float images must lie in \[0, 1\].*divide by 255",
        lambda c: runtime.DeviceLoader(img(4, 8, scale=255.0), batch_size=2, device="cpu")),
    bad("loader-batch-size-zero", ValueError, "batch_size must be a positive int",
        lambda c: runtime.DeviceLoader(img(4, 8), batch_size=0, device="cpu")),
    bad("loader-batch-size-str", ValueError, "batch_size must be a positive int",
        lambda c: runtime.DeviceLoader(img(4, 8), batch_size="2", device="cpu")),
    bad("loader-batch-larger-than-set", ValueError, "larger than the data set",
        lambda c: runtime.DeviceLoader(img(4, 8), batch_size=8, device="cpu")),
    bad("loader-label-rows", ValueError, "labels has 3 rows but images has 4",
        lambda c: runtime.DeviceLoader(img(4, 8), torch.zeros(3), batch_size=2, device="cpu")),
    bad("loader-device-tpu", ValueError, r"device must be 'cpu', 'cuda\[:N\]' or 'mps', got 'tpu'",
        lambda c: runtime.DeviceLoader(img(4, 8), batch_size=2, device="tpu")),
    # ------------------------------------------------------------------ models
    bad("vae-no-latent-dim", ValueError, r"VAE needs latent_dim=",
        lambda c: vae.VAE()),
    bad("vae-encoder-without-decoder", ValueError, "pass both encoder and decoder",
        lambda c: vae.VAE(encoder=vae.Encoder(latent_dim=4, image_size=16))),
    bad("vae-latent-dim-zero", ValueError, "latent_dim must be a positive int",
        lambda c: vae.VAE(latent_dim=0, image_size=16)),
    bad("vae-image-size-30", ValueError, "image_size must be a positive multiple of 8, got 30",
        lambda c: vae.VAE(latent_dim=4, image_size=30)),
    bad("vae-uint8-batch", TypeError,
        r"must be float images in \[0, 1\], got dtype torch.uint8: convert.*float\(\) / 255",
        lambda c: vae.VAE(latent_dim=4, image_size=16)((img() * 255).to(torch.uint8))),
    bad("vae-float-0-255", ValueError, r"Encoder input must lie in \[0, 1\].*0..255 pixel values; divide by 255",
        lambda c: vae.VAE(latent_dim=4, image_size=16)(img(scale=255.0))),
    bad("vae-minus-one-to-one", ValueError, r"must lie in \[0, 1\].*\(x \+ 1\) / 2",
        lambda c: vae.VAE(latent_dim=4, image_size=16)(img() * 2 - 1)),
    bad("vae-wrong-image-size", ValueError, r"Encoder built for \(B, C, 16, 16\) images, got \(2, 3, 32, 32\)",
        lambda c: vae.VAE(latent_dim=4, image_size=16)(img(s=32))),
    bad("vae-unbatched-image", ValueError, r"Encoder built for \(B, C, 16, 16\) images",
        lambda c: vae.VAE(latent_dim=4, image_size=16)(img()[0])),
    bad("vae-grey-images", ValueError, r"ConvBackbone expects \(B, 3, H, W\) images",
        lambda c: vae.VAE(latent_dim=4, image_size=16)(img(c=1))),
    bad("vae-decode-wrong-z", ValueError, r"Decoder expects z of shape \(B, 4\)",
        lambda c: vae.VAE(latent_dim=4, image_size=16).decode(torch.zeros(2, 5))),
    bad("vae-reconstruct-uint8", TypeError, r"float images in \[0, 1\]",
        lambda c: vae.VAE(latent_dim=4, image_size=16).reconstruct(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))),
    bad("backbone-two-widths", ValueError, "widths must be three positive ints",
        lambda c: ConvBackbone(widths=(32, 64))),
    bad("backbone-numpy-input", TypeError, "must be a torch.Tensor of float images, got ndarray",
        lambda c: ConvBackbone()(np.zeros((1, 3, 8, 8), np.float32))),
    bad("unet-30-px", ValueError,
        r"InpaintingNet needs H and W divisible by 8, got 30x30: resize or crop to 24x24 or 32x32",
        lambda c: inpainting.InpaintingNet()(img(s=30), hole(s=30))),
    bad("unet-uint8-images", TypeError, r"InpaintingNet input must be float images in \[0, 1\]",
        lambda c: inpainting.InpaintingNet()(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), hole())),
    bad("unet-mask-without-channel", ValueError, r"expected a mask of shape \(2, 1, 16, 16\) with 1 = hole",
        lambda c: inpainting.InpaintingNet()(img(), hole()[:, 0])),
    bad("unet-mask-255", ValueError, r"mask must hold values in \[0, 1\].*\(mask > 127\).float\(\)",
        lambda c: inpainting.InpaintingNet()(img(), hole(value=255.0))),
    bad("unet-mask-uint8", TypeError, r"mask must be float or bool with 1 = hole and 0 = known, got dtype torch.uint8",
        lambda c: inpainting.InpaintingNet()(img(), hole(value=255, dtype=torch.uint8))),
    bad("unet-grey-backbone", ValueError, "the shared backbone must take 3-channel images",
        lambda c: inpainting.InpaintingNet(backbone=ConvBackbone(in_channels=1))),
    bad("generator-wrong-z", ValueError, r"Generator expects z of shape \(B, 8\)",
        lambda c: gan.Generator(z_dim=8, image_size=16, width=8)(torch.zeros(2, 8, 1, 1))),
    bad("generator-image-size-48", ValueError, "image_size must be a power of two >= 8",
        lambda c: gan.Generator(z_dim=8, image_size=48, width=8)),
    bad("discriminator-wrong-size", ValueError, r"Discriminator expects \(B, 3, 16, 16\) images",
        lambda c: gan.Discriminator(image_size=16, width=8)(img(s=32))),
    bad("discriminator-norm", ValueError, "norm must be 'batch', 'layer' or 'none'",
        lambda c: gan.Discriminator(image_size=16, width=8, norm="group")),
    bad("gan-config-loss", ValueError, "loss must be one of",
        lambda c: gan.GANConfig(loss="lsgan")),
    bad("gan-config-ema-decay", ValueError, r"GANConfig.ema_decay must be a number in \[0, 1\), got 1.0",
        lambda c: gan.GANConfig(ema_decay=1.0)),
    bad("gan-config-r1", ValueError, "GANConfig.r1_weight must be a number >= 0, got -0.5",
        lambda c: gan.GANConfig(r1_weight=-0.5)),
    bad("gan-make-step-ema-missing", ValueError, "pass ema= .* exactly when config.ema_decay > 0",
        lambda c: gan.make_step(*_gan_players(gan.GANConfig(image_size=16, width=8, ema_decay=0.9)))),
    bad("gan-reference-name", ValueError, "reference must be one of",
        lambda c: gan_reference.reference_config("vae")),
    bad("gan-reference-missing-file", FileNotFoundError, "experiments/gan_reference.py --model dcgan",
        lambda c: gan_reference.reference_generator("dcgan", "/nonexistent/dcgan_reference.pt")),
    bad("jigsaw-net-wrong-tiles", ValueError, r"expected \(B, 9, 3, t, t\) tiles",
        lambda c: jigsaw.JigsawNet(n_permutations=10)(torch.zeros(2, 4, 3, 8, 8))),
    bad("tile-encoder-wrong-shape", ValueError, r"expected tiles of shape \(B, T, 3, t, t\)",
        lambda c: jigsaw.TileEncoder()(torch.zeros(2, 3, 8, 8))),
    bad("jigsaw-config-grid-1", ValueError, "JigsawConfig.grid must be an int >= 2",
        lambda c: jigsaw.JigsawConfig(grid=1)),
    bad("jigsaw-config-indivisible", ValueError, "image_size=50 must be divisible by grid=3",
        lambda c: jigsaw.JigsawConfig(image_size=50)),
    bad("jigsaw-config-tile-too-big", ValueError, r"tile_size must be in \[1, 16\]",
        lambda c: jigsaw.JigsawConfig(image_size=48, tile_size=20)),
    bad("jigsaw-config-method", ValueError, "method must be 'max', 'min' or 'random'",
        lambda c: jigsaw.JigsawConfig(method="best")),
    bad("jigsaw-config-one-permutation", ValueError, "n_permutations must be an int >= 2",
        lambda c: jigsaw.JigsawConfig(n_permutations=1)),
    bad("rotation-batch-not-square", ValueError, r"expected square images \(B, C, H, H\)",
        lambda c: pretext.rotation_batch(torch.zeros(2, 3, 8, 12))),
    bad("rotation-classifier-uint8", TypeError, r"float images in \[0, 1\]",
        lambda c: pretext.BackboneClassifier()(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))),
    # ------------------------------------------------------------------ losses and metrics
    bad("elbo-shapes", ValueError, r"x_logits \(2, 3, 16, 16\) and x \(2, 3, 8, 8\) must match",
        lambda c: vae.elbo_loss(torch.zeros(2, 3, 16, 16), img(s=8), torch.zeros(2, 4), torch.zeros(2, 4))),
    bad("elbo-target-0-255", ValueError, r"the target x must lie in \[0, 1\].*divide by 255",
        lambda c: vae.elbo_loss(torch.zeros(2, 3, 8, 8), img(s=8, scale=255.0), torch.zeros(2, 4), torch.zeros(2, 4))),
    bad("elbo-target-uint8", TypeError, r"the target x must be float images in \[0, 1\], got dtype torch.uint8",
        lambda c: vae.elbo_loss(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
                                torch.zeros(2, 4), torch.zeros(2, 4))),
    bad("reconstruction-likelihood", ValueError, "likelihood must be one of",
        lambda c: vae.reconstruction_loss(torch.zeros(2, 3, 8, 8), img(s=8), likelihood="poisson")),
    bad("reconstruction-target-0-255", ValueError, r"must lie in \[0, 1\]",
        lambda c: vae.reconstruction_loss(torch.zeros(2, 3, 8, 8), img(s=8, scale=255.0), likelihood="gaussian")),
    bad("masked-mse-no-hole", ValueError, r"the mask has no hole pixels \(expected 1 = hole somewhere\)",
        lambda c: inpainting.masked_mse_loss(img(), img(), torch.zeros(2, 1, 16, 16))),
    bad("masked-mse-shapes", ValueError, r"x_hat \(2, 3, 8, 8\) and x \(2, 3, 16, 16\) must match",
        lambda c: inpainting.masked_mse_loss(img(s=8), img(), hole())),
    bad("masked-mse-mask-255", ValueError, r"mask must hold values in \[0, 1\]",
        lambda c: inpainting.masked_mse_loss(img(), img(), hole(value=255.0))),
    bad("gradient-penalty-shapes", ValueError, "real and fake must have the same shape",
        lambda c: gan.gradient_penalty(gan.Discriminator(image_size=16, width=8), img(), img(b=3))),
    bad("active-units-shape", ValueError, r"active_units expects mu of shape \(N >= 2, D\)",
        lambda c: vae.active_units(torch.zeros(4))),
    bad("psnr-per-image-shapes", ValueError, "must match",
        lambda c: unsupervised.psnr_per_image(img(), img(s=8))),
    bad("pca-k-too-large", ValueError, r"k must be between 1 and min\(N, D\)",
        lambda c: unsupervised.pca_fit(torch.rand(5, 4), 9)),
    bad("as-matrix-1d", ValueError, r"expected images \(N, C, H, W\) or a matrix \(N, D\)",
        lambda c: unsupervised.as_matrix(torch.zeros(5))),
    bad("frechet-feature-sizes", ValueError, "feature sizes differ: 4 vs 5",
        lambda c: metrics.frechet_distance(torch.rand(10, 4), torch.rand(10, 5))),
    bad("frechet-one-sample", ValueError, r"must be \(N, D\) features with N >= 2",
        lambda c: metrics.frechet_distance(torch.rand(1, 4), torch.rand(10, 4))),
    bad("frechet-nan", ValueError, "contains NaN or inf",
        lambda c: metrics.frechet_distance(torch.full((10, 4), math.nan), torch.rand(10, 4))),
    bad("psnr-empty-hole", ValueError, r"no hole pixels \(mask is 1 = hole, 0 = known\)",
        lambda c: metrics.psnr(img(), img(), mask=torch.zeros(2, 1, 16, 16))),
    bad("psnr-shapes", ValueError, r"expected two \(B, C, H, W\) batches or \(N, D\) rows of the same shape",
        lambda c: metrics.psnr(img(), img(s=8))),
    bad("ssim-tiny-images", ValueError, "smaller than kernel_size",
        lambda c: metrics.ssim(img(s=4), img(s=4))),
    bad("corrupt-kind", ValueError, "kind must be 'noise', 'blur' or 'shuffle'",
        lambda c: metrics.corrupt_images(img(), kind="jpeg", strength=0.1)),
    bad("corrupt-negative-strength", ValueError, "strength must be >= 0",
        lambda c: metrics.corrupt_images(img(), kind="noise", strength=-1.0)),
    bad("to-float-int64", TypeError, r"images must be uint8 \(0..255\) or floating point .*got dtype torch.int64",
        lambda c: to_float(torch.zeros(2, 3, 4, 4, dtype=torch.int64))),
    bad("show-images-four-channels", ValueError, r"images must be \(B, C, H, W\) with C = 1 or 3.*\(2, 4, 5, 5\)",
        lambda c: show_images(torch.zeros(2, 4, 5, 5))),
    # ------------------------------------------------------------------ contrastive and SS-GAN (issue 19)
    bad("nt-xent-shapes", ValueError, r"z1 and z2 must be \(N, D\) of the same shape, got \(4, 3\) and \(5, 3\)",
        lambda c: contrastive.nt_xent(torch.randn(4, 3), torch.randn(5, 3))),
    bad("simclr-augment-gray", ValueError, r"augment expects RGB images \(B, 3, H, W\), got \(2, 1, 16, 16\)",
        lambda c: contrastive.augment(img(c=1), contrastive.SimCLRConfig(), torch.Generator())),
    bad("simclr-augmentation-unknown", ValueError, r"augmentations must be a subset of \('crop', 'flip', 'colour'\)",
        lambda c: contrastive.SimCLRConfig(augmentations=("blur",))),
    bad("simclr-temperature-zero", ValueError, "temperature must be > 0, got 0.0",
        lambda c: contrastive.SimCLRConfig(temperature=0.0)),
    bad("simclr-crop-scale", ValueError, r"crop_scale must satisfy 0 < low <= high <= 1, got \(0.5, 1.5\)",
        lambda c: contrastive.SimCLRConfig(crop_scale=(0.5, 1.5))),
    bad("ssgan-wgan", ValueError, "SS-GAN here extends the DCGAN \\(loss='ns'\\), got loss='wgan-gp'",
        lambda c: ssgan.SSGANConfig(gan=gan.GANConfig(loss="wgan-gp"))),
    bad("ssgan-negative-weight", ValueError, "alpha and beta must be >= 0, got 0.2, -1.0",
        lambda c: ssgan.SSGANConfig(beta=-1.0)),
    bad("ssgan-rotations-not-square", ValueError, r"expected square images \(B, C, H, H\), got \(2, 3, 16, 8\)",
        lambda c: ssgan.quarter_rotations(torch.rand(2, 3, 16, 8))),
    bad("ssgan-uint8-into-d", TypeError, "discriminator input must be float images",
        lambda c: ssgan.build(ssgan.SSGANConfig.for_profile("smoke"))["discriminator"].rotation_logits(
            torch.zeros(2, 3, 16, 16, dtype=torch.uint8))),
    bad("ssgan-probe-too-small", ValueError, "the discriminator has 2 stages; a probe needs 3",
        lambda c: ssgan.DiscriminatorFeatures(gan.build(gan.GANConfig(image_size=16, width=8))[1])),
    # ------------------------------------------------------------------ masks
    bad("mask-kind", ValueError, r"unknown mask kind 'star'; expected one of",
        lambda c: masks.make_masks("star", batch=2, image_size=16)),
    bad("mask-batch-zero", ValueError, "batch must be a positive int",
        lambda c: masks.make_masks("center", batch=0, image_size=16)),
    bad("mask-batch-float", ValueError, "batch must be a positive int",
        lambda c: masks.make_masks("center", batch=2.0, image_size=16)),
    bad("mask-image-size", ValueError, "image_size must be a positive int",
        lambda c: masks.make_masks("center", batch=2, image_size=-1)),
    bad("mask-coverage-above-one", ValueError, r"coverage must be a fraction in \(0, 1\)",
        lambda c: masks.make_masks("blocks", batch=2, image_size=16, coverage=1.5)),
    bad("mask-coverage-zero", ValueError, r"coverage must be a fraction in \(0, 1\)",
        lambda c: masks.make_masks("center", batch=2, image_size=16, coverage=0)),
    bad("mask-half-side", ValueError, "side must be one of",
        lambda c: masks.make_masks("half", batch=2, image_size=16, side="diagonal")),
    bad("apply-mask-3d-images", ValueError, r"images must be \(B, C, H, W\)",
        lambda c: masks.apply_mask(img()[0], hole()[0:1])),
    bad("apply-mask-wrong-mask-shape", ValueError, r"mask must be \(B, 1, H, W\) matching images",
        lambda c: masks.apply_mask(img(), hole(s=8))),
    bad("apply-mask-fill-word", ValueError, "fill must be a number, a tensor or 'mean'",
        lambda c: masks.apply_mask(img(), hole(), "median")),
    bad("apply-mask-255", ValueError, r"mask must hold values in \[0, 1\] \(1 = hole, 0 = known\)",
        lambda c: masks.apply_mask(img(), hole(value=255.0))),
    bad("apply-mask-uint8-mask", TypeError, r"0/255 image mask\? use \(mask > 127\).float\(\)",
        lambda c: masks.apply_mask(img(), hole(value=255, dtype=torch.uint8))),
    bad("apply-mask-uint8-images", TypeError, r"images must be float images in \[0, 1\], got dtype torch.uint8",
        lambda c: masks.apply_mask(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), hole())),
    bad("fill-hole-mask-list", TypeError, r"mask must be a torch.Tensor \(1 = hole, 0 = known\), got list",
        lambda c: inpainting.fill_hole(img(), [[0, 1]])),
    bad("hole-psnr-uint8-images", ValueError, r"images must be float \(B, 3, H, W\) in \[0, 1\], got torch.uint8",
        lambda c: inpainting_eval.hole_psnr_by_seed({"mean": inpainting.mean_fill},
                                                    torch.zeros(2, 3, 16, 16, dtype=torch.uint8))),
    bad("hole-psnr-no-fillers", ValueError, r"fillers is empty: pass a mapping name -> fn\(images, mask\)",
        lambda c: inpainting_eval.hole_psnr_by_seed({}, img())),
    bad("margin-without-ns", ValueError, r"psnr lacks \['ns'\]; it has \['net', 'telea'\]",
        lambda c: inpainting_eval.margin_over_classical({"net": 20.0, "telea": 18.0})),
    # ------------------------------------------------------------------ tiles
    bad("tiles-grid-1", ValueError, r"grid must be an int >= 2 \(a 1x1 puzzle has nothing to shuffle\)",
        lambda c: tiles.make_tiles(img(s=30), grid=1)),
    bad("tiles-grid-float", ValueError, "grid must be an int >= 2",
        lambda c: tiles.make_tiles(img(s=30), grid=3.0)),
    bad("tiles-indivisible", ValueError, "must be square and divisible by grid=3; resize or crop to a multiple of 3",
        lambda c: tiles.make_tiles(img(s=32), grid=3)),
    bad("tiles-not-square", ValueError, "must be square",
        lambda c: tiles.make_tiles(torch.rand(1, 3, 30, 33), grid=3)),
    bad("tiles-3d", ValueError, r"images must be \(B, C, H, W\)",
        lambda c: tiles.make_tiles(torch.rand(3, 30, 30))),
    bad("tiles-tile-size", ValueError, r"tile_size must be in \[1, 10\] \(the cell size\)",
        lambda c: tiles.make_tiles(img(s=30), tile_size=11)),
    bad("permutations-method", ValueError, "method must be 'max', 'min' or 'random'",
        lambda c: tiles.hamming_permutations(10, method="best")),
    bad("permutations-grid-1", ValueError, "grid must be an int >= 2",
        lambda c: tiles.hamming_permutations(1, grid=1)),
    bad("permutations-n-zero", ValueError, r"n must be an int in \[1, 24\] for grid=2",
        lambda c: tiles.hamming_permutations(0, grid=2)),
    bad("permutations-too-many", ValueError, r"n must be an int in \[1, 24\] for grid=2",
        lambda c: tiles.hamming_permutations(25, grid=2)),
    bad("shuffle-not-a-permutation", ValueError, "every row of perms must be a permutation of 0..N-1",
        lambda c: tiles.shuffle_tiles(torch.rand(1, 9, 3, 4, 4), torch.zeros(9))),
    bad("shuffle-perms-shape", ValueError, r"perms must be \(N,\) or \(B, N\)",
        lambda c: tiles.shuffle_tiles(torch.rand(2, 9, 3, 4, 4), torch.arange(4))),
    bad("permutation-stats-one", ValueError, r"perms must be \(n >= 2, k\)",
        lambda c: tiles.permutation_stats(torch.arange(9)[None])),
    bad("assemble-tile-count", ValueError, "expected 9 tiles for grid=3, got 4",
        lambda c: tiles.assemble_tiles(torch.rand(1, 4, 3, 4, 4), grid=3)),
    # ------------------------------------------------------------------ loop and budgets
    bad("budget-empty", ValueError, "Budget needs at least one of steps=, epochs=, seconds=",
        lambda c: Budget()),
    bad("budget-steps-str", TypeError, r"Budget.steps must be a positive int, got '10' \(str\)",
        lambda c: Budget(steps="10")),
    bad("budget-steps-fraction", TypeError, r"Budget.steps must be a positive int, got 2.5 \(float\)",
        lambda c: Budget(steps=2.5)),
    bad("budget-steps-bool", TypeError, r"Budget.steps must be a positive int, got True",
        lambda c: Budget(steps=True)),
    bad("budget-steps-zero", ValueError, r"Budget.steps must be positive and finite, got 0",
        lambda c: Budget(steps=0)),
    bad("budget-steps-negative", ValueError, "Budget.steps must be positive",
        lambda c: Budget(steps=-5)),
    bad("budget-seconds-str", TypeError, r"Budget.seconds must be a positive number, got '60'",
        lambda c: Budget(seconds="60")),
    bad("budget-seconds-nan", ValueError, "Budget.seconds must be positive and finite, got nan",
        lambda c: Budget(seconds=math.nan)),
    bad("budget-seconds-inf", ValueError, "Budget.seconds must be positive and finite",
        lambda c: Budget(seconds=math.inf)),
    bad("budget-epochs-zero", ValueError, "Budget.epochs must be positive",
        lambda c: Budget(epochs=0)),
    bad("budget-epochs-without-len", ValueError, r"Budget\(epochs=...\) needs a loader with len\(\)",
        lambda c: Budget(epochs=1).max_steps(None)),
    bad("history-unknown-metric", KeyError, r"no metric 'loss' in history; it has \['kl'\]",
        lambda c: History(records=[{"step": 1, "kl": 0.5}])["loss"]),
    # ------------------------------------------------------------------ checkpoints and the cache
    bad("checkpoint-missing", checkpoint.CheckpointError, "no checkpoint at",
        lambda c: checkpoint.load_checkpoint(c.tmp / "none.pt", models=torch.nn.Linear(2, 2))),
    bad("checkpoint-corrupt", checkpoint.CheckpointError, r"is corrupted.*Delete the file, or move it aside",
        lambda c: checkpoint.read_checkpoint(c.file("c.pt", b"\x80\x02 half a file"))),
    bad("checkpoint-foreign-file", checkpoint.CheckpointError, "has format None, expected 1",
        lambda c: (torch.save({"weights": torch.zeros(2)}, c.tmp / "f.pt"),
                   checkpoint.read_checkpoint(c.tmp / "f.pt"))),
    bad("checkpoint-wrong-shapes", checkpoint.CheckpointError,
        r"does not fit model 'model' \(Linear\).*file \(2, 2\) vs model \(3, 2\)",
        lambda c: checkpoint.load_checkpoint(saved(c), models=torch.nn.Linear(2, 3))),
    bad("checkpoint-missing-model", checkpoint.CheckpointError, r"has no model \['decoder'\]; it holds \['encoder'\]",
        lambda c: checkpoint.load_checkpoint(saved(c, encoder=torch.nn.Linear(2, 2)),
                                             models={"decoder": torch.nn.Linear(2, 2)})),
    bad("checkpoint-other-optimizer", checkpoint.CheckpointError,
        r"optimizer 'opt' was saved from Adam, but you passed a SGD",
        lambda c: (lambda path, m: checkpoint.load_checkpoint(path, models=m, optimizers={
            "opt": torch.optim.SGD(m.parameters(), lr=0.1)}))(*_adam_checkpoint(c))),
    bad("checkpoint-missing-optimizer", checkpoint.CheckpointError, r"has no optimizer \['opt'\]",
        lambda c: checkpoint.load_checkpoint(saved(c), models=torch.nn.Linear(2, 2), optimizers={
            "opt": torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)})),
    bad("load-or-train-name", ValueError, "name must be a simple identifier like 'vae_ch02'",
        lambda c: _load_or_train(c, name="my model", cache_dir=c.tmp)),
    bad("load-or-train-config", TypeError, "config must be a dataclass instance or a dict, got int",
        lambda c: _load_or_train(c, config=3, cache_dir=c.tmp)),
    bad("load-or-train-corrupt-cache", checkpoint.CheckpointError, "move it aside.*load_or_train then retrains",
        lambda c: (_load_or_train(c, cache_dir=c.tmp).path.write_bytes(b"cut"), _load_or_train(c, cache_dir=c.tmp))),
    bad("cache-dir-is-a-file", NotADirectoryError, r"is a file, not a folder; point COURSE_CACHE at a folder",
        lambda c: _load_or_train(c, cache_dir=c.file())),
    bad("course-cache-env-is-a-file", NotADirectoryError, r"COURSE_CACHE=.*a_file is a file, not a folder",
        lambda c: (c.env("COURSE_CACHE", str(c.file())), ToyFaces(size=2, image_size=8))),
    bad("course-cache-env-under-a-file", NotADirectoryError, r"a_file is a file, not a folder",
        lambda c: (c.env("COURSE_CACHE", str(c.file() / "sub")), checkpoint.resolve_cache_dir())),
    # ------------------------------------------------------------------ runtime and environment variables
    bad("device-tpu", ValueError, r"device must be 'cpu', 'cuda\[:N\]' or 'mps', got 'tpu'",
        lambda c: runtime.get_device("tpu")),
    bad("device-gpu", ValueError, r"no 'gpu' device in PyTorch; use 'cuda' \(NVIDIA\), 'mps' \(Apple\) or 'cpu'",
        lambda c: runtime.get_device("gpu")),
    bad("device-garbage-index", ValueError, r"device must be 'cpu', 'cuda\[:N\]' or 'mps', got 'cuda:first'",
        lambda c: runtime.get_device("cuda:first")),
    bad("course-device-gpu", ValueError, r"'gpu' \(from COURSE_DEVICE\): there is no 'gpu' device",
        lambda c: (c.env("COURSE_DEVICE", "gpu"), runtime.get_device())),
    bad("course-device-tpu", ValueError, r"got 'tpu' \(from COURSE_DEVICE\)",
        lambda c: (c.env("COURSE_DEVICE", "tpu"), runtime.get_device())),
    bad("device-cuda-without-cuda", RuntimeError, r"CUDA is not available here; use 'cpu'",
        lambda c: runtime.get_device("cuda"), marks=NO_CUDA),
    bad("runtime-amp", ValueError, r"amp \(or \$COURSE_AMP\) must be one of auto, off, bf16, fp16; got 'fp8'",
        lambda c: runtime.runtime("cpu", amp="fp8")),
    bad("course-amp-env", ValueError, r"amp \(or \$COURSE_AMP\) must be one of auto, off, bf16, fp16; got 'half'",
        lambda c: (c.env("COURSE_AMP", "half"), runtime.runtime("cpu"))),
    bad("course-compile-env", ValueError, r"COURSE_COMPILE='maybe': expected 0/1 \(or true/false\)",
        lambda c: (c.env("COURSE_COMPILE", "maybe"), runtime.runtime("cpu"))),
    bad("course-channels-last-env", ValueError, r"COURSE_CHANNELS_LAST='nhwc': expected 0/1",
        lambda c: (c.env("COURSE_CHANNELS_LAST", "nhwc"), runtime.runtime("cpu"))),
    bad("seed-negative", ValueError, "seed must be a non-negative int, got -1",
        lambda c: runtime.seed_everything(-1)),
    bad("seed-str", ValueError, "seed must be a non-negative int, got '0'",
        lambda c: runtime.seed_everything("0")),
    bad("course-profile-env", ValueError,
        r"COURSE_PROFILE='fast' is not a course profile; expected one of smoke, cpu, gpu",
        lambda c: (c.env("COURSE_PROFILE", "fast"), profiles.current_profile())),
    bad("choose-profile", ValueError, "is not a course profile; expected one of",
        lambda c: profiles.choose(smoke=1, cpu=2, gpu=3, profile="laptop")),
    # ------------------------------------------------------------------ the loop and the CLI trainer
    bad("train-returns-list", TypeError,
        r"step_fn must return a dict of scalars like \{'loss': loss.detach\(\)\}, got list at step 1",
        lambda c: loop_train(lambda b: [1.0], [torch.zeros(1)], budget=Budget(steps=1), progress=False)),
    bad("train-returns-vector", ValueError, r"step_fn returned 'loss' with shape \(3,\) at step 1; return scalars",
        lambda c: loop_train(lambda b: {"loss": torch.ones(3)}, [torch.zeros(1)], budget=Budget(steps=1),
                             progress=False)),
    bad("train-every-zero", ValueError, "every and sync_every must be positive",
        lambda c: loop_train(lambda b: {}, [torch.zeros(1)], budget=Budget(steps=1), every=0)),
    bad("loader-global-batch-odd", ValueError, r"global batch_size=7 divisible by world_size",
        lambda c: runtime.DeviceLoader(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), batch_size=7, device="cpu",
                                       rank=0, world_size=2)),
    bad("loader-rank-out-of-range", ValueError, r"rank=2 must be in \[0, world_size=2\)",
        lambda c: runtime.DeviceLoader(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), batch_size=4, device="cpu",
                                       rank=2, world_size=2)),
    bad("cli-unknown-model", SystemExit, r"argument model: invalid choice: 'diffusion'",
        lambda c: cli_main(["diffusion", "--out", str(c.tmp / "run")])),
    bad("cli-steps-zero", SystemExit, "--steps must be a positive integer, got 0",
        lambda c: cli_main(["vae", "--steps", "0", "--out", str(c.tmp / "run")])),
    bad("cli-batch-negative", SystemExit, "--batch-size must be a positive integer, got -8",
        lambda c: cli_main(["vae", "--batch-size", "-8", "--out", str(c.tmp / "run")])),
    bad("cli-image-size-text", SystemExit, r"argument --image-size: invalid int value: 'big'",
        lambda c: cli_main(["vae", "--image-size", "big", "--out", str(c.tmp / "run")])),
    bad("cli-seed-negative", SystemExit, "--seed must be >= 0, got -1",
        lambda c: cli_main(["vae", "--seed", "-1", "--out", str(c.tmp / "run")])),
    bad("cli-data-unknown", SystemExit,
        "--data must be one of toyfaces, celeba, cifar10, imagefolder:PATH, got 'mnist2'",
        lambda c: cli_main(["vae", "--data", "mnist2", "--out", str(c.tmp / "run")])),
    bad("cli-no-out", SystemExit, "the following arguments are required: --out",
        lambda c: cli_main(["vae"])),
    bad("cli-profile-unknown", SystemExit, r"argument --profile: invalid choice: 'laptop'",
        lambda c: cli_main(["vae", "--profile", "laptop", "--out", str(c.tmp / "run")])),
    bad("cli-imagefolder-missing", FileNotFoundError, "no_such_folder",
        lambda c: cli_main(["vae", "--data", "imagefolder:" + str(c.tmp / "no_such_folder"), "--steps", "1",
                            "--out", str(c.tmp / "run")])),
    # ------------------------------------------------------------------ committed results
    bad("result-unknown", FileNotFoundError, r"no committed result 'fusoin'.*committed results: \[.*'fusion'",
        lambda c: results.load_result("fusoin")),
    bad("result-path-like-name", ValueError, "a result name is a plain identifier like 'fusion'",
        lambda c: results.load_result("experiments/results/fusion.json")),
    # ------------------------------------------------------------------ issue 30: config fields
    bad("vae-config-latent-dim-str", TypeError, r"VAEConfig.latent_dim must be an int >= 1, got '8' \(str\)",
        lambda c: vae.VAEConfig(latent_dim="8")),
    bad("vae-config-lr-negative", ValueError, r"VAEConfig.lr must be a number > 0, got -0.001",
        lambda c: vae.VAEConfig(lr=-1e-3)),
    bad("vae-config-beta-negative", ValueError, r"VAEConfig.beta must be a number >= 0, got -1",
        lambda c: vae.VAEConfig(beta=-1)),
    bad("gan-config-lr-d-negative", ValueError, r"GANConfig.lr_d must be a number > 0, got -0.0002",
        lambda c: gan.GANConfig(lr_d=-2e-4)),
    bad("gan-config-beta1", ValueError, r"GANConfig.beta1 must be a number in \[0, 1\), got 1.5",
        lambda c: gan.GANConfig(beta1=1.5)),
    bad("gan-config-z-dim-zero", ValueError, r"GANConfig.z_dim must be an int >= 1, got 0",
        lambda c: gan.GANConfig(z_dim=0)),
    bad("gan-config-d-steps-zero", ValueError, r"GANConfig.d_steps must be an int >= 1, got 0",
        lambda c: gan.GANConfig(d_steps=0)),
    bad("gan-config-gp-weight-negative", ValueError, r"GANConfig.gp_weight must be a number >= 0, got -10",
        lambda c: gan.GANConfig(gp_weight=-10)),
    bad("gan-config-clip-negative", ValueError, r"GANConfig.clip must be a number > 0, got -0.01",
        lambda c: gan.GANConfig(clip=-0.01)),
    # ------------------------------------------------------------------ issue 30: seeds and ToyFaces
    bad("toyfaces-seed-negative", ValueError, r"ToyFaces seed must be an int in \[0, 4294967295\], got -5",
        lambda c: ToyFaces(size=2, image_size=8, seed=-5)),
    bad("toyfaces-seed-fraction", TypeError, r"ToyFaces seed must be an int in \[0, 4294967295\], got 0.5",
        lambda c: ToyFaces(size=2, image_size=8, seed=0.5)),
    bad("toyfaces-size-bool", ValueError, "size must be a positive int, got True",
        lambda c: ToyFaces(size=True, image_size=8)),
    bad("toyfaces-override-smile-7", ValueError,
        r"override smile=7.0 is outside what ToyFaces draws: expected a number in \[-3, 3\]",
        lambda c: ToyFaces(size=2, image_size=8, overrides={"smile": 7.0})),
    # ------------------------------------------------------------------ issue 30: metrics
    bad("precision-recall-feature-sizes", ValueError, "feature sizes differ: 4 vs 5",
        lambda c: metrics.precision_recall(torch.rand(10, 4), torch.rand(10, 5))),
    bad("psnr-uint8-against-float", TypeError,
        r"x_hat and x must have the same dtype, got torch.uint8 and torch.float32.*float\(\) / 255",
        lambda c: metrics.psnr((img() * 255).to(torch.uint8), img())),
    bad("psnr-nan", ValueError, "x_hat contains NaN or inf",
        lambda c: metrics.psnr(torch.full((2, 3, 16, 16), math.nan), img())),
    bad("ssim-nan", ValueError, "x contains NaN or inf",
        lambda c: metrics.ssim(img(), torch.full((2, 3, 16, 16), math.nan))),
    bad("psnr-per-image-0-255", ValueError,
        r"x_hat must lie in \[0, data_range=1\], got values in \[0.0203, 255\]: clamp it, or pass data_range=255",
        lambda c: unsupervised.psnr_per_image(img() * 255, img() * 255 + 1)),
    # ------------------------------------------------------------------ issue 30: reference weights
    bad("ddpm-reference-lfs-pointer", checkpoint.CheckpointError, r"is a Git LFS pointer.*git lfs pull",
        lambda c: diffusion.reference_ddpm(lfs_pointer(c))),
    bad("ddpm-reference-truncated", checkpoint.CheckpointError,
        r"is truncated or corrupted.*rebuild it: python experiments/ddpm_reference.py",
        lambda c: diffusion.reference_ddpm(truncated(c, diffusion.REFERENCE_PATH))),
    bad("ddpm-reference-given-a-vae-checkpoint", checkpoint.CheckpointError,
        r"is a training checkpoint, not the DDPM reference export \(it lacks \['steps'",
        lambda c: diffusion.reference_ddpm(vae_checkpoint(c))),
    bad("inpainter-reference-lfs-pointer", checkpoint.CheckpointError, r"is a Git LFS pointer.*git lfs pull",
        lambda c: inpainting_eval.reference_inpainter(lfs_pointer(c))),
    bad("inpainter-reference-truncated", checkpoint.CheckpointError,
        r"is truncated or corrupted.*experiments/inpainting_reference.py",
        lambda c: inpainting_eval.reference_inpainter(truncated(c, inpainting_eval.REFERENCE_PATH))),
    bad("gan-reference-lfs-pointer", checkpoint.CheckpointError, r"is a Git LFS pointer.*git lfs pull",
        lambda c: gan_reference.reference_generator("dcgan", lfs_pointer(c))),
    bad("gan-reference-truncated", checkpoint.CheckpointError,
        r"is truncated or corrupted.*experiments/gan_reference.py --model dcgan",
        lambda c: gan_reference.reference_generator("dcgan", truncated(c, gan_reference.REFERENCE_PATHS["dcgan"]))),
    # ------------------------------------------------------------------ issue 30: output paths
    bad("checkpoint-path-is-a-folder", IsADirectoryError, r"ck is a folder, but a checkpoint is one file",
        lambda c: ((c.tmp / "ck").mkdir(), checkpoint.Checkpoint(c.tmp / "ck", models=torch.nn.Linear(2, 2)))),
    bad("load-or-train-cache-file-is-a-folder", IsADirectoryError, r"cache file path .*tiny-\w+\.pt is a folder",
        lambda c: (checkpoint.cache_path("tiny", CFG, cache_dir=c.tmp,
                                         data_version=RENDER_VERSION)[0].mkdir(parents=True),
                   _load_or_train(c, cache_dir=c.tmp))),
    # ------------------------------------------------------------------ issue 30: the CLI trainer
    bad("cli-out-is-a-file", SystemExit, r"--out must be a folder \(created if missing\), but .*a_file is a file",
        lambda c: cli_main(["vae", "--out", str(c.file())])),
    bad("cli-out-under-a-file", SystemExit, r"a_file is a file \(in --out .*a_file/sub\)",
        lambda c: cli_main(["vae", "--out", str(c.file() / "sub")])),
    bad("cli-seed-2-to-the-64", SystemExit, r"--seed must be at most 2\*\*32 - 1 = 4294967295, got 184467440737",
        lambda c: cli_main(["vae", "--seed", "18446744073709551616", "--out", str(c.tmp / "run")])),
    bad("cli-imagefolder-empty-path", SystemExit, "--data imagefolder: needs a folder after the colon",
        lambda c: cli_main(["vae", "--data", "imagefolder:", "--out", str(c.tmp / "run")])),
    bad("cli-checkpoint-is-a-folder", SystemExit, r"checkpoint.pt is a folder, but the run saves its checkpoint there",
        lambda c: ((c.tmp / "run" / "checkpoint.pt").mkdir(parents=True),
                   cli_main([*SMOKE_CLI, "--steps", "1", "--out", str(c.tmp / "run")]))),
    bad("cli-steps-below-the-checkpoint", SystemExit,
        r"holds a checkpoint at step 60, past --steps 30: a checkpoint cannot go back. Use --steps 60 or more",
        lambda c: (checkpoint.save_checkpoint(c.tmp / "run" / "checkpoint.pt", models=torch.nn.Linear(2, 2), step=60),
                   cli_main([*SMOKE_CLI, "--steps", "30", "--out", str(c.tmp / "run")]))),
    # ------------------------------------------------------------------ issue 30: image files
    bad("imagefolder-decompression-bomb", UserWarning,
        r"skipped 1 .*files: huge.png. huge.png: Image size \(196000000 pixels\) exceeds limit",
        lambda c: warned(lambda: datasets.load_dataset("imagefolder", split="all", image_size=8, root=huge_png(
            folder(c, {"ok.png": 10}) / "huge.png").parent))),
    bad("imagefolder-float-tiff-minus-one-to-one", UserWarning,
        r"neg.tif: F pixel values in \[-1, 1\], expected \[0, 1\] or \[0, 255\]",
        lambda c: warned(lambda: datasets.load_dataset("imagefolder", split="all", image_size=8, root=float_tiff(
            folder(c, {"ok.png": 10}) / "neg.tif").parent))),
    bad("imagefolder-image-size-1", ValueError, "image_size must be a positive int of at least 8.*got 1",
        lambda c: datasets.load_dataset("imagefolder", root=folder(c, {"ok.png": 10}), image_size=1)),
    # ------------------------------------------------------------------ issue 30: our own further cases
    bad("sample-z-negative-n", ValueError, r"sample_z: n must be an int >= 1, got -1",
        lambda c: gan.sample_z(-1, 8)),
    bad("sample-z-zero-dim", ValueError, r"sample_z: z_dim must be an int >= 1, got 0",
        lambda c: gan.sample_z(4, 0)),
    bad("generate-zero-images", ValueError, r"generate: n must be an int >= 1, got 0",
        lambda c: gan.generate(gan.Generator(z_dim=8, image_size=16, width=8), 0)),
    bad("generate-fractional-n", TypeError, r"generate: n must be an int >= 1, got 2.5 \(float\)",
        lambda c: gan.generate(gan.Generator(z_dim=8, image_size=16, width=8), 2.5)),
    bad("update-ema-decay-above-one", ValueError, r"update_ema: decay must be a number in \[0, 1\], got 2.0",
        lambda c: gan.update_ema(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), 2.0)),
    bad("gradient-penalty-uint8", TypeError, r"gradient_penalty: real must be float images in \[0, 1\], got dtype",
        lambda c: gan.gradient_penalty(gan.Discriminator(image_size=16, width=8), (img() * 255).to(torch.uint8),
                                       (img() * 255).to(torch.uint8))),
    bad("gan-config-image-size-str", TypeError, r"GANConfig.image_size must be an int >= 8, got '32' \(str\)",
        lambda c: gan.GANConfig(image_size="32")),
    bad("vae-sample-negative", ValueError, r"VAE.sample: n must be an int >= 1, got -1",
        lambda c: vae.VAE(latent_dim=4, image_size=16).sample(-1)),
    bad("vae-sample-zero", ValueError, r"VAE.sample: n must be an int >= 1, got 0",
        lambda c: vae.VAE(latent_dim=4, image_size=16).sample(0)),
    bad("reparameterize-shapes", ValueError, r"mu and logvar must both be \(B, latent_dim\), got \(2, 4\) and \(2, 5\)",
        lambda c: vae.reparameterize(torch.zeros(2, 4), torch.zeros(2, 5))),
    bad("kl-divergence-shapes", ValueError, r"mu and logvar must both be \(B, latent_dim\), got \(2, 4\) and \(3, 4\)",
        lambda c: vae.kl_divergence(torch.zeros(2, 4), torch.zeros(3, 4))),
    bad("elbo-negative-beta", ValueError, r"beta \(the KL weight; a negative one maximises the KL\) must be",
        lambda c: vae.elbo_loss(torch.zeros(2, 3, 8, 8), img(s=8), torch.zeros(2, 4), torch.zeros(2, 4), beta=-1.0)),
    bad("vae-step-negative-beta", ValueError, r"beta .* must be a number >= 0, got -1.0",
        lambda c: (lambda m: vae.vae_step(m, torch.optim.Adam(m.parameters()), img(), beta=-1.0))(
            vae.VAE(latent_dim=4, image_size=16))),
    bad("encode-batch-size-zero", ValueError, r"encode: batch_size must be an int >= 1, got 0",
        lambda c: vae.encode(vae.VAE(latent_dim=4, image_size=16), img(), batch_size=0)),
    bad("ddpm-config-schedule", ValueError, r"DDPMConfig.schedule must be one of \('linear', 'cosine'\), got 'quad",
        lambda c: diffusion.DDPMConfig(schedule="quadratic")),
    bad("sample-ddim-zero-images", ValueError, r"n \(images to sample\) must be an int >= 1, got 0",
        lambda c: diffusion.sample_ddim(diffusion.DDPMConfig.for_profile("smoke").build(), 0, steps=2)),
    bad("sample-ddpm-zero-steps", ValueError, r"sample_ddpm: steps must be an int >= 1, got 0",
        lambda c: diffusion.sample_ddpm(diffusion.DDPMConfig.for_profile("smoke").build(), 1, steps=0)),
    bad("flow-sample-times-zero", ValueError, r"sample_times: n must be an int >= 1, got 0",
        lambda c: flow.sample_times(0)),
    bad("flow-config-condition-string", TypeError, r"FlowConfig.condition must be a tuple.*write \('smile',\)",
        lambda c: flow.FlowConfig(condition="smile")),
    bad("guidance-scale-nan", ValueError, r"guidance scale must be a number \(finite\), got nan",
        lambda c: guidance.guide(torch.zeros(2), torch.zeros(2), math.nan)),
    bad("inpaint-config-coverage-reversed", ValueError, r"InpaintConfig.coverage must be \(low, high\) with low <=",
        lambda c: inpainting.InpaintConfig(coverage=(0.5, 0.2))),
    bad("mask-negative-seed", ValueError, r"make_masks: seed must be an int in \[0, 4294967295\], got -1",
        lambda c: masks.make_masks("blocks", batch=2, image_size=16, seed=-1)),
    bad("mask-batch-bool", ValueError, "batch must be a positive int, got True",
        lambda c: masks.make_masks("center", batch=True, image_size=16)),
    bad("mask-coverage-without-channel", ValueError, r"mask must be \(B, 1, H, W\) with 1 = hole, got shape \(1, 16",
        lambda c: masks.mask_coverage(torch.zeros(1, 16, 16))),
    bad("pca-k-float", ValueError, r"k must be between 1 and min\(N, D\) = 4, got 2.0",
        lambda c: unsupervised.pca_fit(torch.rand(5, 4), 2.0)),
    bad("pca-project-other-size", ValueError, "x has 3 values per row but the PCA was fitted on 4",
        lambda c: unsupervised.pca_project(torch.rand(5, 3), unsupervised.pca_fit(torch.rand(5, 4), 2))),
    bad("majority-baseline-empty", ValueError, "majority_baseline needs at least one label",
        lambda c: unsupervised.majority_baseline(torch.zeros(0, dtype=torch.long))),
    bad("auroc-nan-scores", ValueError, "auroc scores contain NaN or inf",
        lambda c: applications.auroc(torch.tensor([math.nan, 1.0]), torch.zeros(3))),
    bad("damage-masks-zero-batch", ValueError, r"damage_masks: batch must be an int >= 1, got 0",
        lambda c: applications.damage_masks(0, 16)),
    bad("localise-config-hole-zero", ValueError, r"LocaliseConfig.hole must be an int >= 1, got 0",
        lambda c: applications.LocaliseConfig(hole=0)),
    bad("augment-config-negative-steps", ValueError, r"AugmentConfig.steps must be an int >= 0, got -1",
        lambda c: applications.AugmentConfig(steps=-1)),
    bad("history-last-zero", ValueError, r"n must be a positive int \(how many of the last values\), got 0",
        lambda c: History(records=[{"step": 1, "loss": 1.0}]).last("loss", 0)),
    bad("loader-nan-images", ValueError, "float images contain NaN",
        lambda c: runtime.DeviceLoader(torch.full((4, 3, 4, 4), math.nan), batch_size=2, device="cpu")),
    bad("vae-nan-batch", ValueError, r"contains NaN",
        lambda c: vae.VAE(latent_dim=4, image_size=16)(torch.full((2, 3, 16, 16), math.nan))),
    bad("sample-attributes-negative-start", ValueError, r"start must be a non-negative int \(the first image index\)",
        lambda c: sample_attributes(2, start=-1)),
    bad("dataset-download-string", TypeError, "download must be True or False, got 'yes'",
        lambda c: datasets.load_dataset("toyfaces", size=2, image_size=8, download="yes")),
    bad("dataset-size-bool", ValueError, "size must be a positive int or None, got True",
        lambda c: datasets.load_dataset("toyfaces", size=True, image_size=8)),
    bad("corrupt-nan-strength", ValueError, r"strength must be a number \(finite\), got nan",
        lambda c: metrics.corrupt_images(img(), kind="noise", strength=math.nan)),
    bad("precision-recall-k-zero", ValueError, r"k \(nearest neighbours\) must be an int >= 1, got 0",
        lambda c: metrics.precision_recall(torch.rand(10, 4), torch.rand(10, 4), k=0)),
    bad("psnr-data-range-zero", ValueError, "data_range must be a positive number, got 0",
        lambda c: metrics.psnr(img(), img(), data_range=0)),
    bad("ssim-even-kernel", ValueError, "kernel_size must be an odd positive int .*got 4",
        lambda c: metrics.ssim(img(), img(), kernel_size=4)),
    bad("nt-xent-zero-temperature", ValueError, r"temperature must be a number > 0, got 0.0",
        lambda c: contrastive.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)),
    bad("nt-xent-one-image", ValueError, r"NT-Xent needs N >= 2 images .*got N = 1",
        lambda c: contrastive.nt_xent(torch.randn(1, 3), torch.randn(1, 3))),
    bad("save-checkpoint-negative-step", ValueError, r"step must be a non-negative int .*got -1",
        lambda c: checkpoint.save_checkpoint(c.tmp / "c.pt", models=torch.nn.Linear(2, 2), step=-1)),
    bad("save-checkpoint-model-list", TypeError, r"models must be an nn.Module or a dict \{name: nn.Module\}, got list",
        lambda c: checkpoint.save_checkpoint(c.tmp / "c.pt", models=[torch.nn.Linear(2, 2)])),
    bad("checkpoint-every-zero", ValueError, r"Checkpoint.every must be a positive int \(steps\), got 0",
        lambda c: checkpoint.Checkpoint(c.tmp / "c.pt", models=torch.nn.Linear(2, 2), every=0)),
    bad("permutations-negative-seed", ValueError, r"hamming_permutations: seed must be an int in \[0, 4294967295\]",
        lambda c: tiles.hamming_permutations(4, grid=2, seed=-1)),
    bad("seed-everything-bool", ValueError, "seed must be a non-negative int, got True",
        lambda c: runtime.seed_everything(True)),
]


def test_the_table_is_large_and_its_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) >= 100 and len(ids) == len(set(ids))


@pytest.mark.parametrize("call, exc, match", CASES)
def test_bad_input_gets_a_clear_error(call, exc, match, tmp_path, monkeypatch):
    for name in ("COURSE_CACHE", "COURSE_DEVICE", "COURSE_AMP", "COURSE_COMPILE", "COURSE_CHANNELS_LAST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))   # nothing lands in the user's cache
    ctx = Ctx(tmp_path, monkeypatch)
    with pytest.raises(exc, match=match) as err:
        call(ctx)
    assert type(err.value) is exc, f"raised {type(err.value).__name__}, expected exactly {exc.__name__}"


# ---------------------------------------------------------------------- made explicit (issue 30)
# Inputs that are legitimate but were silently reinterpreted: they keep working, and now say
# what they did and record it.

def test_transparent_png_is_composited_on_the_documented_background(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200          # red where opaque; the left half is fully transparent
    rgba[:, 4:, 3] = 255
    root = tmp_path / "pics"
    root.mkdir()
    Image.fromarray(rgba, "RGBA").save(root / "a.png")
    ds = datasets.load_dataset("imagefolder", root=root, image_size=8, split="all")
    assert ds.images[0, :, :, :4].eq(torch.tensor(datasets.BACKGROUND).view(3, 1, 1)).all()  # not black
    assert ds.images[0, :, :, 6:].eq(torch.tensor([200, 0, 0]).view(3, 1, 1)).all()


@pytest.mark.parametrize("data", ["toyfaces", "imagefolder"])
def test_cli_records_the_batch_it_used_when_the_set_is_smaller(tmp_path, capsys, monkeypatch, data):
    """--train-size 4 --batch-size 16, or a folder of 3 images: the batch is the whole set,
    the run says so, and config.json and metrics.json hold what was used (a student reading
    them later must see the run that happened)."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    if data == "imagefolder":
        pics = folder(Ctx(tmp_path, monkeypatch), {f"{i}.png": 40 * i for i in range(3)})
        args, n = ["--data", f"imagefolder:{pics}"], 3
    else:
        args, n = ["--train-size", "4"], 4
    out = tmp_path / "run"
    result = cli_main(["vae", "--profile", "smoke", "--batch-size", "16", "--steps", "1", *args, "--out", str(out)])
    assert f"{n} training images, fewer than the batch size 16: training with batch size {n}" in capsys.readouterr().out
    stored = json.loads((out / "config.json").read_text())["config"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert stored["batch_size"] == metrics["config"]["batch_size"] == result["config"]["batch_size"] == n
    assert metrics["config"]["train_size"] == n and metrics["steps"] == metrics["config"]["steps"] == 1
