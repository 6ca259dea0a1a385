r"""Measures of what a generator learned, and the two-sample tests behind them.

- :mod:`.two_sample`: :func:`mean_difference_test`, :func:`variance_test` (hand-made statistics with
  permutation p-values) and :func:`c2st` (the classifier two-sample test).
- :mod:`.kernel`: :func:`mmd2` (gaussian, laplace, inverse multiquadric, polynomial kernels; several
  bandwidths per pass; permutation p-values) and :func:`kid`, on fused tiled kernels with memory
  O(n + m).
- :mod:`.coverage`: :func:`mode_coverage` on mixtures with known modes.
- :mod:`.stacked_mnist`: :func:`stacked_mnist_modes`, Stacked MNIST's 1,000 modes counted by a digit
  classifier trained here (:func:`mnist_classifier`).
- :mod:`.closed_form`: exact KL between Gaussians, W1 in 1-D, discrete JSD, and any table
  f-divergence between 1-D densities by quadrature.
- :mod:`.fdiv`: :func:`fdiv_estimate`, an f-divergence from samples through a critic trained on the
  f-GAN bound.
- :mod:`.conditional`: :func:`class_accuracy` of a class-conditional generator's samples by a
  classifier of the real data, and :func:`knn_coverage` (Naeem et al. 2020), per class.
- :mod:`.inference`: :func:`latent_recovery` and :func:`reconstruction_error` of an encoder (BiGAN),
  and the :func:`linear_probe` / :func:`nearest_neighbor` accuracy of learned features.
"""

from .closed_form import f_divergence_1d, gaussian_pdf, jsd_discrete, kl_gaussians, w1_1d
from .conditional import ClassAccuracy, RealClassifier, class_accuracy, knn_coverage
from .coverage import PROTOCOL_SAMPLES, ModeCoverage, mode_coverage
from .fdiv import FDivEstimate, fdiv_estimate
from .inference import (LatentRecovery, ProbeResult, Reconstruction, feature_probes, latent_recovery, linear_probe,
                        nearest_neighbor, reconstruction_error)
from .kernel import KERNELS, KIDResult, MMDResult, kid, median_bandwidth, mmd2
from .stacked_mnist import STACKED_SAMPLES, DigitClassifier, StackedModes, mnist_classifier, stacked_mnist_modes
from .two_sample import C2STResult, TestResult, c2st, mean_difference_test, variance_test

__all__ = [
    "PROTOCOL_SAMPLES", "STACKED_SAMPLES", "C2STResult", "DigitClassifier", "StackedModes", "ClassAccuracy", "FDivEstimate", "KERNELS", "KIDResult", "LatentRecovery", "MMDResult", "ModeCoverage",
    "ProbeResult", "RealClassifier", "Reconstruction", "TestResult", "c2st", "class_accuracy", "f_divergence_1d", "fdiv_estimate",
    "feature_probes", "gaussian_pdf", "jsd_discrete", "kid", "kl_gaussians", "knn_coverage", "latent_recovery",
    "linear_probe", "mean_difference_test", "median_bandwidth", "mnist_classifier", "stacked_mnist_modes", "mmd2", "mode_coverage",
    "nearest_neighbor", "reconstruction_error", "variance_test", "w1_1d",
]
