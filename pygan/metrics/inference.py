r"""Measures of latent inference and of learned features (for :class:`pygan.BiGAN`).

- :func:`latent_recovery`: how well an encoder inverts the generator on its own samples,
  :math:`\hat z = E(G(z))` against :math:`z`: the Pearson correlation per latent dimension and the
  relative squared error :math:`E\|\hat z - z\|^2 / E\|z - \bar z\|^2` (0 for exact inversion, about
  2 for an independent :math:`\hat z` with z's distribution).
- :func:`reconstruction_error`: :math:`x` against :math:`G(E(x))`: the mean squared error per
  feature and the same relative to the data's variance (1 - R^2).
- :func:`linear_probe` and :func:`nearest_neighbor`: held-out classification accuracy of features
  (BiGAN's :math:`E(x)`, a discriminator's penultimate layer, raw pixels), by multinomial logistic
  regression and by the 1-nearest-neighbour rule, both on features standardized with the training
  split's mean and standard deviation. Chance is the largest class's share of the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .two_sample import Result, as_samples

__all__ = ["LatentRecovery", "ProbeResult", "Reconstruction", "feature_probes", "latent_recovery",
           "linear_probe", "nearest_neighbor", "reconstruction_error"]


@dataclass
class LatentRecovery(Result):
    """``correlation``: mean over latent dimensions of corr(ẑ_k, z_k); ``min_correlation`` the
    worst dimension; ``relative_error``: E||ẑ - z||^2 / E||z - mean z||^2."""

    correlation: float
    min_correlation: float
    relative_error: float
    per_dimension: list[float]


@dataclass
class Reconstruction(Result):
    """``mse``: mean squared error per feature; ``relative``: mse over the data's variance per
    feature (0 perfect, 1 no better than the data's mean)."""

    mse: float
    relative: float


@dataclass
class ProbeResult(Result):
    """Held-out ``linear`` (logistic regression) and ``nearest_neighbor`` (1-NN) accuracies of one
    set of ``features`` dimensions, with ``chance`` (the largest class's test share)."""

    linear: float
    nearest_neighbor: float
    chance: float
    features: int


def _matched(a: Tensor, b: Tensor, names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    a = as_samples(a.reshape(a.shape[0], -1) if isinstance(a, Tensor) else a, names[0]).double()
    b = as_samples(b.reshape(b.shape[0], -1) if isinstance(b, Tensor) else b, names[1]).double()
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        raise ValueError(f"{names[0]} needs at least 2 samples, got {a.shape[0]}")
    return a, b.to(a.device)


@torch.no_grad()
def latent_recovery(z: Tensor, z_hat: Tensor) -> LatentRecovery:
    """Compares codes ``z`` (n, k) with their recoveries ``z_hat`` = E(G(z)) (n, k)."""
    z, z_hat = _matched(z, z_hat, ("z", "z_hat"))
    zc, hc = z - z.mean(0), z_hat - z_hat.mean(0)
    denom = zc.norm(dim=0) * hc.norm(dim=0)
    corr = torch.where(denom > 0, (zc * hc).sum(0) / denom.clamp_min(1e-300), torch.zeros_like(denom))
    rel = ((z_hat - z) ** 2).sum() / (zc ** 2).sum().clamp_min(1e-300)
    return LatentRecovery(float(corr.mean()), float(corr.min()), float(rel), corr.tolist())


@torch.no_grad()
def reconstruction_error(x: Tensor, x_hat: Tensor) -> Reconstruction:
    """Compares samples ``x`` with their reconstructions ``x_hat`` = G(E(x)) (any per-sample shape)."""
    x, x_hat = _matched(x, x_hat, ("x", "x_hat"))
    mse = ((x_hat - x) ** 2).mean()
    var = ((x - x.mean(0)) ** 2).mean()
    return Reconstruction(float(mse), float(mse / var.clamp_min(1e-300)))


def _split(train_x, train_y, test_x, test_y) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Checked, float64, standardized with the training split's statistics; labels 0..C-1."""
    xs = []
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        x = x.reshape(x.shape[0], -1) if isinstance(x, Tensor) else x
        xs.append(as_samples(x, name).double())
    tr, te = xs
    if tr.shape[1] != te.shape[1]:
        raise ValueError(f"train_x and test_x must have the same features, got {tr.shape[1]} and {te.shape[1]}")
    ys = []
    for name, y, x in (("train_y", train_y, tr), ("test_y", test_y, te)):
        y = torch.as_tensor(y)
        if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"{name} must be ({x.shape[0]},) integer class labels, got "
                             f"{y.dtype} of shape {tuple(y.shape)}")
        ys.append(y.to(tr.device))
    classes, y_all = torch.unique(torch.cat(ys), return_inverse=True)
    if classes.numel() < 2:
        raise ValueError("the labels name a single class: a probe needs at least 2")
    mean, std = _stats(tr)
    return (tr - mean) / std, y_all[:tr.shape[0]], (te - mean) / std, y_all[tr.shape[0]:]


def _stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """The standardization of features: their mean and standard deviation (1 for constant ones)."""
    mean, std = x.mean(0), x.std(0)
    return mean, torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))


def _chance(test_y: Tensor) -> float:
    return float(torch.bincount(test_y).max()) / test_y.shape[0]


def _linear(tr: Tensor, ytr: Tensor, te: Tensor, yte: Tensor, l2: float, max_iter: int) -> float:
    classify = _fit_linear(tr, ytr, int(max(ytr.max(), yte.max())) + 1, l2, max_iter)
    return float((classify(te) == yte).double().mean())


def _fit_linear(tr: Tensor, ytr: Tensor, k: int, l2: float, max_iter: int):
    """Multinomial logistic regression over ``k`` classes fitted on (tr, ytr); returns the
    classifier, rows -> predicted classes."""
    if not l2 >= 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    w = torch.zeros(tr.shape[1], k, dtype=torch.float64, device=tr.device, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, device=tr.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tr @ w + b, ytr) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda x: (x @ w + b).argmax(1)


@torch.no_grad()
def _nearest(tr: Tensor, ytr: Tensor, te: Tensor, yte: Tensor) -> float:
    hits = 0
    for start in range(0, te.shape[0], 1024):  # O(1024 n) memory
        nearest = torch.cdist(te[start:start + 1024], tr).argmin(1)
        hits += int((ytr[nearest] == yte[start:start + 1024]).sum())
    return hits / te.shape[0]


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                 l2: float = 1e-3, max_iter: int = 500) -> float:
    r"""Held-out accuracy of multinomial logistic regression on standardized features: minimizes
    :math:`\frac1n \sum_i -\log \mathrm{softmax}(W x_i + b)_{y_i} + \frac{l2}{2}\|W\|^2` by L-BFGS
    (float64, deterministic) on the training split, then classifies the test split."""
    return _linear(*_split(train_x, train_y, test_x, test_y), l2, max_iter)


def nearest_neighbor(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> float:
    """Held-out accuracy of the 1-nearest-neighbour rule (Euclidean, standardized features; ties
    go to the earliest training sample)."""
    return _nearest(*_split(train_x, train_y, test_x, test_y))


def feature_probes(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                   l2: float = 1e-3, max_iter: int = 500) -> ProbeResult:
    """Both probes of one set of features, on one standardization (``l2``, ``max_iter``: see
    :func:`linear_probe`)."""
    split = _split(train_x, train_y, test_x, test_y)
    return ProbeResult(_linear(*split, l2, max_iter), _nearest(*split), _chance(split[3]), split[0].shape[1])
