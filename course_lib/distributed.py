"""Several processes under ``torchrun``: the process group, the global batch, the gradients.

Outside ``torchrun`` every function here is a no-op, so the course's code calls them
unconditionally.

- :func:`init_distributed` joins torchrun's process group once (NCCL on CUDA, gloo on CPU);
  :func:`course_lib.runtime.runtime` calls it and wraps models in ``DistributedDataParallel``.
- :func:`active` holds the runtime plan of the loop now running (:func:`course_lib.loop.train`
  enters it); :func:`active_plan` reads it, and so do the helpers below.
- :func:`world_size`, :func:`local_share` and :func:`randn_like_global`: each rank draws
  the noise of the whole global batch and keeps its share, so N processes see what one would.
- :func:`average_gradients`: one all-reduce for the gradients no DDP wrapper averages.
"""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import torch

from .device import DEVICE_ENV

if TYPE_CHECKING:
    from .runtime import Runtime


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


# ------------------------------------------------------------------ the plan now running
_ACTIVE: list[Runtime] = []     # the plan of the loop now running (course_lib.loop.train sets it)


@contextlib.contextmanager
def active(plan: Runtime):
    """Within this block :func:`course_lib.runtime.backward_step` and the helpers below follow
    ``plan`` (the loop enters it)."""
    _ACTIVE.append(plan)
    try:
        yield plan
    finally:
        _ACTIVE.pop()


def active_plan() -> Runtime | None:
    """The plan of the loop now running, or ``None`` outside one."""
    return _ACTIVE[-1] if _ACTIVE else None


def world_size() -> int:
    """Processes sharing each global batch under the active plan (1 outside torchrun)."""
    plan = active_plan()
    return plan.world_size if plan is not None else 1


def local_share(x: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a tensor drawn for the *global* batch (first dimension), under
    the active plan; ``x`` itself outside torchrun. A GAN draws the noise of the whole
    global batch on every rank and keeps its share, so N processes see the z one would."""
    plan = active_plan()
    if plan is None or not plan.distributed:
        return x
    share = x.shape[0] // plan.world_size
    return x[plan.rank * share:(plan.rank + 1) * share]


def randn_like_global(x: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(x)`` for a batch ``x`` that is this rank's share of the global
    batch: the noise of the whole global batch is drawn (every rank's generator is in the
    same state) and this rank's slice kept, so N processes draw the noise one would."""
    n = world_size()
    if n == 1:
        return torch.randn_like(x)
    return local_share(torch.randn((x.shape[0] * n, *x.shape[1:]), dtype=x.dtype, device=x.device))


def average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    """Average over the ranks the gradients of ``optimizer``'s parameters that no DDP wrapper
    averaged (``p.ddp_averaged``, set by :meth:`course_lib.runtime.Runtime.prepare`)."""
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
