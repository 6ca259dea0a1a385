r"""Measures of what a generator learned, and the two-sample tests behind them.

- :mod:`.two_sample`: :func:`mean_difference_test`, :func:`variance_test` (hand-made statistics with
  permutation p-values) and :func:`c2st` (the classifier two-sample test).
- :mod:`.kernel`: :func:`mmd2` (gaussian, laplace, inverse multiquadric, polynomial kernels; several
  bandwidths per pass; permutation p-values) and :func:`kid`, on fused tiled kernels with memory
  O(n + m).
- :mod:`.coverage`: :func:`mode_coverage` on mixtures with known modes.
- :mod:`.closed_form`: exact KL between Gaussians, W1 in 1-D, discrete JSD, and any table
  f-divergence between 1-D densities by quadrature.
- :mod:`.fdiv`: :func:`fdiv_estimate`, an f-divergence from samples through a critic trained on the
  f-GAN bound.
"""

from .closed_form import f_divergence_1d, gaussian_pdf, jsd_discrete, kl_gaussians, w1_1d
from .coverage import ModeCoverage, mode_coverage
from .fdiv import FDivEstimate, fdiv_estimate
from .kernel import KERNELS, KIDResult, MMDResult, kid, median_bandwidth, mmd2
from .two_sample import C2STResult, TestResult, c2st, mean_difference_test, variance_test

__all__ = [
    "C2STResult", "FDivEstimate", "KERNELS", "KIDResult", "MMDResult", "ModeCoverage", "TestResult",
    "c2st", "f_divergence_1d", "fdiv_estimate", "gaussian_pdf", "jsd_discrete", "kid",
    "kl_gaussians", "median_bandwidth", "mmd2", "mean_difference_test", "mode_coverage",
    "variance_test", "w1_1d",
]
