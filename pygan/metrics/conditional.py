r"""Measures of a class-conditional generator: does a sample asked for class c look like class c,
and does each class's samples cover that class of the data?

- :func:`class_accuracy`: a multinomial logistic-regression classifier fitted on labelled real data
  (standardized with its statistics, as :func:`pygan.metrics.linear_probe`) classifies generated
  samples; the share classified as the requested label, overall and per class. The classifier's own
  accuracy on held-out real data is the ceiling, ``1 / K``-ish chance the floor.
- :func:`knn_coverage`: the coverage of Naeem et al. (2020): the share of real samples whose
  k-nearest-neighbour ball (radius: the distance to their k-th nearest real neighbour) holds at
  least one generated sample. 1 when the generated samples reach every region of the data, low when
  they collapse onto a few modes; per class, it measures mode collapse within the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .inference import _chance, _fit_linear, _split, _stats
from .two_sample import Result, as_samples

__all__ = ["ClassAccuracy", "RealClassifier", "class_accuracy", "knn_coverage"]


@dataclass
class ClassAccuracy(Result):
    """``accuracy``: the share of generated samples classified as their requested label;
    ``per_class``: the same for each class 0..K-1 (None for a class with no samples);
    ``real_accuracy``: the classifier's accuracy on the held-out real samples (the ceiling);
    ``chance``: the largest class's share of the held-out real samples."""

    accuracy: float
    per_class: list
    real_accuracy: float
    chance: float


class RealClassifier:
    """A multinomial logistic-regression classifier of labelled real data (features standardized
    with the training split's statistics), fitted once: :meth:`score` classifies any number of
    sample sets against their labels. ``real_accuracy`` is its accuracy on the held-out split,
    ``chance`` that split's largest class share."""

    def __init__(self, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *, l2: float = 1e-3,
                 max_iter: int = 500) -> None:
        labels = torch.unique(torch.cat([torch.as_tensor(train_y).flatten().cpu(),
                                         torch.as_tensor(test_y).flatten().cpu()]))
        if not torch.equal(labels, torch.arange(labels.numel(), dtype=labels.dtype)):
            raise ValueError(f"train_y and test_y must name the classes 0..K-1, each at least once; found "
                             f"{labels.tolist()}")
        tr, ytr, te, yte = _split(train_x, train_y, test_x, test_y)  # (labels 0..K-1 keep their meaning)
        self.classes = labels.numel()
        self._classify = _fit_linear(tr, ytr, self.classes, l2, max_iter)
        self._mean, self._std = _stats(as_samples(train_x.reshape(train_x.shape[0], -1), "train_x").double().to(tr.device))
        self._device, self.features = tr.device, tr.shape[1]
        self.real_accuracy = float((self._classify(te) == yte).double().mean())
        self.chance = _chance(yte)

    def score(self, x: Tensor, y: Tensor, name: str = "fake") -> ClassAccuracy:
        """The share of ``x`` classified as its label ``y``, overall and per class."""
        samples = as_samples(x.reshape(x.shape[0], -1), f"{name}_x").double().to(self._device)
        labels = torch.as_tensor(y).to(self._device)
        if labels.shape != (samples.shape[0],) or labels.is_floating_point():
            raise ValueError(f"{name}_y must be ({samples.shape[0]},) integer labels, got {labels.dtype} of shape "
                             f"{tuple(labels.shape)}")
        if samples.shape[1] != self.features:
            raise ValueError(f"{name}_x has {samples.shape[1]} features per sample, the real data {self.features}")
        hits = self._classify((samples - self._mean) / self._std) == labels
        per_class = [float(hits[labels == c].double().mean()) if bool((labels == c).any()) else None
                     for c in range(self.classes)]
        return ClassAccuracy(float(hits.double().mean()), per_class, self.real_accuracy, self.chance)


def class_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, fake_x: Tensor,
                   fake_y: Tensor, *, l2: float = 1e-3, max_iter: int = 500) -> ClassAccuracy:
    """Fits the classifier on (train_x, train_y), scores it on the held-out (test_x, test_y), then
    classifies the generated ``fake_x`` against their requested labels ``fake_y`` (labels are class
    indices 0..K-1 in all three); :class:`RealClassifier` fits once for several sample sets."""
    return RealClassifier(train_x, train_y, test_x, test_y, l2=l2, max_iter=max_iter).score(fake_x, fake_y)


@torch.no_grad()
def knn_coverage(real: Tensor, fake: Tensor, *, k: int = 5) -> float:
    """Naeem et al.'s coverage of ``real`` by ``fake`` (rows, Euclidean distance on the flattened
    samples): mean over real x_i of 1[min_j ||x_i - y_j|| < r_k(x_i)], r_k the distance from x_i to
    its k-th nearest other real sample."""
    x = as_samples(real.reshape(real.shape[0], -1), "real").double()
    y = as_samples(fake.reshape(fake.shape[0], -1), "fake").double().to(x.device)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be an int in [1, {x.shape[0] - 1}] (fewer than the real samples), got {k!r}")
    radius = torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # the 1st smallest is the sample itself
    nearest_fake = torch.cdist(x, y).min(1).values
    return float((nearest_fake < radius).double().mean())
