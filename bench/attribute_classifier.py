"""Proof that ToyFaces attributes are visible in the pixels: a small CNN learns them.

Run: ``.venv/bin/python bench/attribute_classifier.py [image_size] [steps]``
(default 32 px, 1500 steps of batch 64: about a minute on an idle CPU core). Writes
bench/results/attribute_classifier_<size>.txt with per-attribute test accuracy next to the
majority-class baseline (continuous attributes are scored on their 3 bins, ``ds.labels``).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from course_lib.artifacts import write_result
from course_lib.backbone import ConvBackbone
from course_lib.images import to_float
from course_lib.toyfaces import ATTRIBUTES, ToyFaces


class AttributeNet(nn.Module):
    """The course's shared ConvBackbone plus one linear head per attribute.

    (B, 3, S, S) in [0, 1] -> list of (B, num_classes) logits, one per attribute.
    """

    def __init__(self, *, image_size: int):
        super().__init__()
        self.backbone = ConvBackbone()                                  # (B, 128, S/8, S/8)
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(128 * (image_size // 8) ** 2, 256),
                                  nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(256, a.num_classes) for a in ATTRIBUTES)

    def forward(self, x):
        h = self.neck(self.backbone(x))
        return [head(h) for head in self.heads]


def main(image_size: int = 32, steps: int = 1500, batch: int = 64) -> str:
    # One intra-op thread: on a shared 2-core machine, two threads spend most of their time
    # waiting for each other; set BENCH_THREADS=2 on an idle one.
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    torch.manual_seed(0)
    train = ToyFaces(split="train", size=20_000, image_size=image_size)
    test = ToyFaces(split="test", size=2_000, image_size=image_size)
    net = AttributeNet(image_size=image_size)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(train), (batch,))
        x = to_float(train.images[idx])
        y = train.labels[idx]
        loss = sum(loss_fn(logits, y[:, j]) for j, logits in enumerate(net(x)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        logits = [torch.cat(parts) for parts in zip(*(net(to_float(x))
                                                     for x in test.images.split(500)))]
    lines = [f"attribute classifier, {image_size}px, {steps} steps x batch {batch}, "
             f"train {len(train)} / test {len(test)} images, {seconds:.0f} s training "
             f"({torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f})",
             f"{'attribute':<12} {'kind':<12} {'classes':>7} {'accuracy':>9} {'majority':>9}"]
    accs = []
    for j, a in enumerate(ATTRIBUTES):
        y = test.labels[:, j]
        acc = (logits[j].argmax(1) == y).float().mean().item()
        majority = torch.bincount(y).max().item() / len(y)
        accs.append(acc)
        lines.append(f"{a.name:<12} {a.kind:<12} {a.num_classes:>7} {acc:>9.3f} {majority:>9.3f}")
    lines.append(f"{'mean':<12} {'':<12} {'':>7} {sum(accs) / len(accs):>9.3f}")
    text = "\n".join(lines)
    out = Path(__file__).parent / "results" / f"attribute_classifier_{image_size}.txt"
    write_result(out, text)
    return text


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(main(*args))
