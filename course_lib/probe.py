"""The course's one linear-probe protocol: how much does a frozen backbone know?

A linear probe freezes a network, takes its features and fits a logistic regression per
label (Alain & Bengio 2016; the standard evaluation of self-supervised features since
Zhang et al. 2016 and Noroozi & Favaro 2016, who probe every layer). A probe can only tell
backbones apart if it is tuned and fed fairly, so the protocol is fixed here, once:

1. **Every layer, nearly the whole map.** Features come from each stage of the shared
   :class:`course_lib.backbone.ConvBackbone` (``h1``, ``h2``, ``h3``). A map is kept whole
   when it has at most ``max_dim`` numbers; a larger one is average-pooled to the largest
   power-of-two grid that fits (at 32 px, ``h3`` 128x4x4 = 2048 stays whole, ``h2``
   64x8x8 -> 64x4x4, ``h1`` 32x16x16 -> 32x8x8). Why: a logistic regression on 8192
   numbers from 2000 faces costs minutes per attribute on a CPU and overfits; pooling
   2x2 neighbourhoods keeps the layout the attributes need (where the glasses are).
2. **A standard scaler fitted on the training split only**; validation and test features
   are transformed with the training statistics.
3. **C chosen on a validation split** from a small grid, per attribute; the test split is
   scored once, with the chosen C.
4. **Convergence is not silenced**: the regressions (scikit-learn's ``LogisticRegression``
   objective, solved jointly for all attributes by L-BFGS in torch: seconds instead of
   minutes, the same minimum, checked against scikit-learn in the tests) run until every
   gradient entry is below ``tol``; stopping at ``max_iter`` warns (``ConvergenceWarning``):
   raise it, do not hide the warning.
5. **Scores**: per-attribute test accuracies and their mean; :func:`normalised` puts a
   score on the scale random init = 0, supervised ceiling = 1.
6. **Few labels** (:func:`probe_budgets`): self-supervision is for when labels are scarce
   (Chen et al. 2020 probe with 1% and 10% of ImageNet's labels), so the probe is also
   trained on a *label budget* of n faces: a random subset of the probe's training split,
   drawn from ``seed`` alone (:func:`budget_subsets`), so that every backbone probed at
   seed s sees the same n faces and backbones can be compared *paired by seed*. The
   subsets are nested (the 20 faces are among the 50, the 50 among the 200). The scaler
   is fitted on the n faces; C and the layer are still chosen on the whole validation
   split. That is an assumption, stated here: a person with 20 labelled faces would not
   have 500 more to tune on. SimCLR's semi-supervised protocol makes the same one (its
   hyper-parameters are tuned on a held-out validation set), and it is what keeps the
   comparison about the features rather than about a noisy choice of C: cross-validating
   inside 20 faces (a fold of 4 faces, attributes with classes missing from the fold)
   would choose C by chance and blur every backbone alike. The features are computed once
   per backbone and reused across budgets (a fit on n faces works in n dimensions, after
   the SVD, so small budgets cost little).

(Only chapter 06's old fusion grid keeps a fixed-C fit of its own,
:func:`course_lib.fusion.probe_accuracy`, because its committed numbers rest on it.)

Functions, top to bottom: :func:`layer_features` (frozen features per layer),
:func:`fit_probe` (steps 2-4 on given features), :func:`probe_backbone` (both for every
layer), :func:`budget_subsets` and :func:`probe_budgets` (step 6), :func:`best_layer`,
:func:`normalised`.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from .images import to_float
from .pretext import standardise

LAYERS = ("h1", "h2", "h3")


@dataclass(frozen=True)
class ProbeConfig:
    """The probe protocol's settings (the same for every backbone)."""

    Cs: tuple[float, ...] = (0.01, 0.03, 0.1)  # inverse L2 strength (scikit-learn's C), chosen on validation
    max_iter: int = 1000        # L-BFGS iterations per C: enough to converge here (warnings are not hidden)
    tol: float = 1e-3           # converged when every gradient entry is below this (mean-loss scale)
    max_dim: int = 2048         # a layer's map is average-pooled until C * s * s <= max_dim
    layers: tuple[str, ...] = LAYERS  # backbone stages probed

    def __post_init__(self) -> None:
        if not self.Cs or any(not c > 0 for c in self.Cs):
            raise ValueError(f"ProbeConfig.Cs must be positive floats, got {self.Cs!r}")
        if self.max_iter < 1 or self.max_dim < 1 or not self.tol > 0:
            raise ValueError(f"ProbeConfig.max_iter and max_dim must be >= 1 and tol > 0, got "
                             f"{self.max_iter}, {self.max_dim}, {self.tol}")
        bad = [layer for layer in self.layers if layer not in LAYERS]
        if bad or not self.layers:
            raise ValueError(f"ProbeConfig.layers must be a non-empty subset of {LAYERS}, got {self.layers!r}")


def pooled_grid(channels: int, size: int, max_dim: int) -> int:
    """Side ``s`` a (channels, size, size) map is pooled to: ``size`` itself when
    ``channels * size**2 <= max_dim``, else the largest ``size / 2**k`` that fits (>= 1)."""
    s = size
    while s > 1 and channels * s * s > max_dim:
        s //= 2
    return max(s, 1)


@torch.no_grad()
def layer_features(backbone, images: torch.Tensor, *, layers: Sequence[str] = LAYERS,
                   max_dim: int = 2048, standardised: bool = False,
                   batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Frozen features of every requested backbone stage.

    ``images`` (N, 3, H, W): uint8, or float in [0, 1]. Returns ``{layer: (N, D_layer)}``
    float32 on the CPU, each map average-pooled as :func:`pooled_grid` says and flattened
    (channel-major). ``standardised``: feed per-image standardised inputs
    (:func:`course_lib.pretext.standardise`; for backbones pretrained on normalised tiles).
    The backbone is put in eval mode and restored afterwards.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"layer_features expects images (N, 3, H, W), got {tuple(images.shape)}")
    bad = [layer for layer in layers if layer not in LAYERS]
    if bad or not layers:
        raise ValueError(f"layers must be a non-empty subset of {LAYERS}, got {tuple(layers)!r}")
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        x = to_float(x)
        x = standardise(x) if standardised else x
        maps = dict(zip(LAYERS, backbone.features(x)))    # h1 (b, 32, H/2, W/2) ... h3 (b, 128, H/8, W/8)
        for layer in layers:
            h = maps[layer]
            s = pooled_grid(h.shape[1], h.shape[2], max_dim)
            h = h if s == h.shape[2] else F.adaptive_avg_pool2d(h, s)   # (b, C, s, s)
            out[layer].append(h.flatten(1).cpu())
    backbone.train(was_training)
    return {layer: torch.cat(v) for layer, v in out.items()}


@dataclass
class ProbeScore:
    """One probe fit: test accuracy per attribute, the mean, and what was chosen."""

    per_attribute: dict[str, float]     # test accuracy with the validation-chosen C
    C: dict[str, float]                 # the C chosen per attribute
    val_per_attribute: dict[str, float]  # validation accuracy at that C
    scaler_mean: np.ndarray = field(repr=False, default=None)  # the scaler's statistics (train only)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.per_attribute.values())))

    @property
    def val_mean(self) -> float:
        return float(np.mean(list(self.val_per_attribute.values())))


def _array(x, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(torch.as_tensor(x).detach().cpu())
    if a.ndim == 1 and ndim == 2 and name.endswith("labels"):
        a = a[:, None]
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d ({'(N, D)' if ndim == 2 else '(N,)'}), got shape {a.shape}")
    return a


def _fit_heads(x: torch.Tensor, ys: list[torch.Tensor], classes: list[int], C: float, *,
               max_iter: int, tol: float, init: torch.Tensor | None = None) -> torch.Tensor:
    """Multinomial logistic regressions, one per label column, fitted jointly.

    Minimises, for every head a, ``mean_i CE(x_i W_a + b_a, y_ia) + ||W_a||^2 / (2 C N)``:
    scikit-learn's ``LogisticRegression(C=C)`` objective divided by N. The heads share no
    parameter, so the joint minimum is each head's own minimum; one L-BFGS run replaces
    len(ys) scikit-learn fits. Returns the stacked (D + 1, sum(classes)) weights (bias last)."""
    n, d = x.shape
    # Diagonal preconditioning, an exact change of variables w = scale * u: each column is
    # divided by the square root of its curvature (variance / 4 for the logistic loss, plus
    # the penalty's 1 / (C N)), the penalty multiplied back. Same minimum, far fewer
    # L-BFGS iterations on the (decorrelated) columns fit_probe passes in.
    scale = 1 / torch.sqrt(x.pow(2).mean(0) / 4 + 1 / (C * n))           # (D,)
    scale = torch.cat([scale, torch.ones(1, dtype=x.dtype)])[:, None]    # the bias keeps its scale
    xb = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1) * scale.T    # (N, D + 1)
    w = torch.zeros(d + 1, sum(classes), dtype=x.dtype) if init is None else init.clone() / scale
    w.requires_grad_(True)
    # a 2-class head has two logit columns where scikit-learn has one (w = w1 - w2; at the
    # optimum w1 = -w2), so its penalty counts twice to give scikit-learn's ||w||^2
    penalty = torch.cat([torch.full((1, k), 2.0 if k == 2 else 1.0, dtype=x.dtype) for k in classes], 1)
    penalty = penalty.repeat(d + 1, 1) * scale.pow(2)
    penalty[-1] = 0                                                   # the bias is not penalised
    opt = torch.optim.LBFGS([w], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=0,
                            history_size=20, line_search_fn="strong_wolfe")

    def loss_fn():
        opt.zero_grad()
        logits = torch.split(xb @ w, classes, dim=1)                  # per head (N, K_a)
        loss = sum(F.cross_entropy(z, y) for z, y in zip(logits, ys))
        loss = loss + (penalty * w.pow(2)).sum() / (2 * C * n)
        loss.backward()
        return loss

    opt.step(loss_fn)
    loss_fn()
    if w.grad.abs().max().item() > tol:
        warnings.warn(f"probe: L-BFGS stopped after max_iter={max_iter} with gradient "
                      f"{w.grad.abs().max().item():.2e} > {tol:.0e} (C={C}); raise ProbeConfig.max_iter",
                      ConvergenceWarning, stacklevel=3)
    return w.detach() * scale


def fit_probe(train: tuple, val: tuple, test: tuple, *, names: Sequence[str] | None = None,
              config: ProbeConfig = ProbeConfig()) -> ProbeScore:
    """Logistic regression per label column with the course's protocol.

    ``train``, ``val``, ``test``: ``(features (N, D), labels (N,) or (N, A) int)``. The
    scaler is fitted on ``train`` features only; for each C of ``config.Cs`` the per-attribute
    regressions are fitted on train (:func:`_fit_heads`), each attribute keeps the C with its
    best validation accuracy (ties: the smaller C, the stronger regularisation) and is scored
    on test with it. Class ids are taken from train; a class that train lacks is never
    predicted, an attribute with one class in train is predicted as that class.
    """
    from sklearn.preprocessing import StandardScaler

    (xtr, ytr), (xva, yva), (xte, yte) = [
        (_array(f, f"{s} features", 2).astype(np.float64), _array(y, f"{s} labels", 2).astype(np.int64))
        for s, (f, y) in zip(("train", "val", "test"), (train, val, test))]
    if not xtr.shape[1] == xva.shape[1] == xte.shape[1]:
        raise ValueError(f"features must share D: train {xtr.shape}, val {xva.shape}, test {xte.shape}")
    for s, x, y in (("train", xtr, ytr), ("val", xva, yva), ("test", xte, yte)):
        if x.shape[0] != y.shape[0] or x.shape[0] < 2:
            raise ValueError(f"{s}: {x.shape[0]} feature rows for {y.shape[0]} label rows (need >= 2, equal)")
        if y.shape[1] != ytr.shape[1]:
            raise ValueError(f"{s} labels have {y.shape[1]} columns, train has {ytr.shape[1]}")
        if not np.isfinite(x).all():
            raise ValueError(f"{s} features contain NaN or inf")
    names = list(names) if names is not None else [f"attr{i}" for i in range(ytr.shape[1])]
    if len(names) != ytr.shape[1]:
        raise ValueError(f"{len(names)} names for {ytr.shape[1]} label columns")
    scaler = StandardScaler().fit(xtr)                    # train statistics only
    xtr, xva, xte = (scaler.transform(x) for x in (xtr, xva, xte))
    # Rotate onto the right singular vectors of the training features, X V (V from the SVD of
    # X): an orthogonal change of variables, so the L2-penalised fit and its predictions are
    # unchanged, and the columns become uncorrelated (the preconditioning in _fit_heads then
    # works). With more features than training faces the optimum lies in X's row space (its
    # gradient is X^T r + w / (C N)), so V keeps only N directions, exactly.
    _, _, vt = np.linalg.svd(xtr, full_matrices=False)              # (min(N, D), D)
    xtr, xva, xte = xtr @ vt.T, xva @ vt.T, xte @ vt.T
    xtr, xva, xte = (torch.from_numpy(x) for x in (xtr, xva, xte))  # float64: float32 stalls L-BFGS
    # classes per attribute, from train only: column a's ids are mapped to 0..K_a - 1
    ids = [np.unique(ytr[:, a]) for a in range(ytr.shape[1])]
    ys = [torch.from_numpy(np.searchsorted(c, ytr[:, a])) for a, c in enumerate(ids)]
    classes = [len(c) for c in ids]
    best = {}                                             # name -> (val acc, C, test acc)
    w = None
    for C in sorted(config.Cs):                           # warm start from the previous C
        w = _fit_heads(xtr, ys, classes, C, max_iter=config.max_iter, tol=config.tol, init=w)
        pred = {s: [c[z.argmax(1).numpy()] for c, z in
                    zip(ids, torch.split(torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1) @ w,
                                         classes, dim=1))] for s, x in (("val", xva), ("test", xte))}
        for a, name in enumerate(names):
            v = float(np.mean(pred["val"][a] == yva[:, a]))
            if name not in best or v > best[name][0]:
                best[name] = (v, C, float(np.mean(pred["test"][a] == yte[:, a])))
    return ProbeScore(per_attribute={n: b[2] for n, b in best.items()},
                      C={n: b[1] for n, b in best.items()},
                      val_per_attribute={n: b[0] for n, b in best.items()},
                      scaler_mean=scaler.mean_.copy())


def probe_backbone(backbone, splits: Mapping[str, tuple], *, names: Sequence[str] | None = None,
                   config: ProbeConfig = ProbeConfig(), standardised: bool = False) -> dict[str, ProbeScore]:
    """Probe every layer of ``backbone``: ``splits`` maps ``"train"``, ``"val"``, ``"test"``
    to ``(images (N, 3, H, W) uint8 or float, labels (N, A))``. Returns ``{layer: ProbeScore}``."""
    missing = {"train", "val", "test"} - set(splits)
    if missing:
        raise ValueError(f"splits needs 'train', 'val' and 'test', missing {sorted(missing)}")
    feats = {s: layer_features(backbone, splits[s][0], layers=config.layers, max_dim=config.max_dim,
                               standardised=standardised) for s in ("train", "val", "test")}
    return {layer: fit_probe(*[(feats[s][layer], splits[s][1]) for s in ("train", "val", "test")],
                             names=names, config=config) for layer in config.layers}


def budget_subsets(n_train: int, budgets: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """``{n: sorted row indices}`` of a random n-face subset of a probe training split of
    ``n_train`` faces, for every label budget n (``n == n_train``: all of them). The subsets
    depend on ``seed`` only (not on the backbone), and are nested: the first n faces of one
    seeded permutation."""
    budgets = [int(b) for b in budgets]
    if not budgets or any(not 2 <= b <= n_train for b in budgets):
        raise ValueError(f"label budgets must be integers in [2, {n_train}] (the probe's training faces), "
                         f"got {budgets!r}")
    order = np.random.default_rng([int(seed), 31]).permutation(n_train)   # 31: this protocol's stream
    return {b: np.sort(order[:b]) for b in budgets}


def probe_budgets(backbone, splits: Mapping[str, tuple], budgets: Sequence[int], seed: int, *,
                  names: Sequence[str] | None = None, config: ProbeConfig = ProbeConfig(),
                  standardised: bool = False, features: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                  ) -> dict[int, dict[str, ProbeScore]]:
    """Probe every layer of ``backbone`` with each label budget: ``{n: {layer: ProbeScore}}``.

    ``splits`` as in :func:`probe_backbone`; the training split is cut to the n faces of
    :func:`budget_subsets` (``seed``: the same faces for every backbone at this seed), the
    validation and test splits are used whole. ``features``: the frozen features
    ``{split: {layer: (N, D)}}`` when already computed (then ``backbone`` is not used);
    otherwise they are computed once here and shared by all budgets. An attribute with a
    single class in a small subset is predicted as that class (:func:`fit_probe`)."""
    missing = {"train", "val", "test"} - set(splits)
    if missing:
        raise ValueError(f"splits needs 'train', 'val' and 'test', missing {sorted(missing)}")
    if features is None:
        features = {s: layer_features(backbone, splits[s][0], layers=config.layers, max_dim=config.max_dim,
                                      standardised=standardised) for s in ("train", "val", "test")}
    labels = {s: torch.as_tensor(splits[s][1]) for s in ("train", "val", "test")}
    subsets = budget_subsets(len(labels["train"]), budgets, seed)
    out = {}
    for n, rows in subsets.items():
        idx = torch.from_numpy(rows)
        out[n] = {layer: fit_probe((features["train"][layer][idx], labels["train"][idx]),
                                   (features["val"][layer], labels["val"]),
                                   (features["test"][layer], labels["test"]), names=names, config=config)
                  for layer in config.layers}
    return out


def best_layer(scores: Mapping[str, ProbeScore]) -> str:
    """The layer with the best *validation* mean (so the test split chooses nothing)."""
    if not scores:
        raise ValueError("best_layer needs at least one layer's ProbeScore")
    return max(scores, key=lambda layer: scores[layer].val_mean)


def normalised(acc, random: float, ceiling: float):
    """``(acc - random) / (ceiling - random)``: 0 = the random-init backbone, 1 = the
    supervised ceiling (may leave [0, 1]). ``acc`` a float or an array of them."""
    if not ceiling > random:
        raise ValueError(f"the ceiling ({ceiling}) must be above the random-init score ({random})")
    return (np.asarray(acc, dtype=np.float64) - random) / (ceiling - random)
