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
- Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`runtime` joins the process group
  (NCCL on CUDA, gloo on CPU), puts each process on its own GPU (``LOCAL_RANK``) and
  :meth:`Runtime.prepare` wraps models in ``DistributedDataParallel``;
  :meth:`Runtime.loader` gives each rank its shard of every global batch.
- :func:`backward_step` is the one ``loss.backward(); optimizer.step()`` of every course
  step function: it applies the active plan's GradScaler (fp16) and, for models that are
  not DDP-wrapped (the two GAN players), averages gradients over the ranks.
- :func:`seed_everything` makes CPU runs repeatable.
- :class:`DeviceLoader` keeps a whole uint8 data set on the device and slices shuffled
  batches there (no DataLoader workers: for in-memory tensors ``num_workers=0`` is the
  fastest on CPU, and on a GPU the copy disappears entirely).
"""
from __future__ import annotations

import contextlib
import os
import random
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib.inputs import SEED_MAX

DEVICE_ENV = "COURSE_DEVICE"
AMP_ENV = "COURSE_AMP"
CHANNELS_LAST_ENV = "COURSE_CHANNELS_LAST"
COMPILE_ENV = "COURSE_COMPILE"

_AMP_DTYPES = {"off": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = ("auto", "off", "bf16", "fp16")  # COURSE_AMP values; "fp32" is an alias of "off"


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
        else:  # CPU: bf16 autocast is 23x slower here (no native bf16); MPS: fp32 is safe
            amp = "off"
    if amp not in _AMP_DTYPES:
        raise ValueError(f"amp (or ${AMP_ENV}) must be one of {', '.join(AMP_CHOICES)}; got {amp!r}")
    if amp == "fp16" and dev.type == "cpu":
        raise ValueError("fp16 autocast is not supported on CPU; use amp='fp32' (or 'bf16', slow)")
    if channels_last is None:
        channels_last = _env_flag(CHANNELS_LAST_ENV)
    if channels_last is None:
        channels_last = dev.type == "cuda"  # +3-7% on CPU here (noise); pays with tensor cores
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


def init_distributed(device: str | torch.device | None = None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``: joins torchrun's process group once.

    Outside torchrun (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) this is ``(0, 1, 0)`` and
    nothing is initialised. The backend is NCCL when the processes use CUDA, gloo otherwise
    (gloo also runs the multi-process tests on a CPU).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, 0
    import torch.distributed as dist
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        requested = str(device or os.environ.get(DEVICE_ENV) or "cuda")
        wants_cuda = torch.cuda.is_available() and requested.startswith("cuda")
        if wants_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def local_share(x: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a tensor drawn for the *global* batch (first dimension), under
    the active plan; ``x`` itself outside torchrun. A GAN draws the noise of the whole
    global batch on every rank and keeps its share, so N processes see the z one would."""
    rt = _ACTIVE[-1] if _ACTIVE else None
    if rt is None or not rt.distributed:
        return x
    share = x.shape[0] // rt.world_size
    return x[rt.rank * share:(rt.rank + 1) * share]


def randn_like_global(x: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(x)`` for a batch ``x`` that is this rank's share of the global
    batch: the noise of the whole global batch is drawn (every rank's generator is in the
    same state) and this rank's slice kept, so N processes draw the noise one would."""
    n = world_size()
    if n == 1:
        return torch.randn_like(x)
    return local_share(torch.randn((x.shape[0] * n, *x.shape[1:]), dtype=x.dtype, device=x.device))


def world_size() -> int:
    """Processes sharing each global batch under the active plan (1 outside torchrun)."""
    return _ACTIVE[-1].world_size if _ACTIVE else 1


# ------------------------------------------------------------------ the optimizer step
_ACTIVE: list[Runtime] = []     # the plan of the loop now running (course_lib.loop.train sets it)
# one fp16 GradScaler per live optimizer
_SCALERS: weakref.WeakKeyDictionary[torch.optim.Optimizer, torch.amp.GradScaler] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def active(rt: Runtime):
    """Within this block :func:`backward_step` follows ``rt`` (the loop enters it)."""
    _ACTIVE.append(rt)
    try:
        yield rt
    finally:
        _ACTIVE.pop()


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    """``loss.backward(); optimizer.step()`` under the active plan.

    Call ``optimizer.zero_grad()`` first, as usual. The backward pass runs outside
    autocast (PyTorch's recommendation: it reuses the forward's dtypes anyway); with fp16
    the loss is scaled by a per-optimizer GradScaler against underflow; under torchrun the
    gradients of parameters that no DDP wrapper handles are averaged over the ranks, which
    is what DDP does for the others. With no active plan it is exactly
    ``loss.backward(); optimizer.step()``.
    """
    rt = _ACTIVE[-1] if _ACTIVE else None
    if rt is None:
        loss.backward()
        optimizer.step()
        return
    scaler = None
    if rt.use_scaler:
        scaler = _SCALERS.setdefault(optimizer, torch.amp.GradScaler(rt.device.type))
    with torch.autocast(device_type=rt.device.type, enabled=False):
        (scaler.scale(loss) if scaler is not None else loss).backward()
    if rt.distributed:
        _average_gradients(optimizer, rt.world_size)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def _average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    import torch.distributed as dist
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None and not getattr(p, "ddp_averaged", False)]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])  # one all-reduce for all of them
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


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


class DeviceLoader:
    """Shuffled mini-batches sliced from tensors that live on the device.

    ``images``: uint8 ``(N, C, H, W)`` (values 0..255) or float in [0, 1] (any float data,
    e.g. an autoencoder's latents, with ``unit_range=False``); ``labels``:
    optional tensor with first dimension ``N`` (e.g. ToyFaces ``.labels``, int64 ``(N, A)``).
    ``batch_size`` is global: with ``world_size`` > 1 each ``rank`` gets its slice of it.
    Iterating yields one epoch of float32 images ``(B, C, H, W)`` in [0, 1] on
    ``device`` (and the matching labels: ``(images, labels)``).

    The whole uint8 set is moved once (64x64 ToyFaces: 12 KB per image) and converted
    per batch, so a GPU never waits for the host. Epoch ``e``'s order depends only on
    ``(seed, e)``; :meth:`batches` can start at any global step, which is what makes a
    resumed run see exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None = None,
                 *, batch_size: int, device: str | torch.device | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True, channels_last: bool = False,
                 rank: int = 0, world_size: int = 1, unit_range: bool = True):
        images = torch.as_tensor(images)
        if images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
        if images.is_floating_point() and images.numel() and images.isnan().any():
            raise ValueError("float images contain NaN; a loader needs values in [0, 1]")
        if unit_range and images.is_floating_point() and images.numel() and (images.min() < 0 or images.max() > 1):
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
        if not 0 <= rank < world_size or batch_size % world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size}) and the global "
                             f"batch_size={batch_size} divisible by world_size")
        self.device = get_device(device) if not isinstance(device, torch.device) else device
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.rank, self.world_size = rank, world_size  # each rank yields its share of every batch
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
        if self.world_size > 1:  # the global batch's rank-th slice: same order on every rank
            share = len(idx) // self.world_size
            idx = idx[self.rank * share:(self.rank + 1) * share]
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


def require_idle(*, force: bool = False) -> float:
    """The 1-minute load average, after checking it is at most 1 per core.

    Timings and chapter executions taken beside other work run 10-20x slower on a small
    machine, and budgets sized on them leave methods under-trained; so ``make execute`` and
    ``bench/chapter_times.py`` refuse a busy machine unless ``force`` (then they say so).
    """
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores and not force:
        raise SystemExit(f"load average {load:.2f} is above 1 per core ({cores} cores): other work "
                         "would slow every chapter; wait for an idle machine or force it "
                         "(FORCE=1 make execute, chapter_times.py --force)")
    return load
