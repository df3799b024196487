"""Mini-batches sliced on the device from a data set that lives there.

:class:`DeviceLoader` keeps a whole uint8 data set on the device and slices shuffled batches
there: no DataLoader workers (for in-memory tensors ``num_workers=0`` is the fastest on a CPU,
and on a GPU the host-to-device copy disappears entirely). Each epoch's order depends only on
the seed and the epoch, which is what lets a resumed run see exactly the batches an
uninterrupted run would have seen. :meth:`course_lib.runtime.Runtime.loader` builds one on the
plan's device and layout, sharded over the ranks under ``torchrun``.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .device import get_device


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
