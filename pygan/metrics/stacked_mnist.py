r"""Stacked MNIST's mode count (Metz et al. 2017; VEEGAN, PacGAN and R3GAN report it).

A Stacked MNIST sample (:func:`pygan.data.stacked_mnist`) is three MNIST digits as three channels,
so the data has 1,000 modes, equally likely. A classifier of single MNIST digits labels each
channel of a generated sample; the three labels name its mode. :func:`stacked_mnist_modes` reports
how many of the 1,000 modes the samples reach and :math:`KL(p \,\|\, U) = \sum_k p_k \log(1000\, p_k)`,
the KL divergence of their mode histogram from uniform (R3GAN's Table 3: 26,000 samples).

:func:`mnist_classifier` is that classifier: a small CNN trained here on the 3,750 training digits
of :func:`pygan.data.mnist` with random shifts, rotations and scalings, checked on the 1,250
held-out ones. Training takes about two minutes on 2 CPU cores; the weights are cached (``$PYGAN_CACHE``, by
default ``~/.cache/pygan``) under a name that holds the recipe, so a repeated call loads them.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .two_sample import Result

__all__ = ["DigitClassifier", "StackedModes", "STACKED_SAMPLES", "mnist_classifier", "stacked_mnist_modes"]

STACKED_SAMPLES = 26_000  # generated samples per evaluation in R3GAN's Table 3
# What the cached weights were trained by: epochs, batch, peak learning rate (one cycle), and the
# random affine augmentation's largest shift (pixels), rotation (degrees) and scale change.
RECIPE = dict(version=2, epochs=20, batch=64, lr=2e-3, shift=2, rotate=12, scale=0.1)


# Digits per forward pass when classifying, in channels-last tensors: on the CPU (one thread) 4,500
# digits took 2.5 s against 6.7 s in contiguous chunks of 2,000, whose activations (2,000 x 32 x 28
# x 28 floats, 200 MB each) leave every cache; Stacked MNIST's 26,000 samples are 78,000 digits.
PREDICT_BATCH = 256


class DigitClassifier(nn.Module):
    """A small CNN for (1, 28, 28) digits in [-1, 1]: two stages of two 3x3 convolutions with
    batch norm and ReLU, then 2x2 max pooling (32, then 64 channels), a 128-unit hidden layer with
    dropout, 10 logits."""

    def __init__(self) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.net = nn.Sequential(
            *conv(1, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = PREDICT_BATCH) -> Tensor:
        """The class of each (1, 28, 28) digit, in eval mode, ``batch`` digits at a time (the
        network itself is left as it is: a channels-last copy in eval mode runs)."""
        if not x.shape[0]:
            return torch.zeros(0, dtype=torch.int64)
        net = copy.deepcopy(self.net).eval().to(memory_format=torch.channels_last)
        return torch.cat([net(c.contiguous(memory_format=torch.channels_last)).argmax(1) for c in x.split(batch)])


def _cache_dir() -> Path:
    return Path(os.environ.get("PYGAN_CACHE") or Path.home() / ".cache" / "pygan")


def _augmented(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each (1, H, W) image under its own random affine map: a shift of up to ``shift`` pixels
    each way, a rotation of up to ``rotate`` degrees, a scale in 1 -+ ``scale`` (bilinear; the
    background -1 fills in)."""
    n, _, h, w = x.shape

    def uniform(bound: float) -> Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * bound

    angle = uniform(math.radians(RECIPE["rotate"]))
    scale = 1 + uniform(RECIPE["scale"])
    shift_x, shift_y = uniform(2 * RECIPE["shift"] / w), uniform(2 * RECIPE["shift"] / h)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample fills with 0 outside: sample x + 1 (background 0), then shift back.
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


def mnist_classifier(*, seed: int = 0, cache: bool = True, progress: bool = False) -> tuple[DigitClassifier, float]:
    """The digit classifier (on the CPU, in eval mode) and its accuracy on the held-out MNIST
    digits. Trained with ``seed`` by :data:`RECIPE` on the training split, or loaded from the cache
    when a run with the same recipe and seed saved it there."""
    from ..data import mnist

    path = _cache_dir() / f"mnist-classifier-v{RECIPE['version']}-e{RECIPE['epochs']}-seed{seed}.pt"
    with torch.random.fork_rng(devices=[]):  # the initial weights come from the seed, not the caller's stream
        torch.manual_seed(seed)
        model = DigitClassifier()
    if cache and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state"])
        return model.eval(), float(saved["accuracy"])
    train, test = mnist(split="train"), mnist(split="test")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=RECIPE["lr"])
    steps = RECIPE["epochs"] * math.ceil(len(train) / RECIPE["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=RECIPE["lr"], total_steps=steps)
    model.train()
    for epoch in range(RECIPE["epochs"]):
        order = torch.randperm(len(train), generator=gen)
        for idx in order.split(RECIPE["batch"]):
            x = _augmented(train.data[idx], gen)
            loss = F.cross_entropy(model(x), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if progress:
            print(f"mnist classifier: epoch {epoch + 1}/{RECIPE['epochs']}", flush=True)
    accuracy = float((model.predict(test.data) == test.labels).double().mean())
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save({"state": model.state_dict(), "accuracy": accuracy, "recipe": RECIPE}, tmp)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    return model.eval(), accuracy


@dataclass
class StackedModes(Result):
    r"""``modes``: modes reached of ``n_modes`` (1,000); ``kl_uniform``: KL(mode histogram || uniform);
    ``samples``: samples scored; ``classifier_accuracy``: the digit classifier's held-out accuracy
    (None when the caller passed its own classifier); ``counts``: samples per mode.

    Where the KL comes from: ``channel_kl``, each channel's digit histogram :math:`p_c` against
    uniform over 10, and ``dependence``, the rest, :math:`KL(p \,\|\, \prod_c p_c)` (the channels'
    total correlation). Exactly :math:`KL(p \,\|\, U_{1000}) = \sum_c KL(p_c \,\|\, U_{10}) +
    KL(p \,\|\, \prod_c p_c)`: a generator that favours some digits shows in ``channel_kl``, one that
    ties the channels together in ``dependence``."""

    modes: int
    n_modes: int
    kl_uniform: float
    samples: int
    classifier_accuracy: Optional[float]
    counts: list = field(repr=False)
    channel_kl: list = field(default_factory=list)
    dependence: float = 0.0


def stacked_mnist_modes(samples: Tensor, classifier: Optional[nn.Module] = None, *,
                        batch: int = PREDICT_BATCH) -> StackedModes:
    """The modes of Stacked MNIST ``samples`` (n, C, H, W), C digits per sample, H and W at least 28
    (the central 28x28 is read: padded samples work as they are): each channel classified by
    ``classifier`` (default :func:`mnist_classifier`), the labels read as a number in base 10."""
    if not isinstance(samples, Tensor) or samples.dim() != 4 or min(samples.shape[2:]) < 28:
        raise ValueError(f"samples must be (n, channels, H, W) images with H, W >= 28, got "
                         f"{getattr(samples, 'shape', type(samples).__name__)}")
    accuracy = None
    if classifier is None:
        classifier, accuracy = mnist_classifier()  # (trains, outside no_grad, when it is not cached)
    with torch.no_grad():
        return _count(samples, classifier, accuracy, batch)


def _count(samples: Tensor, classifier: nn.Module, accuracy: Optional[float], batch: int) -> StackedModes:
    n, c, h, w = samples.shape
    top, left = (h - 28) // 2, (w - 28) // 2
    digits = samples[:, :, top:top + 28, left:left + 28].float().cpu().reshape(n * c, 1, 28, 28)
    predict = getattr(classifier, "predict", None)
    labels = predict(digits, batch) if predict is not None else \
        torch.cat([classifier(x).argmax(1) for x in digits.split(batch)])
    per_sample = labels.view(n, c)
    modes = (per_sample * 10 ** torch.arange(c - 1, -1, -1)).sum(1)
    counts = torch.bincount(modes, minlength=10 ** c)
    kl = _kl_uniform(counts)
    channel_kl = [_kl_uniform(torch.bincount(per_sample[:, i], minlength=10)) for i in range(c)]
    return StackedModes(int((counts > 0).sum()), 10 ** c, kl, n, accuracy, counts.tolist(), channel_kl,
                        kl - sum(channel_kl))


def _kl_uniform(counts: Tensor) -> float:
    """KL(histogram || uniform over its bins) of a histogram of counts (0 for an empty one)."""
    p = counts.double() / max(int(counts.sum()), 1)
    nz = p > 0
    return float((p[nz] * torch.log(p[nz] * counts.numel())).sum())
