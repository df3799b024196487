"""Device, precision, seeding and the on-device batch loader, decided in one place.

Nothing else in the course calls ``.cuda()``: chapters ask this module.

- :func:`get_device` picks CUDA, then Apple MPS, then CPU (override with an argument or
  the ``COURSE_DEVICE`` environment variable).
- :func:`runtime` bundles the device with the precision and memory-layout choices that
  pay on it (measured on this project's 2-core CPU, see COURSE_DESIGN.md):

  ========  ===============================  =============  =======
  device    autocast                         channels_last  compile
  ========  ===============================  =============  =======
  CUDA      bf16 (fp16 + GradScaler if the   on             off
            card has no bf16)
  MPS       off (fp32; ``COURSE_AMP=fp16``    off            off
            opts in)
  CPU       off (fp32: bf16 is 23x slower)   off            off
  ========  ===============================  =============  =======

  ``torch.compile`` is always opt-in (``COURSE_COMPILE=1``): a cold compile costs about
  30 s, which a 3-minute chapter cannot pay back.
- :func:`seed_everything` makes CPU runs repeatable.
- :class:`DeviceLoader` keeps a whole uint8 data set on the device and slices shuffled
  batches there (no DataLoader workers: for in-memory tensors ``num_workers=0`` is the
  fastest on CPU, and on a GPU the copy disappears entirely).
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

DEVICE_ENV = "COURSE_DEVICE"
AMP_ENV = "COURSE_AMP"
CHANNELS_LAST_ENV = "COURSE_CHANNELS_LAST"
COMPILE_ENV = "COURSE_COMPILE"

_AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(override: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``override``, else ``$COURSE_DEVICE``, else the best one.

    "Best" is CUDA, then MPS, then CPU. Asking for a device that is not there raises a
    ``RuntimeError`` that says what is available instead of failing later inside a model.
    """
    choice = override if override is not None else os.environ.get(DEVICE_ENV, "").strip() or None
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    where = f" (from {DEVICE_ENV})" if override is None else ""
    if isinstance(choice, str) and choice.strip().lower().split(":")[0] == "gpu":
        raise ValueError(f"device {choice!r}{where}: there is no 'gpu' device in PyTorch; use "
                         f"'cuda' (NVIDIA), 'mps' (Apple) or 'cpu'")
    try:
        device = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or 'mps', got {choice!r}{where}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(choice)!r} was requested but CUDA is not available here; "
                           f"use 'cpu' (or unset {DEVICE_ENV}).")
    if device.type == "mps" and not _mps_available():
        raise RuntimeError(f"device {str(choice)!r} was requested but Apple MPS is not available "
                           f"here; use 'cpu' (or unset {DEVICE_ENV}).")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or 'mps', got {str(choice)!r}{where}")
    return device


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected 0/1 (or true/false)")


@dataclass(frozen=True)
class Runtime:
    """How to run on one device. Build it with :func:`runtime`, not by hand."""

    device: torch.device       # where models and batches live
    amp_dtype: torch.dtype | None  # autocast dtype; None = plain fp32
    use_scaler: bool           # fp16 autocast needs a GradScaler against underflow
    channels_last: bool        # NHWC memory layout for convolutions (pays on CUDA)
    compile: bool              # wrap models in torch.compile (opt-in everywhere)

    @property
    def precision(self) -> str:
        """'fp32', 'bf16' or 'fp16'."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def describe(self) -> str:
        """One line for notebooks, e.g. ``cpu, fp32, channels_last=off, compile=off``."""
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return (f"{name}, {self.precision}, channels_last={'on' if self.channels_last else 'off'}, "
                f"compile={'on' if self.compile else 'off'}")

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (in place) in the chosen memory layout.

        Returns the model, or its ``torch.compile`` wrapper when ``compile`` is on (the
        wrapper shares parameters with ``model``, so save ``model``'s state_dict).
        """
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Move a float image batch ``(B, C, H, W)`` to the device in the chosen layout."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is a no-op unless fp16 autocast needs it."""
        return torch.amp.GradScaler(self.device.type, enabled=self.use_scaler)


def runtime(device: str | torch.device | None = None, *, amp: str | None = None,
            channels_last: bool | None = None, compile: bool | None = None) -> Runtime:
    """Decide device and precision once. ``None`` means "what pays on this device".

    ``amp`` is ``'auto'``, ``'fp32'``, ``'bf16'`` or ``'fp16'`` (env ``COURSE_AMP``);
    ``channels_last`` / ``compile`` default from ``COURSE_CHANNELS_LAST`` /
    ``COURSE_COMPILE``, else on CUDA only / never.
    """
    dev = get_device(device)
    amp = (amp or os.environ.get(AMP_ENV, "").strip().lower() or "auto")
    if amp == "auto":
        if dev.type == "cuda":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:  # CPU: bf16 autocast is 23x slower here (no native bf16); MPS: fp32 is safe
            amp = "fp32"
    if amp not in _AMP_DTYPES:
        raise ValueError(f"amp must be one of auto, fp32, bf16, fp16; got {amp!r}")
    if amp == "fp16" and dev.type == "cpu":
        raise ValueError("fp16 autocast is not supported on CPU; use amp='fp32' (or 'bf16', slow)")
    if channels_last is None:
        channels_last = _env_flag(CHANNELS_LAST_ENV)
    if channels_last is None:
        channels_last = dev.type == "cuda"  # +3-7% on CPU here (noise); pays with tensor cores
    if compile is None:
        compile = bool(_env_flag(COMPILE_ENV))
    return Runtime(device=dev, amp_dtype=_AMP_DTYPES[amp], use_scaler=(amp == "fp16"),
                   channels_last=bool(channels_last), compile=bool(compile))


def autocast(rt: Runtime) -> contextlib.AbstractContextManager:
    """``with autocast(rt):`` runs the forward pass in ``rt``'s precision (no-op for fp32)."""
    if rt.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=rt.device.type, dtype=rt.amp_dtype)


def seeded_generator(seed: int | None = None, generator: torch.Generator | None = None) -> torch.Generator:
    """The CPU generator a seeded data helper draws from: ``generator`` if given, else a new
    one seeded with ``seed`` (0 when ``None``), so masks and tiles repeat exactly."""
    if generator is not None:
        return generator
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (all devices). Returns ``seed``.

    On CPU this alone makes training repeatable. ``deterministic=True`` also asks cuDNN
    for deterministic kernels (slower; GPU runs are otherwise only approximately
    repeatable).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


class DeviceLoader:
    """Shuffled mini-batches sliced from tensors that live on the device.

    ``images``: uint8 ``(N, C, H, W)`` (values 0..255) or float in [0, 1]; ``labels``:
    optional tensor with first dimension ``N`` (e.g. ToyFaces ``.labels``, int64 ``(N, A)``).
    Iterating yields one epoch of float32 images ``(B, C, H, W)`` in [0, 1] on
    ``device`` (and the matching labels: ``(images, labels)``).

    The whole uint8 set is moved once (64x64 ToyFaces: 12 KB per image) and converted
    per batch, so a GPU never waits for the host. Epoch ``e``'s order depends only on
    ``(seed, e)``; :meth:`batches` can start at any global step, which is what makes a
    resumed run see exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None = None,
                 *, batch_size: int, device: str | torch.device | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True, channels_last: bool = False):
        images = torch.as_tensor(images)
        if images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
        if images.is_floating_point() and images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(f"float images must lie in [0, 1], got values in [{images.min().item():.3g}, "
                             f"{images.max().item():.3g}]: pass the uint8 images, or divide by 255")
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape[0] != images.shape[0]:
                raise ValueError(f"labels has {labels.shape[0]} rows but images has {images.shape[0]}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if drop_last and batch_size > images.shape[0]:
            raise ValueError(f"batch_size={batch_size} is larger than the data set ({images.shape[0]} "
                             f"images) with drop_last=True: no batch would be produced")
        self.device = get_device(device) if not isinstance(device, torch.device) else device
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.epoch = 0  # the epoch the next ``for batch in loader`` runs

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (a permutation of ``range(N)``, on the device)."""
        n = self.images.shape[0]
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)  # CPU generator: same order on every device
        return torch.randperm(n, generator=g).to(self.device)

    def _batch(self, idx: torch.Tensor):
        x = self.images[idx]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()  # (B, C, H, W) in [0, 1]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x if self.labels is None else (x, self.labels[idx])

    def batches(self, start_step: int = 0) -> Iterator:
        """Batches forever, starting at global step ``start_step`` (epoch = step // len)."""
        per_epoch = len(self)
        epoch, offset = divmod(start_step, per_epoch)
        while True:
            order = self.order(epoch)
            for b in range(offset, per_epoch):
                yield self._batch(order[b * self.batch_size:(b + 1) * self.batch_size])
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator:
        """One epoch in a fresh order each time (a hand-written ``for epoch`` loop)."""
        order = self.order(self.epoch)
        self.epoch += 1
        for b in range(len(self)):
            yield self._batch(order[b * self.batch_size:(b + 1) * self.batch_size])
