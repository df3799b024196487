"""A small CNN trained on ToyFaces attributes: the feature space of the course's metrics.

Inception-based FID needs downloaded weights and judges ImageNet features. ToyFaces
knows the true attributes of every face, so we train our own "judge": a CNN that
predicts all 17 attributes (skin, hair, smile, glasses, pose...). Its penultimate layer
is a feature space where faces that differ in what matters for faces lie far apart.
The Frechet distance in that space (:func:`course_lib.metrics.domain_frechet`) is a
*domain-specific* score: it is comparable across the course's models at the same sample
count and image size, never with published Inception FIDs.

- :class:`AttributeNet`: the network; ``forward`` returns features, so it also plugs into
  ``torchmetrics``' ``FrechetInceptionDistance(feature=net)`` (uint8 input of any size).
- :func:`train_feature_net`: its training code (multi-head cross-entropy, Adam).
- :func:`load_feature_net`: trains once per image size and profile, then loads from the
  cache.

The metrics computed in this feature space, and :func:`course_lib.metrics.sanity_report`
(how the Frechet distance responds to damaged faces), live in :mod:`course_lib.metrics`,
which imports this module (never the other way round).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checkpoint import load_or_train
from course_lib.images import to_float
from course_lib.loop import History
from course_lib.profiles import choose, current_profile
from course_lib.runtime import backward_step, get_device
from course_lib.toyfaces import ATTRIBUTE_NAMES, ATTRIBUTES, ToyFaces
from course_lib.trainer import fit


@dataclass(frozen=True)
class FeatureNetConfig:
    """How the attribute network is built and trained."""

    image_size: int = 32      # input side in pixels (other sizes are resized to it)
    width: int = 32           # channels of the first conv; doubled twice
    feature_dim: int = 128    # size of the feature vector used by the metrics
    train_size: int = 6000    # ToyFaces training images (split "train", seed below)
    val_size: int = 1000      # ToyFaces validation images for the reported accuracy
    steps: int = 700          # Adam steps
    batch_size: int = 64      # images per step
    lr: float = 2e-3          # Adam learning rate
    seed: int = 0             # data set seed and training seed

    @classmethod
    def for_profile(cls, name: str | None = None, *, image_size: int | None = None) -> FeatureNetConfig:
        """The config of a profile (default: the current one), optionally at another size."""
        profile = name or current_profile()
        cfg = choose(smoke=cls(image_size=16, train_size=512, val_size=256, steps=40, batch_size=64),
                     cpu=cls(image_size=32),
                     gpu=cls(image_size=64, train_size=20000, val_size=2000, steps=2500, batch_size=256),
                     profile=profile)
        return cfg if image_size is None else replace(cfg, image_size=image_size)


def _num_classes() -> tuple[int, ...]:
    return tuple(a.num_classes for a in ATTRIBUTES)


class AttributeNet(nn.Module):
    """Images -> features -> one classifier head per ToyFaces attribute.

    Input: ``(B, 3, H, W)`` uint8 (0..255) or float in [0, 1], any ``H, W`` (resized to
    ``image_size``); 1-channel images are repeated to 3. ``forward`` returns the
    features ``(B, feature_dim)`` (non-negative, after ReLU); :meth:`logits` returns
    ``(B, sum(num_classes))``; :meth:`predict_attributes` the class per attribute.
    """

    def __init__(self, *, image_size: int = 32, width: int = 32, feature_dim: int = 128,
                 num_classes: tuple[int, ...] | None = None):
        super().__init__()
        if image_size < 16 or image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 and >= 16, got {image_size}")
        self.image_size = image_size
        self.num_classes = tuple(num_classes or _num_classes())
        self.num_features = feature_dim  # read by torchmetrics' FID
        w = width
        self.convs = nn.Sequential(  # the backbone's 4x4 stride-2 shape, with BatchNorm
            nn.Conv2d(3, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),              # (B, w, S/2, S/2)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),      # (B, 2w, S/4, S/4)
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.ReLU(),  # (B, 4w, S/8, S/8)
        )
        # Flatten, not global pooling: position, pose and tile order must stay visible.
        self.embed = nn.Linear(4 * w * (image_size // 8) ** 2, feature_dim)
        self.heads = nn.Linear(feature_dim, sum(self.num_classes))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float, any size -> float ``(B, 3, image_size, image_size)``."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images (B, 3, H, W) or (B, 1, H, W), got {tuple(images.shape)}")
        x = to_float(images)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return x

    def _stages(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.prepare(images.to(self.embed.weight.device))
        stage1 = self.convs[:3](x)                                # (B, w, S/2, S/2)
        stage2 = self.convs[3:6](stage1)                          # (B, 2w, S/4, S/4)
        features = torch.relu(self.embed(self.convs[6:](stage2).flatten(1)))  # (B, feature_dim)
        return stage1, stage2, features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._stages(images)[2]  # (B, feature_dim)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads(self(images))  # (B, sum(num_classes))

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Per-attribute logits ``[(B, C_a) for each attribute]``."""
        return list(logits.split(self.num_classes, dim=1))

    @torch.no_grad()
    def features(self, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """Features of many images, in eval mode and batches: float32 ``(N, feature_dim)`` on CPU."""
        was_training = self.training
        self.eval()
        out = [self(images[i:i + batch_size]).cpu() for i in range(0, images.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.num_features)

    @torch.no_grad()
    def layer_features(self, images: torch.Tensor, *, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Features from three depths, for :func:`course_lib.metrics.fidelity_diversity`.

        ``"attributes"``: :meth:`features`, ``(N, feature_dim)``; ``"texture1"``,
        ``"texture2"``: the spatial standard deviation of every channel after the first and
        second conv stage, ``(N, w)`` and ``(N, 2w)`` (float32, CPU). Why: the attribute
        features only have to name hair colour or a smile, so a flat image of the right
        colours lands among real faces (a constant 0.7 gray: k-NN precision 1.0). Edges and
        strokes make early feature maps vary across space; flat, blurred and noisy images
        change that variation, whatever their colours (the style statistics of Gatys et
        al. 2016, reduced to one number per channel).
        """
        if images.shape[0] == 0:
            raise ValueError("layer_features needs at least one image, got an empty batch")
        was_training = self.training
        self.eval()
        parts = {"attributes": [], "texture1": [], "texture2": []}
        for i in range(0, images.shape[0], batch_size):
            stage1, stage2, feats = self._stages(images[i:i + batch_size])
            parts["attributes"].append(feats.cpu())
            parts["texture1"].append(stage1.std(dim=(2, 3)).cpu())
            parts["texture2"].append(stage2.std(dim=(2, 3)).cpu())
        self.train(was_training)
        return {name: torch.cat(p) for name, p in parts.items()}

    @torch.no_grad()
    def predict_attributes(self, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """The predicted class of every attribute: int64 ``(N, A)`` on CPU (like ``ToyFaces.labels``)."""
        was_training = self.training
        self.eval()
        preds = []
        for i in range(0, images.shape[0], batch_size):
            parts = self.split_logits(self.logits(images[i:i + batch_size]))
            preds.append(torch.stack([p.argmax(1) for p in parts], dim=1).cpu())
        self.train(was_training)
        return torch.cat(preds)


def attribute_accuracy(net: AttributeNet, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy per attribute name on ``images`` with ToyFaces ``labels`` (N, A)."""
    correct = (net.predict_attributes(images) == labels.cpu()).float().mean(0)
    return {name: float(a) for name, a in zip(ATTRIBUTE_NAMES, correct)}


def build_feature_net(config: FeatureNetConfig) -> AttributeNet:
    """An untrained net, initialised from ``config.seed`` (global RNG state untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return AttributeNet(image_size=config.image_size, width=config.width,
                            feature_dim=config.feature_dim)


def train_feature_net(net: AttributeNet, config: FeatureNetConfig, *, progress: bool | str = "auto") -> History:
    """Train ``net`` in place on ToyFaces: mean cross-entropy over the attribute heads.

    The last history record also holds ``val_acc/<attribute>`` and ``val_acc_mean``.
    """
    data = ToyFaces(split="train", size=config.train_size, image_size=config.image_size, seed=config.seed)

    def setup(plan):
        plan.prepare(net)
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
        net.train()

        def step(batch):
            images, labels = batch
            parts = net.split_logits(net.logits(images).float())
            loss = sum(F.cross_entropy(p, labels[:, a]) for a, p in enumerate(parts)) / len(parts)
            optimizer.zero_grad(set_to_none=True)
            backward_step(loss, optimizer)
            schedule.step()
            return {"loss": loss.detach()}
        return step, net, {"adam": optimizer, "one_cycle": schedule}

    history = fit(config, setup, desc=f"feature net {config.image_size}px", images=data.images, labels=data.labels,
                  progress=progress)
    net.eval()
    val = ToyFaces(split="val", size=config.val_size, image_size=config.image_size, seed=config.seed)
    acc = attribute_accuracy(net, val.images.to(next(net.parameters()).device), val.labels)
    history.records.append({"step": config.steps, **{f"val_acc/{k}": v for k, v in acc.items()},
                            "val_acc_mean": sum(acc.values()) / len(acc)})
    return history


_LOADED: dict[tuple, tuple[AttributeNet, list[dict]]] = {}


def load_feature_net(image_size: int | None = None, *, config: FeatureNetConfig | None = None,
                     device: str | torch.device | None = None) -> AttributeNet:
    """The trained attribute network for ``image_size`` (trained once, then cached).

    ``config`` defaults to ``FeatureNetConfig.for_profile()`` at ``image_size``. The net is
    returned in eval mode on ``device`` (default: :func:`course_lib.runtime.get_device`);
    its training history, including validation accuracy per attribute, is in
    :func:`feature_net_history`.
    """
    cfg = config or FeatureNetConfig.for_profile(image_size=image_size)
    if image_size is not None and cfg.image_size != image_size:
        cfg = replace(cfg, image_size=image_size)
    dev = get_device(device)
    key = (cfg, str(dev))
    if key not in _LOADED:
        result = load_or_train(f"feature_net_{cfg.image_size}px", train_feature_net, config=cfg,
                               build=build_feature_net, device=dev)
        _LOADED[key] = (result.model.eval(), result.history)
    return _LOADED[key][0]


def feature_net_history(net: AttributeNet) -> list[dict]:
    """The training records of a net returned by :func:`load_feature_net`."""
    for model, history in _LOADED.values():
        if model is net:
            return history
    raise KeyError("this net did not come from load_feature_net()")
