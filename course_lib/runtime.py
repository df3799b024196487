"""The runtime plan: precision, memory layout and the optimizer step, decided in one place.

- :func:`runtime` bundles the device (:func:`course_lib.device.get_device`) with the
  precision and memory-layout choices that pay on it:

  ========  ===============================  =============  =======
  device    autocast                         channels_last  compile
  ========  ===============================  =============  =======
  CUDA      bf16 (fp16 + GradScaler if the   on             off
            card has no bf16)
  MPS       off (fp32; ``COURSE_AMP=fp16``    off            off
            opts in)
  CPU       off (fp32: CPUs without native   off            off
            bf16 emulate it, slowly)
  ========  ===============================  =============  =======

  ``torch.compile`` is always opt-in (``COURSE_COMPILE=1``): a cold compile costs more than a
  chapter's short training runs gain from it.
  The result, a :class:`Runtime`, is the *plan*: trainers take it as ``plan=`` and
  :func:`course_lib.loop.train` runs every step under it.
- Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`runtime` joins the process group
  (:mod:`course_lib.distributed`), puts each process on its own GPU (``LOCAL_RANK``),
  :meth:`Runtime.prepare` wraps models in ``DistributedDataParallel`` and
  :meth:`Runtime.loader` gives each rank its shard of every global batch
  (:class:`course_lib.loader.DeviceLoader`).
- :func:`backward_step` is the one ``loss.backward(); optimizer.step()`` of every course
  step function: it applies the active plan's GradScaler (fp16) and, for models that are
  not DDP-wrapped (the two GAN players), averages gradients over the ranks.
- :func:`seed_everything` makes CPU runs repeatable; :func:`seeded_generator` is the
  generator a seeded data helper draws from.

``get_device``, ``DeviceLoader`` and the distributed helpers (``local_share``,
``randn_like_global``, ``world_size``, ``init_distributed``, ``active``) are importable from
here too, as they were before they had modules of their own.
"""
from __future__ import annotations

import contextlib
import os
import random
import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .device import DEVICE_ENV, get_device
from .distributed import (
    active,
    active_plan,
    average_gradients,
    init_distributed,
    local_share,
    randn_like_global,
    world_size,
)
from .inputs import SEED_MAX
from .loader import DeviceLoader

__all__ = [
    "AMP_CHOICES", "Runtime", "runtime", "backward_step", "autocast", "seeded_generator", "seed_everything",
    # re-exported from course_lib.device, course_lib.loader and course_lib.distributed
    "DEVICE_ENV", "get_device", "DeviceLoader", "init_distributed", "active", "local_share",
    "randn_like_global", "world_size",
]

AMP_ENV = "COURSE_AMP"
CHANNELS_LAST_ENV = "COURSE_CHANNELS_LAST"
COMPILE_ENV = "COURSE_COMPILE"

_AMP_DTYPES = {"off": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = ("auto", "off", "bf16", "fp16")  # COURSE_AMP values; "fp32" is an alias of "off"


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
    rank: int = 0              # this process's rank under torchrun (0 otherwise)
    world_size: int = 1        # number of processes sharing each global batch

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 prints, writes checkpoints and output files."""
        return self.rank == 0

    @property
    def precision(self) -> str:
        """'fp32', 'bf16' or 'fp16'."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def describe(self) -> str:
        """One line for notebooks, e.g. ``cpu, fp32, channels_last=off, compile=off``."""
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        ranks = f", rank {self.rank} of {self.world_size}" if self.distributed else ""
        return (f"{name}, {self.precision}, channels_last={'on' if self.channels_last else 'off'}, "
                f"compile={'on' if self.compile else 'off'}{ranks}")

    def prepare(self, model: nn.Module, *, ddp: bool = True) -> nn.Module:
        """Move ``model`` to the device (in place) in the chosen memory layout.

        Returns the module to call in the step function: ``model`` itself, or a wrapper
        that shares its parameters (``DistributedDataParallel`` when distributed and
        ``ddp``; ``torch.compile`` when ``compile`` is on). Save and load ``model``, not
        the wrapper. ``ddp=False`` is for models called several times before one backward
        (a GAN's discriminator sees real and fake batches; DDP's reducer expects one forward
        per backward and no double backward): :func:`backward_step` then averages their
        gradients over the ranks itself.
        """
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        net = model
        if self.distributed and ddp:
            from torch.nn.parallel import DistributedDataParallel
            if self.device.type == "cuda":  # one set of batch statistics over the global batch
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            # On CPU (gloo) SyncBatchNorm does not run: BatchNorm layers normalise with
            # each rank's shard (the course's DDP-wrapped models have no BatchNorm).
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            for p in model.parameters():
                p.ddp_averaged = True  # on the tensor itself: ids are reused once objects die
        return torch.compile(net) if self.compile else net

    def loader(self, images, labels=None, *, batch_size: int, seed: int = 0,
               shuffle: bool = True, unit_range: bool = True) -> DeviceLoader:
        """A :class:`DeviceLoader` on this device and layout; ``batch_size`` is the *global*
        batch, of which each rank takes its ``batch_size // world_size`` share."""
        if batch_size % self.world_size:
            raise ValueError(f"the global batch_size={batch_size} must be divisible by the "
                             f"number of processes ({self.world_size})")
        return DeviceLoader(images, labels, batch_size=batch_size, device=self.device, seed=seed,
                            shuffle=shuffle, channels_last=self.channels_last, unit_range=unit_range,
                            rank=self.rank, world_size=self.world_size)

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

    ``amp`` is ``'auto'``, ``'off'`` (fp32; ``'fp32'`` also works), ``'bf16'`` or ``'fp16'``
    (env ``COURSE_AMP``); ``channels_last`` / ``compile`` default from
    ``COURSE_CHANNELS_LAST`` / ``COURSE_COMPILE``, else on CUDA only / never. Under
    ``torchrun`` the process group is joined here (see :func:`init_distributed`).
    """
    rank, world_size, local_rank = init_distributed(device)
    if device is None and world_size > 1 and torch.cuda.is_available() and not os.environ.get(DEVICE_ENV):
        device = f"cuda:{local_rank}"
    dev = get_device(device)
    amp = (amp or os.environ.get(AMP_ENV, "").strip().lower() or "auto")
    if amp == "auto":
        if dev.type == "cuda":  # bf16 only where the card has it natively (not emulated: a T4 gets fp16)
            amp = "bf16" if _native_bf16() else "fp16"
        else:  # CPU: without native bf16 autocast emulates it, far slower than fp32; MPS: fp32 is safe
            amp = "off"
    if amp not in _AMP_DTYPES:
        raise ValueError(f"amp (or ${AMP_ENV}) must be one of {', '.join(AMP_CHOICES)}; got {amp!r}")
    if amp == "fp16" and dev.type == "cpu":
        raise ValueError("fp16 autocast is not supported on CPU; use amp='fp32' (or 'bf16', slow)")
    if channels_last is None:
        channels_last = _env_flag(CHANNELS_LAST_ENV)
    if channels_last is None:
        channels_last = dev.type == "cuda"  # pays with tensor cores; on a CPU it is within the noise
    if compile is None:
        compile = bool(_env_flag(COMPILE_ENV))
    return Runtime(device=dev, amp_dtype=_AMP_DTYPES[amp], use_scaler=(amp == "fp16"),
                   channels_last=bool(channels_last), compile=bool(compile),
                   rank=rank, world_size=world_size)


def _native_bf16() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation (and no emulation)
        return bool(torch.cuda.is_bf16_supported())


# one fp16 GradScaler per live optimizer
_SCALERS: weakref.WeakKeyDictionary[torch.optim.Optimizer, torch.amp.GradScaler] = weakref.WeakKeyDictionary()


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """``loss.backward(); optimizer.step()`` under the active plan.

    Call ``optimizer.zero_grad()`` first, as usual. The backward pass runs outside
    autocast (PyTorch's recommendation: it reuses the forward's dtypes anyway); with fp16
    the loss is scaled by a per-optimizer GradScaler against underflow; under torchrun the
    gradients of parameters that no DDP wrapper handles are averaged over the ranks, which
    is what DDP does for the others. With no active plan it is exactly
    ``loss.backward(); optimizer.step()``.
    """
    plan = active_plan()
    if plan is None:
        loss.backward()
        optimizer.step()
        return
    scaler = None
    if plan.use_scaler:
        scaler = _SCALERS.setdefault(optimizer, torch.amp.GradScaler(plan.device.type))
    with torch.autocast(device_type=plan.device.type, enabled=False):
        (scaler.scale(loss) if scaler is not None else loss).backward()
    if plan.distributed:
        average_gradients(optimizer, plan.world_size)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def autocast(plan: Runtime) -> contextlib.AbstractContextManager:
    """``with autocast(plan):`` runs the forward pass in ``plan``'s precision (no-op for fp32)."""
    if plan.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=plan.device.type, dtype=plan.amp_dtype)


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
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if seed > SEED_MAX:  # torch takes at most 64 bits, and trainers seed with seed + 1
        raise ValueError(f"seed must be at most 2**32 - 1 = {SEED_MAX}, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed
