r"""Data samplers that draw batches on the training device, with no DataLoader in the loop.

Every sampler has ``sample(n, generator=None) -> Tensor`` (a batch of ``n`` on ``sampler.device``,
drawn with ``generator`` when given, which makes training resume exactly), ``to(device)``, and the
``shape`` of one sample. The toy mixtures also know their modes (``centers`` and ``std``) so that
:func:`pygan.metrics.mode_coverage` can score a generator on them.

- :func:`ring`: 8 Gaussians on a circle of radius 2, standard deviation 0.02.
- :func:`grid`: 25 Gaussians on the 5x5 grid {-4, -2, 0, 2, 4}^2, standard deviation 0.05.
- :func:`swiss_roll`: the 2-D swiss roll, scaled to about [-2.5, 2.5]^2.
- :func:`mixture_1d`: a 1-D Gaussian mixture.
- :func:`digits`: scikit-learn's 1,797 8x8 handwritten digits (shipped with scikit-learn, no
  download), as (1, 8, 8) images in [-1, 1].
- :class:`TensorSampler`: rows of any tensor, drawn uniformly with replacement (with their labels
  for class-conditional training: ``as_sampler((x, y))``, and ``digits`` has them).
- :class:`LoaderSampler`: the batches of a DataLoader, in its order (first element of tuples).

:func:`as_sampler` turns any of these, a name of :data:`DATASETS`, a tensor or a DataLoader into a
sampler.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Optional, Union

import torch
from torch import Tensor

from ._validate import positive_int

__all__ = [
    "DATASETS", "GaussianMixture", "LoaderSampler", "Sampler", "SwissRoll", "TensorSampler",
    "as_sampler", "digits", "grid", "mixture_1d", "ring", "swiss_roll",
]


def _check_n(n: int) -> int:
    return positive_int("n", n, "the batch size")


class Sampler:
    """A source of training batches on one device. Subclasses implement :meth:`sample`."""

    device: torch.device = torch.device("cpu")
    shape: tuple[int, ...] = ()

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        raise NotImplementedError

    def to(self, device: Union[str, torch.device]) -> "Sampler":
        raise NotImplementedError

    #: The number of classes of a labelled sampler (None: unlabelled).
    num_classes: Optional[int] = None

    def sample_labeled(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """A batch of ``n`` samples and their integer class labels, for class-conditional training."""
        raise ValueError(f"{self!r} has no labels; class-conditional training needs labelled data "
                         "(e.g. pygan.data.as_sampler((x, y)) or pygan.data.digits())")

    @property
    def is_image(self) -> bool:
        """Whether one sample is an image (channels, height, width)."""
        return len(self.shape) == 3


class GaussianMixture(Sampler):
    r"""Equal-weight mixture of isotropic Gaussians :math:`\frac1K \sum_k N(c_k, \sigma^2 I)`.

    Draws a component index and a standard normal per sample, both on the device."""

    def __init__(self, centers: Tensor, std: float, device: Union[str, torch.device] = "cpu") -> None:
        centers = torch.as_tensor(centers, dtype=torch.float32)
        if centers.dim() != 2 or centers.shape[0] < 1:
            raise ValueError(f"centers must have shape (modes, dims), got {tuple(centers.shape)}")
        if not (std > 0 and math.isfinite(std)):
            raise ValueError(f"std must be positive and finite, got {std}")
        self.device = torch.device(device)
        self.centers = centers.to(self.device)
        self.std = float(std)
        self.shape = (centers.shape[1],)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        n = _check_n(n)
        k = torch.randint(self.centers.shape[0], (n,), generator=generator, device=self.device)
        noise = torch.randn((n, self.shape[0]), generator=generator, device=self.device)
        return self.centers[k] + self.std * noise

    def to(self, device: Union[str, torch.device]) -> "GaussianMixture":
        return GaussianMixture(self.centers, self.std, device)

    def __repr__(self) -> str:
        return f"GaussianMixture(modes={self.centers.shape[0]}, dims={self.shape[0]}, std={self.std})"


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.02,
         device: Union[str, torch.device] = "cpu") -> GaussianMixture:
    """``modes`` Gaussians evenly spaced on a circle (the mode-collapse benchmark of unrolled GANs)."""
    angle = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return GaussianMixture(torch.stack([radius * angle.cos(), radius * angle.sin()], 1), std, device)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05,
         device: Union[str, torch.device] = "cpu") -> GaussianMixture:
    """``side`` x ``side`` Gaussians on a square grid centred at the origin."""
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    return GaussianMixture(torch.stack([xx.flatten(), yy.flatten()], 1), std, device)


def mixture_1d(centers: Iterable[float] = (-3.0, 0.0, 3.0), std: float = 0.3,
               device: Union[str, torch.device] = "cpu") -> GaussianMixture:
    """A 1-D Gaussian mixture with equal weights."""
    return GaussianMixture(torch.tensor(list(centers), dtype=torch.float64)[:, None], std, device)


class SwissRoll(Sampler):
    r"""The 2-D swiss roll: :math:`t = \tfrac{3\pi}{2}(1 + 2u)`, :math:`x = (t\cos t, t\sin t)/5
    + \text{noise}\cdot N(0, I)/5`, with u uniform on [0, 1]."""

    def __init__(self, noise: float = 0.25, device: Union[str, torch.device] = "cpu") -> None:
        self.noise, self.device, self.shape = float(noise), torch.device(device), (2,)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        n = _check_n(n)
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, device=self.device))
        x = torch.stack([t * t.cos(), t * t.sin()], 1)
        return (x + self.noise * torch.randn((n, 2), generator=generator, device=self.device)) / 5

    def to(self, device: Union[str, torch.device]) -> "SwissRoll":
        return SwissRoll(self.noise, device)

    def __repr__(self) -> str:
        return f"SwissRoll(noise={self.noise})"


def swiss_roll(noise: float = 0.25, device: Union[str, torch.device] = "cpu") -> SwissRoll:
    """The 2-D swiss roll (see :class:`SwissRoll`)."""
    return SwissRoll(noise, device)


class TensorSampler(Sampler):
    """Uniform draws with replacement from the rows of ``data`` (kept on the device; a batch is
    one ``randint`` and one gather)."""

    def __init__(self, data: Tensor, device: Optional[Union[str, torch.device]] = None,
                 labels: Optional[Tensor] = None) -> None:
        if not isinstance(data, Tensor) or not data.is_floating_point():
            raise TypeError(f"data must be a floating-point tensor, got {getattr(data, 'dtype', type(data).__name__)}")
        if data.dim() < 2 or data.shape[0] < 1:
            raise ValueError(f"data must have shape (samples, ...) with at least one sample, got {tuple(data.shape)}")
        if not torch.isfinite(data).all():
            raise ValueError("data holds NaN or infinite values")
        self.device = torch.device(device) if device is not None else data.device
        self.data = data.to(self.device).contiguous()
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool \
                    or labels.shape != (data.shape[0],):
                what = f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, Tensor) else \
                    type(labels).__name__
                raise ValueError(f"labels must be integer class labels, one per sample ({data.shape[0]},), got {what}")
            if labels.numel() and labels.min() < 0:
                raise ValueError("labels must be class indices 0, 1, ..., K - 1; found a negative label")
            labels = labels.to(self.device, torch.int64)
            self.num_classes = int(labels.max()) + 1
        self.labels = labels
        self.shape = tuple(data.shape[1:])

    def _index(self, n: int, generator: Optional[torch.Generator]) -> Tensor:
        return torch.randint(self.data.shape[0], (_check_n(n),), generator=generator, device=self.device)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return self.data[self._index(n, generator)]

    def sample_labeled(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        if self.labels is None:
            return super().sample_labeled(n, generator)
        idx = self._index(n, generator)
        return self.data[idx], self.labels[idx]

    def to(self, device: Union[str, torch.device]) -> "TensorSampler":
        return TensorSampler(self.data, device, self.labels)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        return f"TensorSampler(samples={self.data.shape[0]}, shape={self.shape})"


DIGITS_TEST_SHARE = 0.25


def digits(device: Union[str, torch.device] = "cpu", split: Optional[str] = None) -> TensorSampler:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16) as (1, 8, 8) images scaled to
    [-1, 1], with their class labels in ``labels``. ``split="train"`` or ``"test"`` takes a fixed,
    seeded, disjoint 75% / 25% part (for held-out evaluation of learned features); None all of it.
    Needs scikit-learn (``pip install scikit-learn``), which ships the data: nothing is downloaded."""
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn") from e
    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    labels = torch.as_tensor(d.target)
    if split is not None:
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))
        n_test = round(DIGITS_TEST_SHARE * images.shape[0])
        part = order[n_test:] if split == "train" else order[:n_test]
        images, labels = images[part], labels[part]
    return TensorSampler(images, device, labels)


class LoaderSampler(Sampler):
    """Batches of a DataLoader (or any re-iterable of batches) in its own order, restarting it when
    it ends; from tuple or list batches the first element. ``n`` must equal the loader's batch
    size. Resume is exact only as far as the loader's own order is reproducible."""

    def __init__(self, loader: Iterable, device: Union[str, torch.device] = "cpu") -> None:
        self.loader, self.device = loader, torch.device(device)
        self._it = iter(loader)
        first = self._next()
        self.shape = tuple(first.shape[1:])
        self._pending: Optional[Tensor] = first

    def _next(self) -> Tensor:
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            batch = next(self._it)
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if not isinstance(batch, Tensor):
            raise TypeError(f"the loader must yield tensors or tuples of tensors, got {type(batch).__name__}")
        return batch

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        n = _check_n(n)
        batch, self._pending = (self._pending if self._pending is not None else self._next()), None
        if batch.shape[0] != n:
            raise ValueError(f"the loader gave a batch of {batch.shape[0]} samples, the step needs {n}: "
                             "set the loader's batch_size to the training batch size (and drop_last=True)")
        return batch.to(self.device, non_blocking=True)

    def to(self, device: Union[str, torch.device]) -> "LoaderSampler":
        self.device = torch.device(device)
        return self

    def __repr__(self) -> str:
        return f"LoaderSampler({type(self.loader).__name__})"


DATASETS: dict[str, Callable[..., Sampler]] = {
    "ring": ring, "grid": grid, "swiss_roll": swiss_roll, "mixture_1d": mixture_1d, "digits": digits,
}


def as_sampler(data: object, device: Union[str, torch.device] = "cpu") -> Sampler:
    """A sampler on ``device`` for ``data``: a name of :data:`DATASETS`, a :class:`Sampler`, a tensor
    of samples (rows), a tuple (samples, integer labels), a NumPy array or nested list of numbers (as float32 rows; a float64 array
    stays float64), or a DataLoader / iterable of batches."""
    if isinstance(data, str):
        if data not in DATASETS:
            raise ValueError(f"unknown data set {data!r}; choose one of {sorted(DATASETS)}")
        return DATASETS[data](device=device)
    if isinstance(data, Sampler):
        return data if data.device == torch.device(device) else data.to(device)
    if isinstance(data, Tensor):
        return TensorSampler(data, device)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return TensorSampler(data[0], device, labels=data[1])  # (samples, labels)
    if type(data).__module__ == "numpy" and hasattr(data, "dtype"):
        if data.dtype.kind not in "fiu":
            raise TypeError(f"data: a NumPy array of numbers is needed, got dtype {data.dtype}")
        array = torch.from_numpy(data.copy())
        return TensorSampler(array if array.is_floating_point() else array.float(), device)
    if isinstance(data, (list, tuple)) and data and not isinstance(data[0], Tensor):
        try:
            rows = torch.tensor(data, dtype=torch.float32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"data: a list must hold rows of numbers of one length ({e})") from None
        return TensorSampler(rows, device)
    if hasattr(data, "__iter__"):
        return LoaderSampler(data, device)
    raise TypeError(f"data must be a data set name, a Sampler, a tensor or a DataLoader, got {type(data).__name__}")
