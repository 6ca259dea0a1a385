r"""Two-sample tests: decide from samples alone whether P = Q.

Given :math:`x_1..x_n \sim P` and :math:`y_1..y_m \sim Q`, a test computes a statistic T and a
p-value under :math:`H_0: P = Q`. Under :math:`H_0` the pooled sample is exchangeable, so the
permutation p-value

.. math::  p = \frac{1 + \#\{\pi : T(\pi) \ge T\}}{1 + \text{permutations}}

(random relabelings :math:`\pi` of the pooled sample into sizes n and m) is valid at every sample
size. The hand-made statistics are :func:`mean_difference_test` and :func:`variance_test`; the
learned one is :func:`c2st`, the classifier two-sample test (Lopez-Paz and Oquab, 2017): train a
classifier to tell the samples apart, and test whether its held-out accuracy beats 1/2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from .._validate import positive_int

__all__ = ["Result", "TestResult", "C2STResult", "mean_difference_test", "variance_test", "c2st",
           "permutation_labels", "permutation_statistics", "as_samples", "logit_mlp"]


class Result:
    """Base of the metrics' result records: ``as_dict`` for JSON."""

    def as_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class TestResult(Result):
    """``statistic`` of the observed split and its permutation ``p_value``."""

    __test__ = False  # not a pytest class

    statistic: float
    p_value: float
    permutations: int


@dataclass
class C2STResult(Result):
    """Held-out ``accuracy`` of the classifier on ``n_test`` samples; ``p_value`` from the normal
    approximation accuracy ~ N(1/2, 1/(4 n_test)) under H0, ``p_value_permutation`` from relabelling
    the test set (the classifier's predictions held fixed)."""

    accuracy: float
    p_value: float
    p_value_permutation: float
    n_test: int
    permutations: int
    train_loss: list[float] = field(default_factory=list)


def as_samples(x: Any, name: str) -> Tensor:
    """``x`` as an (n, d) floating tensor ((n,) becomes (n, 1)); errors name the argument."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be a tensor or array of samples, got {type(x).__name__}") from e
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise ValueError(f"{name} must be (n,) or (n, d) samples, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


def _pair(x: Any, y: Any, min_size: int = 1) -> tuple[Tensor, Tensor]:
    x, y = as_samples(x, "x"), as_samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of features, got {x.shape[1]} and {y.shape[1]}")
    if x.device != y.device:
        raise ValueError(f"x and y must be on one device, got {x.device} and {y.device}")
    for name, t in (("x", x), ("y", y)):
        if t.shape[0] < min_size:
            raise ValueError(f"{name} needs at least {min_size} samples, got {t.shape[0]}")
    return x, y


def _check_permutations(permutations: int) -> int:
    if not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations must be a non-negative int, got {permutations!r}")
    return permutations


def permutation_labels(n: int, m: int, count: int, generator: torch.Generator, *,
                       identity: bool = False, dtype: torch.dtype = torch.float32,
                       device: torch.device | str = "cpu") -> Tensor:
    """(n + m, count) 0/1 labels, each column a uniformly random split of the pooled sample into n
    "x" (1) and m "y" (0); with ``identity`` column 0 is the observed split (the first n)."""
    keys = torch.rand(count, n + m, generator=generator, dtype=torch.float64)
    order = keys.argsort(dim=1)
    labels = torch.zeros(count, n + m, dtype=dtype)
    labels.scatter_(1, order[:, :n], 1.0)
    if identity and count:
        labels[0] = 0
        labels[0, :n] = 1
    return labels.T.contiguous().to(device)


def p_value(observed: Tensor, permuted: Tensor) -> Tensor:
    """(1 + #{permuted >= observed}) / (1 + count), along the last dimension of ``permuted``."""
    count = permuted.shape[-1]
    # Ties count against the test: the p-value stays valid when statistics repeat.
    exceed = (permuted >= observed[..., None] - 1e-12 * observed.abs()[..., None]).sum(-1)
    return (1.0 + exceed.double()) / (1.0 + count)


def permutation_statistics(n: int, m: int, permutations: int, seed: int,
                           statistic: Callable[[Tensor], Tensor], *, chunk: int, dtype: torch.dtype,
                           device: torch.device) -> Tensor:
    """``statistic`` of the observed split and of ``permutations`` random ones, on the CPU, along
    the last dimension (column 0 the observed split). ``statistic`` maps (n + m, count) 0/1 labels
    (:func:`permutation_labels`, seeded by ``seed``) to (..., count) values; the labels come in
    chunks of at most ``chunk`` columns to bound their memory."""
    gen = torch.Generator().manual_seed(seed)
    stats = []
    done = 0
    while done < permutations + 1:
        count = min(chunk, permutations + 1 - done)
        labels = permutation_labels(n, m, count, gen, identity=done == 0, dtype=dtype, device=device)
        stats.append(statistic(labels))
        done += count
    return torch.cat(stats, dim=-1).cpu()


def _moment_test(x: Tensor, y: Tensor, permutations: int, seed: int, power: int) -> TestResult:
    """Squared distance between the groups' means (power 1) or unbiased variances (power 2) over
    the observed split and each permutation, from label products (one matrix product per chunk)."""
    permutations = _check_permutations(permutations)
    z = torch.cat([x, y]).double()
    z = z - z.mean(0)  # centring leaves both statistics unchanged and the sums better conditioned
    n, m = x.shape[0], y.shape[0]

    def statistic(L: Tensor) -> Tensor:
        mx, my = L.T @ z / n, (1 - L).T @ z / m
        if power == 1:
            diff = mx - my
        else:
            qx, qy = L.T @ (z * z), (1 - L).T @ (z * z)
            diff = (qx - n * mx * mx) / (n - 1) - (qy - m * my * my) / (m - 1)
        return (diff * diff).sum(1)

    t = permutation_statistics(n, m, permutations, seed, statistic, chunk=1024, dtype=torch.float64,
                               device=z.device)
    return TestResult(float(t[0]), float(p_value(t[0], t[1:])), permutations)


def mean_difference_test(x: Any, y: Any, *, permutations: int = 1000, seed: int = 0) -> TestResult:
    r"""The difference-of-means test: :math:`T = \|\bar x - \bar y\|^2` with a permutation p-value.
    Powerful against a shift of the mean; blind to P and Q that share their mean."""
    x, y = _pair(x, y)
    return _moment_test(x, y, permutations, seed, 1)


def variance_test(x: Any, y: Any, *, permutations: int = 1000, seed: int = 0) -> TestResult:
    r"""The difference-of-variances test: :math:`T = \sum_k (s^2_{x,k} - s^2_{y,k})^2` over the
    features k (unbiased sample variances) with a permutation p-value. Catches equal means with
    different spreads; blind to P and Q that share mean and variance."""
    x, y = _pair(x, y, min_size=2)
    return _moment_test(x, y, permutations, seed, 2)


def logit_mlp(d: int, width: int = 64, activation: type[nn.Module] = nn.LeakyReLU) -> nn.Module:
    """A 2-hidden-layer MLP giving one logit per row: the default C2ST classifier (LeakyReLU) and
    f-divergence critic (ELU: smooth, so the learned log-ratio is smooth)."""
    act = (lambda: nn.LeakyReLU(0.2)) if activation is nn.LeakyReLU else activation
    return nn.Sequential(nn.Linear(d, width), act(), nn.Linear(width, width), act(), nn.Linear(width, 1))


def c2st(x: Any, y: Any, *, classifier: Optional[Any] = None, test_fraction: float = 0.5,
         steps: int = 500, batch_size: int = 256, lr: float = 1e-3, permutations: int = 1000,
         seed: int = 0) -> C2STResult:
    r"""The classifier two-sample test (Lopez-Paz and Oquab, 2017).

    The pooled samples (label 1 for x, 0 for y) are shuffled and split: a ``1 - test_fraction``
    share trains a classifier, the rest measures its accuracy :math:`\hat a`. Under
    :math:`H_0: P = Q` no classifier beats chance on held-out data, and
    :math:`\hat a \approx N(1/2, 1/(4 n_{test}))`, so ``p_value`` is
    :math:`1 - \Phi((\hat a - 1/2) \sqrt{4 n_{test}})`; ``p_value_permutation`` relabels the test set
    ``permutations`` times with the predictions fixed (exact under H0 at any size).

    ``classifier``: None for :func:`logit_mlp` (LeakyReLU, width 64); an ``nn.Module`` giving one logit per row,
    trained here for ``steps`` Adam steps on minibatches with pygan's own ``"gan"`` discriminator
    loss (binary cross-entropy); or any object with ``fit(X, labels)`` and ``predict(X)`` on NumPy
    arrays (scikit-learn style). Inputs are standardized with the training split's statistics.
    """
    from ..losses import discriminator_loss

    x, y = _pair(x, y, min_size=2)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    positive_int("steps", steps)
    positive_int("batch_size", batch_size)
    permutations = _check_permutations(permutations)
    gen = torch.Generator().manual_seed(seed)
    z = torch.cat([x, y]).float().cpu()
    labels = torch.cat([torch.ones(x.shape[0]), torch.zeros(y.shape[0])])
    order = torch.randperm(z.shape[0], generator=gen)
    z, labels = z[order], labels[order]
    n_test = max(1, int(round(test_fraction * z.shape[0])))
    if n_test >= z.shape[0]:
        raise ValueError(f"test_fraction {test_fraction} leaves no training samples")
    z_train, z_test = z[n_test:], z[:n_test]
    l_train, l_test = labels[n_test:], labels[:n_test]
    mu, sd = z_train.mean(0), z_train.std(0).clamp_min(1e-12)
    z_train, z_test = (z_train - mu) / sd, (z_test - mu) / sd

    losses: list[float] = []
    if classifier is not None and hasattr(classifier, "fit") and hasattr(classifier, "predict"):
        classifier.fit(z_train.numpy(), l_train.numpy().astype(int))
        pred = torch.as_tensor(classifier.predict(z_test.numpy())).float().flatten()
    else:
        if classifier is None:
            with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG untouched
                torch.manual_seed(seed)
                model = logit_mlp(z.shape[1])
        elif isinstance(classifier, nn.Module):
            model = classifier
        else:
            raise TypeError("classifier must be None, an nn.Module giving one logit per row, or an "
                            f"object with fit(X, labels) and predict(X); got {type(classifier).__name__}")
        device = next(model.parameters()).device
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        zt, lt = z_train.to(device), l_train.to(device)
        model.train()
        for step in range(steps):
            idx = torch.randint(0, zt.shape[0], (min(batch_size, zt.shape[0]),), generator=gen).to(device)
            logits = model(zt[idx]).flatten()
            is_x = lt[idx] > 0.5
            # The classifier is the discriminator of the "gan" loss: x plays the data, y the fakes.
            loss = discriminator_loss(logits[is_x], logits[~is_x], "gan")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % max(1, steps // 20) == 0 or step == steps - 1:
                losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            pred = (model(z_test.to(device)).flatten() > 0).float().cpu()
    accuracy = float((pred == l_test).float().mean())
    p_normal = 0.5 * math.erfc((accuracy - 0.5) * math.sqrt(4 * n_test) / math.sqrt(2))
    if permutations:
        keys = torch.rand(permutations, n_test, generator=gen)
        shuffled = l_test[keys.argsort(dim=1)]
        perm_acc = (shuffled == pred).float().mean(1).double()
        p_perm = float(p_value(torch.tensor(accuracy, dtype=torch.float64), perm_acc))
    else:
        p_perm = float("nan")
    return C2STResult(accuracy, p_normal, p_perm, n_test, permutations, losses)
