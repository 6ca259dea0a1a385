r"""Measures of what a generator learned.

:func:`mode_coverage` scores samples against a mixture with known modes (the ring and grid of
:mod:`pygan.data`) by the mode-collapse protocol of VEEGAN (Srivastava et al. 2017, Table 1) and
PacGAN (Lin et al. 2018, Table 1): draw :data:`PROTOCOL_SAMPLES` samples; a sample is *high quality*
when its distance to the nearest mode is less than ``within`` (3) standard deviations of that mode;
a mode is *captured* when at least ``min_count`` (1) high-quality samples are nearest to it; the
*reverse KL* is KL(histogram of the high-quality samples over the modes || uniform).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .two_sample import Result

__all__ = ["PROTOCOL_SAMPLES", "ModeCoverage", "mode_coverage"]

PROTOCOL_SAMPLES = 2500  # samples drawn from the generator in VEEGAN's and PacGAN's tables


@dataclass
class ModeCoverage(Result):
    """``modes``: modes covered of ``n_modes``; ``high_quality``: share of samples within the
    radius of a mode; ``kl_uniform``: :math:`\\sum_k p_k \\log(K p_k)`, the KL divergence of the
    high-quality samples' mode histogram p from uniform (0 when every mode gets an equal share;
    ``inf`` when no sample is high quality), the protocol's reverse KL; ``counts``: high-quality
    samples per mode; ``samples``: how many samples were scored."""

    modes: int
    n_modes: int
    high_quality: float
    kl_uniform: float
    counts: list[int]
    samples: int


@torch.no_grad()
def mode_coverage(samples: Tensor, centers: Tensor, std: float, *, within: float = 3.0,
                  min_count: int = 1) -> ModeCoverage:
    """Scores ``samples`` (n, d) against modes at ``centers`` (K, d) of standard deviation ``std``."""
    if not isinstance(samples, Tensor) or samples.dim() != 2:
        raise ValueError(f"samples must be a (n, d) tensor, got {getattr(samples, 'shape', type(samples).__name__)}")
    centers = torch.as_tensor(centers)
    if centers.dim() != 2 or centers.shape[1] != samples.shape[1]:
        raise ValueError(f"centers must be (modes, {samples.shape[1]}), got {tuple(centers.shape)}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    x = samples.detach().to(torch.float64)
    c = centers.to(x.device, torch.float64)
    dist = torch.cdist(x, c)
    nearest_dist, nearest = dist.min(1)
    good = nearest_dist < within * std  # strictly, as the protocol; NaN samples are never high quality
    counts = torch.bincount(nearest[good], minlength=c.shape[0]).cpu()
    total = int(counts.sum())
    if total:
        p = counts.double() / total
        kl = float(torch.where(p > 0, p * torch.log(p * c.shape[0]), torch.zeros_like(p)).sum())
    else:
        kl = float("inf")
    return ModeCoverage(int((counts >= min_count).sum()), int(c.shape[0]), total / max(x.shape[0], 1),
                        kl, counts.tolist(), int(x.shape[0]))
