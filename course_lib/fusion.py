"""Fusion of a generative model and a self-supervised task (article sections 3.3 and 4.4).

The article proposes three ways to combine a VAE with a pretext task; all three are
possible here without a new architecture because every encoder in the course holds the
same :class:`~course_lib.backbone.ConvBackbone` as ``.backbone``:

1. **Initialisation** (4.4, step 1): copy the backbone of a network trained on a pretext
   task (inpainting, jigsaw, rotation) into the VAE encoder: :func:`transfer_backbone`.
2. **Joint training** (4.4, step 2):  L = L_ELBO + lambda * L_inpainting, with one backbone
   shared by the VAE encoder and an inpainting head: :class:`JointModel`,
   :func:`inpainting_loss`, :func:`joint_loss`, :func:`joint_step`.
3. **The cycle** (3.3, point 2): samples of the generative model become training data for
   the pretext task (chapter 04's ``InpaintingNet`` and ``inpainting_step``); then
   chapter 05's ``probe_features`` + a linear probe say how good the features are.
   ``experiments/fusion.py`` and chapter 06 wire it up.

What the inpainting side sees and predicts (the article leaves it open, so we fix it):
the VAE encodes the *clean* image; the *masked* image ``x * (1 - mask) + 0.5 * mask``
(holes painted mid-grey, as in chapter 04) goes through the **same** backbone into
chapter 04's U-Net decoder, which predicts the whole image; the loss counts the **hole
pixels only**, summed per image and averaged over the batch: the same "sum over pixels,
mean over images" convention as the ELBO's reconstruction term.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import metrics
from course_lib.backbone import ConvBackbone
from course_lib.checkpoint import Checkpoint
from course_lib.images import to_float
from course_lib.inpainting import InpaintConfig, InpaintingNet, fill_hole, train_inpainter
from course_lib.inputs import validate_fields
from course_lib.loop import Budget, EarlyStopping, Step, train
from course_lib.masks import make_masks
from course_lib.profiles import choose
from course_lib.runtime import Runtime, backward_step, get_device, runtime, seed_everything  # noqa: F401  get_device: experiments/fusion.py records it
from course_lib.vae import VAE, elbo_loss, encode

HOLE_FILL = 0.5  # value painted into the holes before the image enters the backbone (as ch04)


# --------------------------------------------------------------------------- transfer
def find_backbone(module: nn.Module) -> tuple[str, ConvBackbone]:
    """The one :class:`ConvBackbone` inside ``module`` and its state_dict prefix.

    ``module`` may be a backbone itself (prefix ``""``), an encoder holding ``.backbone``
    (prefix ``"backbone."``), a VAE holding ``.encoder.backbone`` (``"encoder.backbone."``)...
    Raises ``ValueError`` when there is none or more than one.
    """
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, ConvBackbone)]
    if len(found) != 1:
        names = [n or "<root>" for n, _ in found]
        raise ValueError(
            f"expected exactly one ConvBackbone inside {type(module).__name__}, "
            f"found {len(found)}{': ' + ', '.join(names) if names else ''}. Every course "
            f"encoder holds one as `.backbone`; pass the model (or encoder) that holds it."
        )
    name, backbone = found[0]
    return (name + "." if name else ""), backbone


def transfer_backbone(src: nn.Module, dst: nn.Module, *, freeze: bool = False) -> list[str]:
    """Copy the backbone weights of ``src`` into ``dst``; leave everything else alone.

    ``src`` and ``dst`` are any two modules that each hold one ConvBackbone (for example
    chapter 04's trained ``InpaintingNet`` or chapter 05's jigsaw network and a fresh VAE). The values are
    *copied* (no parameter is shared afterwards). With ``freeze=True`` the destination
    backbone stops receiving gradients (``requires_grad=False``): "frozen" versus the
    default "fine-tuned" initialisation.

    Returns the ``dst`` state_dict keys that were overwritten, e.g.
    ``["encoder.backbone.conv1.weight", ...]``.
    """
    _, src_backbone = find_backbone(src)
    dst_prefix, dst_backbone = find_backbone(dst)
    src_state = src_backbone.state_dict()
    dst_state = dst_backbone.state_dict()
    for key, value in dst_state.items():
        if key not in src_state or src_state[key].shape != value.shape:
            got = tuple(src_state[key].shape) if key in src_state else "missing"
            raise ValueError(
                f"backbones differ at {key}: destination {tuple(value.shape)}, source {got}. "
                f"Both need the same in_channels and widths (source widths "
                f"{src_backbone.widths}, destination {dst_backbone.widths})."
            )
    with torch.no_grad():
        for key, value in dst_state.items():
            value.copy_(src_state[key])  # state_dict tensors alias the parameters
    for p in dst_backbone.parameters():
        p.requires_grad_(not freeze)
    return [dst_prefix + key for key in dst_state]


@torch.no_grad()
def feature_rms(module: nn.Module, images: torch.Tensor) -> float:
    """Root-mean-square of ``module``'s backbone features on ``images`` (uint8 or [0, 1])."""
    _, backbone = find_backbone(module)
    return float(backbone(to_float(images).to(backbone.conv3.weight.device)).pow(2).mean().sqrt())


@torch.no_grad()
def match_feature_scale(dst: nn.Module, images: torch.Tensor, *, rms: float) -> float:
    """Scale the last convolution of ``dst``'s backbone (its weight and bias by one factor
    ``c > 0``) so that the backbone's features on ``images`` (uint8 or [0, 1] ``(N, 3, S, S)``)
    have root-mean-square ``rms``; returns ``c``.

    The backbone's ReLUs are positively homogeneous, so this changes the features' scale and
    nothing they separate. Why it is needed: a transferred backbone can output features
    hundreds of times larger than a fresh one (chapter 05's rotation network trained on 500
    faces: about 300x), and the fresh heads on top, initialised for a fresh backbone's scale,
    then start at log-variances near 30 and move by about 100 with Adam's first step, so the
    VAE never recovers. Matching the fresh encoder's feature scale gives every initialisation
    the same starting point for its heads.
    """
    if rms <= 0:
        raise ValueError(f"rms must be positive, got {rms}")
    now = feature_rms(dst, images)
    if now == 0:
        raise ValueError("the backbone's features are all zero on these images: no scale to match")
    c = rms / now
    _, backbone = find_backbone(dst)
    backbone.conv3.weight.mul_(c)
    backbone.conv3.bias.mul_(c)
    return c


# ------------------------------------------------------------------- the joint model


def inpainting_loss(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_inpainting: squared error on the hole pixels, **summed per image**, mean over the batch.

    ``x_hat`` (the inpainter's prediction of the whole image), ``x``: (B, C, H, W); ``mask``:
    (B, 1, H, W), 1 = hole. Returns a scalar.
    Known pixels do not count: the task is to predict what is missing (Pathak et al. 2016,
    eq. 1). Chapter 04's ``masked_mse_loss`` *averages* over hole values instead; here the
    sum puts both terms of the joint loss on the same per-image scale as the ELBO.
    """
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} must match")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != x.shape[0] or mask.shape[2:] != x.shape[2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching images {tuple(x.shape)}, got {tuple(mask.shape)}")
    return ((x_hat - x) ** 2 * mask).flatten(1).sum(1).mean()


def hole_pull(*, lam: float, s: float, image_size: int = 8, coverage: float = 0.25) -> float:
    """How hard ``lam * inpainting_loss`` pulls on one hole value, relative to how hard the
    ELBO's reconstruction term (binary cross-entropy summed over an image's values, chapter
    02) pulls on one value: the ratio of the two gradients with respect to that value's
    logit, where the sigmoid outputs ``s``. Computed by autograd through
    :func:`inpainting_loss` on one image, so it reports what the code does: ``lam * 2s(1-s)``
    for a loss summed per image, whatever the image size and hole coverage (a loss averaged
    over the hole's values would divide it by their number)."""
    if not 0 < s < 1:
        raise ValueError(f"s is a sigmoid output in (0, 1), got {s}")
    logits = torch.full((1, 3, image_size, image_size), float(torch.logit(torch.tensor(s))), requires_grad=True)
    target = torch.zeros_like(logits)                      # any target other than s: the ratio cancels it
    mask = torch.zeros(1, 1, image_size, image_size)
    mask.view(-1)[: max(1, round(coverage * image_size**2))] = 1
    (hole_grad,) = torch.autograd.grad(lam * inpainting_loss(torch.sigmoid(logits), target, mask), logits)
    (recon_grad,) = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(logits, target, reduction="sum"), logits)   # one image: sum = per image
    return float(hole_grad.view(-1)[0] / recon_grad.view(-1)[0])


def joint_weight_finding(*, lam: float, coverage: float, image_size: int) -> str:
    """The joint loss's weight in words: :func:`hole_pull` at two sigmoid outputs, and the
    inpainting term's total pull on an image against the reconstruction term's (per-value
    pull times the hole's share of the values). Within a factor of ten either way the two
    terms are partners of comparable weight; below a tenth the inpainting term is a light
    regulariser; above ten it dominates."""
    pulls = {s: hole_pull(lam=lam, s=s, image_size=image_size, coverage=coverage) for s in (0.5, 0.8)}
    total = pulls[0.5] * coverage
    role = ("a light regulariser on the shared weights" if total < 0.1 else
            "the heavier of the two terms, by more than ten times" if total > 10 else
            "a partner of comparable weight to the reconstruction term, not a light regulariser")
    return ("Per value, a hole value's pull is " + " and ".join(
        f"{p:.2f} (sigmoid output {s})" for s, p in pulls.items())
        + f" times a reconstructed value's; the hole holds {coverage:.0%} of an image's values, so the inpainting "
        f"term pulls up to {total:.2f} times as hard as the reconstruction term on the whole image: {role}.")


def joint_loss(elbo: torch.Tensor, x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
               *, lam: float) -> torch.Tensor:
    """Article section 4.4: L = L_ELBO + lambda * L_inpainting.

    ``elbo`` is the negative ELBO (a scalar to minimise, e.g. ``vae.elbo_loss(...).loss``);
    at ``lam = 0`` the result is exactly ``elbo``.
    """
    return elbo + lam * inpainting_loss(x_hat, x, mask)


class JointModel(nn.Module):
    """A VAE and an inpainting network sharing one backbone: the VAE encoder's.

    Built around a VAE passed in (``vae.encoder.backbone`` exists, ``vae(x)`` returns
    ``(x_logits, mu, logvar)`` as :class:`course_lib.vae.VAE` does). The inpainting side
    is chapter 04's U-Net (:class:`course_lib.inpainting.InpaintingNet`) built on the
    *same* backbone object, so every inpainting gradient also moves the VAE encoder.

    ``forward(x, mask)`` -> dict with ``x_logits``, ``mu``, ``logvar`` (the VAE on the
    clean image ``x`` (B, 3, H, W) in [0, 1]) and ``x_hat`` (the U-Net's prediction of the
    whole image from the masked input ``fill_hole(x, mask)``; (B, 3, H, W) in [0, 1]).
    """

    def __init__(self, *, vae: nn.Module, decoder_widths: tuple[int, int, int] = (64, 32, 16)):
        super().__init__()
        self.vae = vae
        _, backbone = find_backbone(vae)
        self.inpainter = InpaintingNet(backbone=backbone, decoder_widths=decoder_widths)

    @property
    def backbone(self) -> ConvBackbone:
        return self.inpainter.backbone

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x_logits, mu, logvar = self.vae(x)                       # clean image through the VAE
        x_hat = self.inpainter(fill_hole(x, mask, HOLE_FILL), mask)  # from the masked image, (B, 3, H, W)
        return {"x_logits": x_logits, "mu": mu, "logvar": logvar, "x_hat": x_hat}


def joint_step(model: JointModel, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               mask: torch.Tensor, *, lam: float, beta: float = 1.0,
               likelihood: str = "bernoulli") -> dict[str, torch.Tensor]:
    """One optimisation step of L = L_ELBO + lam * L_inpainting on images ``x`` (B, 3, H, W)
    in [0, 1] and holes ``mask`` (B, 1, H, W).

    The ELBO is chapter 02's (:func:`course_lib.vae.elbo_loss`). With ``lam == 0`` the
    inpainting side is skipped: the step is an ordinary VAE step (chapter 02's
    ``vae_step``; ``tests/test_fusion.py`` checks they agree). Returns detached 0-d tensors
    ``loss``, ``elbo`` (negative ELBO), ``recon``, ``kl``, ``inpaint``.
    """
    model.train()
    if lam == 0:
        x_logits, mu, logvar = model.vae(x)
        inpaint = torch.zeros((), device=x.device)
    else:
        out = model(x, mask)
        x_logits, mu, logvar = out["x_logits"], out["mu"], out["logvar"]
        inpaint = inpainting_loss(out["x_hat"].float(), x, mask)
    terms = elbo_loss(x_logits.float(), x, mu.float(), logvar.float(), beta=beta, likelihood=likelihood)
    loss = terms.loss + lam * inpaint
    optimizer.zero_grad(set_to_none=True)
    backward_step(loss, optimizer)
    return {"loss": loss.detach(), "elbo": terms.loss.detach(), "recon": terms.recon.detach(),
            "kl": terms.kl.detach(), "inpaint": inpaint.detach()}


# ------------------------------------------------------------------- the experiment
# Does the fusion "greatly improve performance and data efficiency" (article 3.3)? One
# run = one VAE trained on ``train_size`` real images under one of four variants, with the
# same step budget; experiments/fusion.py runs the grid, chapter 06 runs one cell live.
# "baseline+steps" is the compute-matched control: the baseline given the pretraining's
# steps as extra VAE steps, so a lead of "+init" cannot be a mere head start.
VARIANTS = ("baseline", "init", "joint", "init+joint", "baseline+steps")


@dataclass(frozen=True)
class FusionConfig:
    image_size: int = 32          # square images, as chapters 02-05 use under the cpu profile
    latent_dim: int = 32          # size of z (chapter 02's cpu VAE)
    batch_size: int = 32          # images per step
    steps: int = 600              # VAE (or joint) steps: the same for every variant and size;
                                  # 19,200 images seen = 38 passes over N=500, 2 over N=10000
    pretrain_steps: int = 300     # inpainting pretraining steps (the "+init" variants), also
                                  # the extra steps of the compute-matched "baseline+steps"
    lr: float = 2e-3              # Adam, for pretraining and VAE training
    lam: float = 4.0              # lambda of L_ELBO + lambda * L_inpainting ("+joint"); both
                                  # sum over an image's values: a hole value pulls lam * 2s(1-s)
                                  # times a reconstructed value (hole_pull; chapter 06)
    mask_kind: str = "blocks"     # course_lib.masks kind for the inpainting task
    coverage: float = 0.3         # fraction of each image that is hole
    test_size: int = 1000         # real test images for ELBO, PSNR, Frechet and probe tests
    probe_size: int = 1000        # labelled validation images that train the linear probe
    n_samples: int = 1000         # prior samples for the domain Frechet distance

    def __post_init__(self) -> None:
        validate_fields(self, {
            "image_size": "int >= 8", "latent_dim": "int >= 1", "batch_size": "int >= 1", "steps": "int >= 1",
            "pretrain_steps": "int >= 0", "lr": "float > 0", "lam": "float >= 0", "coverage": "float in (0, 1)",
            "test_size": "int >= 2", "probe_size": "int >= 2", "n_samples": "int >= 2"})

    @classmethod
    def for_profile(cls, name: str | None = None) -> FusionConfig:
        """smoke: a handful of steps; cpu: the committed grid's config; gpu: 64x64, longer."""
        return choose(
            smoke=cls(image_size=16, latent_dim=8, batch_size=16, steps=8, pretrain_steps=8,
                      test_size=64, probe_size=64, n_samples=64),
            cpu=cls(),
            gpu=cls(image_size=64, latent_dim=64, batch_size=128, steps=3000, pretrain_steps=3000,
                    test_size=2000, probe_size=2000, n_samples=2000),
            profile=name,
        )


def _masks(config: FusionConfig, generator: torch.Generator, device) -> torch.Tensor:
    return make_masks(config.mask_kind, batch=config.batch_size, image_size=config.image_size,
                      coverage=config.coverage, generator=generator, device=device)


def pretext_config(config: FusionConfig, *, seed: int, train_size: int) -> InpaintConfig:
    """Chapter 04's config for the fusion's pretraining: one mask kind at one coverage, the
    fusion's batch, learning rate and ``pretrain_steps``, holes painted ``HOLE_FILL``."""
    return InpaintConfig(image_size=config.image_size, mask_kinds=(config.mask_kind,),
                         coverage=(config.coverage, config.coverage), fill=HOLE_FILL,
                         train_size=train_size, batch_size=config.batch_size,
                         steps=config.pretrain_steps, lr=config.lr, seed=seed)


def pretrain_inpainter(images: torch.Tensor, config: FusionConfig, *, seed: int,
                       plan: Runtime | None = None, device=None) -> InpaintingNet:
    """Chapter 04's pretext task on ``images`` (uint8 (N, 3, S, S)): an InpaintingNet
    trained by chapter 04's :func:`~course_lib.inpainting.train_inpainter` for
    ``config.pretrain_steps`` steps on :func:`pretext_config`. ``device`` is short for
    ``plan=runtime(device)``."""
    seed_everything(seed)
    model = InpaintingNet()
    train_inpainter(model, pretext_config(config, seed=seed, train_size=len(images)), images=images,
                    progress=False, plan=plan or runtime(device))
    return model.eval()


def train_variant(variant: str, images: torch.Tensor, config: FusionConfig, *, seed: int,
                  pretrained: InpaintingNet | None = None, lam: float | None = None,
                  plan: Runtime | None = None, device=None, checkpoint: str | os.PathLike | None = None,
                  progress: bool | str = False, val_images: torch.Tensor | None = None,
                  eval_every: int = 250, patience: int = 4,
                  match_scale: bool = False) -> tuple[VAE, list[dict]]:
    """Train one VAE on ``images`` (uint8 (N, 3, S, S)) under ``variant`` (see VARIANTS).

    "init" variants need ``pretrained`` (an InpaintingNet trained on the *same* images:
    the same real-data budget; for "init", any pretext network holding one ConvBackbone,
    e.g. chapter 05's jigsaw or rotation network). "init" copies its backbone into the VAE
    encoder (fine-tuned); "init+joint" starts the whole inpainting side from it;
    "baseline+steps" trains the plain VAE for ``steps + pretrain_steps`` steps. ``lam``
    overrides ``config.lam`` for the joint variants. Every variant trains the *same*
    :class:`JointModel` with :func:`joint_step` (at lambda = 0 for the plain ones), so they
    differ only in what the experiment varies. Returns (VAE in eval mode, history records).
    ``match_scale`` (with "init"): rescale the copied backbone so its features on the
    training images have the fresh encoder's root-mean-square (:func:`match_feature_scale`).

    With ``val_images`` (uint8, held out), training stops early: every ``eval_every`` steps
    the negative ELBO on them is recorded as ``val_nelbo``; after ``patience`` checks without
    improvement training ends and the VAE returned has the weights of the best check
    (:class:`course_lib.loop.EarlyStopping`; the records' last entry gains ``best_step``
    and ``stopped_at``). Early stopping keeps its state in memory: not with ``checkpoint``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant.startswith("init") and pretrained is None:
        raise ValueError(f"variant {variant!r} needs pretrained=<InpaintingNet>")
    seed_everything(seed)
    plan = plan or runtime(device)
    vae = VAE(latent_dim=config.latent_dim, image_size=config.image_size)
    model = JointModel(vae=vae)
    if variant == "init":
        sample = images[:256]
        fresh_rms = feature_rms(vae, sample) if match_scale else None
        transfer_backbone(pretrained, vae)
        if match_scale:
            match_feature_scale(vae, sample, rms=fresh_rms)
    elif variant == "init+joint":
        model.inpainter.load_state_dict(pretrained.state_dict())  # backbone shared with the VAE
    net = plan.prepare(model)
    weight = 0.0 if variant in ("baseline", "init", "baseline+steps") else (config.lam if lam is None else lam)
    steps = config.steps + (config.pretrain_steps if variant == "baseline+steps" else 0)
    params = vae.parameters() if weight == 0 else model.parameters()
    optimizer = torch.optim.Adam(params, lr=config.lr)
    loader = plan.loader(images, batch_size=config.batch_size, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)

    def step(x):
        return joint_step(net, optimizer, x, _masks(config, g, x.device), lam=weight)

    ckpt = None if checkpoint is None else Checkpoint(checkpoint, models=model, optimizers=optimizer,
                                                      every=max(steps // 10, 1))
    callbacks, stopper = [], None
    if val_images is not None:
        if checkpoint is not None:
            raise ValueError("train_variant: early stopping (val_images) keeps its state in memory; "
                             "pass val_images or checkpoint, not both")

        def val_nelbo() -> float:
            vae.eval()
            value = evaluate_vae(vae, val_images)["test_nelbo"]
            vae.train()
            return value
        stopper = EarlyStopping(vae, val_nelbo, patience=patience, name="val_nelbo")
        callbacks = [(eval_every, stopper)]
    history = train(Step(step, generators=[g]), loader, budget=Budget(steps=steps), progress=progress,
                    plan=plan, checkpoint=ckpt, desc=f"fusion {variant}", callbacks=callbacks)
    records = [{k: v for k, v in r.items() if k != "time"} for r in history.records]
    if stopper is not None:
        stopper.restore()
        records[-1].update(best_step=stopper.best_step, stopped_at=history.stopped_at)
        return vae.eval(), records
    return vae.eval(), [{k: v for k, v in r.items() if k != "step"} for r in records]


@torch.no_grad()
def evaluate_vae(vae: VAE, test_images: torch.Tensor, *, seed: int = 0,
                 batch_size: int = 250) -> dict[str, float]:
    """Test negative ELBO (nats per image, one z sample, lower is better) and the PSNR (dB)
    of the deterministic reconstructions decode(mu), on uint8 (N, 3, S, S) test images."""
    dev = next(vae.parameters()).device
    torch.manual_seed(seed)
    nelbo, psnr = [], []
    for i in range(0, len(test_images), batch_size):
        x = to_float(test_images[i:i + batch_size].to(dev))
        x_logits, mu, logvar = vae(x)
        nelbo.append(elbo_loss(x_logits, x, mu, logvar).loss * len(x))
        psnr.append(metrics.psnr(vae.decode(mu), x) * len(x))  # mean over images, in dB
    n = len(test_images)
    return {"test_nelbo": float(sum(nelbo) / n), "psnr": float(sum(psnr) / n)}


def probe_accuracy(train_feats, train_labels, test_feats, test_labels) -> float:
    """The committed grid's probe score: one scikit-learn logistic regression per attribute
    (C = 1, 300 iterations, seed 0) on standardised features, test accuracy averaged over the
    attributes. ``*_feats`` ``(N, D)``, ``*_labels`` int ``(N, A)``.

    Not :mod:`course_lib.probe`, the course's protocol (C chosen on a validation split, the
    solver run to convergence): ``fusion.json``'s probe numbers rest on where scikit-learn's
    solver stops, so the grid keeps its own fit until the grid is run again."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, xte = (np.asarray(torch.as_tensor(f).detach().cpu().double()) for f in (train_feats, test_feats))
    ytr, yte = (np.asarray(torch.as_tensor(y).cpu()).astype(np.int64) for y in (train_labels, test_labels))
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr), scaler.transform(xte)
    rows = np.random.default_rng(0).permutation(len(xtr))   # the order the grid's fits saw the faces in
    accuracy = []
    for a in range(ytr.shape[1]):
        y = ytr[rows, a]
        pred = (np.full(len(yte), y[0]) if np.unique(y).size < 2 else
                LogisticRegression(C=1.0, max_iter=300, random_state=0).fit(xtr[rows], y).predict(xte))
        accuracy.append(float((pred == yte[:, a]).mean()))
    return float(np.mean(accuracy))


def score_vae(vae: VAE, test, probe, *, judge, n_samples: int, seed: int = 0) -> dict[str, float]:
    """The experiment's four scores for one trained VAE: :func:`evaluate_vae` on ``test``
    (a ToyFaces-like set with ``.images`` and ``.labels``), the domain Frechet distance of
    ``n_samples`` prior samples to the test images in ``judge``'s feature space, and the probe
    accuracy on mu (trained on ``probe``, tested on ``test``)."""
    scores = evaluate_vae(vae, test.images, seed=seed)
    samples = vae.sample(n_samples, generator=torch.Generator().manual_seed(seed))
    scores["frechet"] = float(metrics.domain_frechet(samples, test.images, n=n_samples, net=judge))
    scores["probe"] = probe_accuracy(encode(vae, probe.images)[0], probe.labels,
                                     encode(vae, test.images)[0], test.labels)
    return scores
