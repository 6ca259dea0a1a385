r"""Estimating an f-divergence from samples by training a critic on its variational bound.

f-GAN's bound :math:`D_f(P\|Q) \ge \sup_T E_P[T] - E_Q[f^*(T)]`, with :math:`T = g_f(v)` the output
activation of a critic's logit v, is tight at :math:`T^* = f'(p/q)`. :func:`fdiv_estimate` trains
a critic to maximize it on one part of the samples (it is the negative of pygan's fused
``discriminator_loss`` for that divergence) and evaluates it on the held-out rest, where it is an
unbiased estimate of a lower bound of :math:`D_f` (the critic cannot overfit the held-out samples).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from ..divergences import divergence as _divergence
from .two_sample import Result, _pair, logit_mlp
from .._validate import positive_int

__all__ = ["FDivEstimate", "fdiv_estimate"]


@dataclass
class FDivEstimate(Result):
    """``estimate``: the bound on the held-out samples, with its standard error ``stderr`` and 95%
    confidence interval ``ci``; ``train_bound``: on the training part at the end (its gap to
    ``estimate`` shows overfitting); ``reliable``: False when the held-out bound is not finite or one
    sample decides it (see the module docs); ``history``: the training bound along the run."""

    divergence: str
    estimate: float
    train_bound: float
    steps: int
    stderr: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    reliable: bool = True
    history: list[float] = field(default_factory=list)


def fdiv_estimate(x: Any, y: Any, divergence: str, *, critic: Optional[nn.Module] = None,
                  steps: int = 2000, batch_size: int = 4096, lr: float = 2e-3,
                  test_fraction: float = 0.5, alpha: Optional[float] = None, seed: int = 0,
                  backend: Optional[str] = None) -> FDivEstimate:
    r"""Estimate :math:`D_f(P\|Q)` from ``x ~ P`` and ``y ~ Q`` for a divergence of
    :mod:`pygan.divergences` (``alpha`` for ``"alpha"``).

    A critic (``critic``, or a width-64 ELU :func:`~pygan.metrics.two_sample.logit_mlp`) is trained for ``steps`` Adam steps on
    minibatches of the training share to minimize ``discriminator_loss(v(x), v(y), divergence)``,
    i.e. maximize :math:`E_P[g_f(v)] - E_Q[f^*(g_f(v))]`; the estimate is that bound on the
    held-out ``test_fraction`` of each sample (with the learning rate decayed along a cosine).
    """
    from ..losses import discriminator_loss

    _divergence(divergence, alpha=alpha)  # a clear error for an unknown name or missing alpha
    x, y = _pair(x, y, min_size=2)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    positive_int("steps", steps)
    params = {} if alpha is None else {"alpha": alpha}
    gen = torch.Generator().manual_seed(seed)

    def split(t):
        t = t.float()[torch.randperm(t.shape[0], generator=gen).to(t.device)]
        k = max(1, int(round(test_fraction * t.shape[0])))
        return t[k:], t[:k]

    (x_train, x_test), (y_train, y_test) = split(x), split(y)
    if critic is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            critic = logit_mlp(x.shape[1], activation=nn.ELU).to(x.device)
    # Standardize with the training statistics of the pooled sample: one scale for both sides.
    pooled = torch.cat([x_train, y_train])
    mu, sd = pooled.mean(0), pooled.std(0).clamp_min(1e-12)
    norm = lambda t: (t - mu) / sd  # noqa: E731
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    for step in range(steps):
        ix = torch.randint(0, x_train.shape[0], (min(batch_size, x_train.shape[0]),), generator=gen)
        iy = torch.randint(0, y_train.shape[0], (min(batch_size, y_train.shape[0]),), generator=gen)
        vr = critic(norm(x_train[ix.to(x.device)]))
        vf = critic(norm(y_train[iy.to(y.device)]))
        loss = discriminator_loss(vr, vf, divergence, backend=backend, **params)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, steps // 50) == 0 or step == steps - 1:
            history.append(-float(loss.detach()))

    with torch.no_grad():
        def terms(a, b):
            # The bound's two sides, per sample: E_P[g_f(v)] and E_Q[f*(g_f(v))] are their means.
            t = discriminator_loss(critic(norm(a)), critic(norm(b)), divergence, reduction="none",
                                   backend=backend, **params)
            return -t.real.double().flatten(), t.fake.double().flatten()

        gain, cost = terms(x_test, y_test)
        estimate = float(gain.mean() - cost.mean())
        stderr = math.sqrt(float(gain.var() / gain.numel() + cost.var() / cost.numel())) \
            if gain.numel() > 1 and cost.numel() > 1 else math.inf
        train_gain, train_cost = terms(x_train, y_train)
        train_bound = float(train_gain.mean() - train_cost.mean())
    why = _unreliable(gain, cost, estimate, stderr)
    if why:
        warnings.warn(
            f"fdiv_estimate({divergence!r}): the held-out bound {estimate:.4g} (standard error {stderr:.3g}) {why}: "
            f"the critic overfit the {x_train.shape[0]} + {y_train.shape[0]} training samples (its training bound "
            f"is {train_bound:.4g}). Use more samples, fewer steps or a smaller critic; the estimate is not a "
            "usable value of the divergence", RuntimeWarning, stacklevel=2)
    return FDivEstimate(divergence, estimate, train_bound, steps, stderr,
                        (estimate - 1.959964 * stderr, estimate + 1.959964 * stderr), not why, history)


def _unreliable(gain: torch.Tensor, cost: torch.Tensor, estimate: float, stderr: float) -> str:
    """Why the held-out bound cannot be used ("" when it can): not finite, or decided by one sample --
    dropping the most extreme term of each side moves it by more than three standard errors of the
    rest (a heavy tail, where the standard error itself is not to be trusted). A bound a little below
    0 is no failure: at P = Q every critic but the constant one scores below 0 in expectation."""
    if not (math.isfinite(estimate) and math.isfinite(stderr)):
        return "is not finite"
    if gain.numel() > 2 and cost.numel() > 2:
        rest = [torch.cat([t[:i], t[i + 1:]]) for t in (gain, cost) for i in [int((t - t.mean()).abs().argmax())]]
        moved = abs(estimate - float(rest[0].mean() - rest[1].mean()))
        se_rest = math.sqrt(float(rest[0].var() / rest[0].numel() + rest[1].var() / rest[1].numel()))
        if moved > 3 * se_rest:
            return f"is decided by a single sample (without it the bound moves by {moved:.3g})"
    return ""
