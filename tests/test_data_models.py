"""Samplers, reference models and the mode-coverage metric."""

import math

import pytest
import torch

import pygan
from pygan import data, metrics, models


def test_ring_and_grid_have_the_documented_modes():
    r = data.ring()
    assert r.centers.shape == (8, 2) and r.std == 0.02
    assert torch.allclose(r.centers.norm(dim=1), torch.full((8,), 2.0))
    g = data.grid()
    assert g.centers.shape == (25, 2)
    assert sorted(set(g.centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


@pytest.mark.parametrize("name", ["ring", "grid", "swiss_roll", "mixture_1d"])
def test_samplers_draw_reproducibly_on_the_device(name):
    s = data.as_sampler(name)
    a = s.sample(1000, torch.Generator().manual_seed(3))
    b = s.sample(1000, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (1000, *s.shape) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    if hasattr(s, "centers"):  # every sample near some mode, every mode used
        cov = metrics.mode_coverage(a, s.centers, s.std, within=5.0)
        assert cov.modes == cov.n_modes and cov.high_quality == 1.0


def test_mixture_moments(rng):
    s = data.mixture_1d((-3.0, 3.0), std=0.5)
    x = s.sample(200_000, rng)[:, 0]
    assert abs(x.mean().item()) < 0.03
    assert x.var().item() == pytest.approx(9 + 0.25, rel=0.02)


def test_digits_and_tensor_and_loader_samplers():
    pytest.importorskip("sklearn")
    d = data.digits()
    assert d.shape == (1, 8, 8) and len(d) == 1797 and d.is_image
    assert d.data.min() >= -1 and d.data.max() <= 1 and d.labels.shape == (1797,)
    t = data.as_sampler(torch.arange(20.0).view(10, 2))
    assert t.sample(5).shape == (5, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(12, 3)), batch_size=4)
    ls = data.as_sampler(loader)
    got = [ls.sample(4) for _ in range(4)]  # wraps around after 3 batches
    assert all(b.shape == (4, 3) for b in got)
    with pytest.raises(ValueError, match="batch_size"):
        ls.sample(5)


def test_sampler_errors():
    with pytest.raises(ValueError, match="unknown data set"):
        data.as_sampler("rings")
    with pytest.raises(ValueError, match="positive int"):
        data.ring().sample(0)
    with pytest.raises(ValueError, match="NaN"):
        data.TensorSampler(torch.tensor([[1.0], [float("nan")]]))
    with pytest.raises(TypeError, match="floating-point"):
        data.TensorSampler(torch.ones(3, 2, dtype=torch.long))


def test_mode_coverage_counts_modes_quality_and_balance():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([centers[0] + 0.01 * torch.randn(50, 2), centers[1] + 0.01 * torch.randn(50, 2),
                   torch.full((100, 2), 5.0)])
    cov = metrics.mode_coverage(x, centers, std=0.1)
    assert (cov.modes, cov.n_modes) == (2, 3)
    assert cov.high_quality == pytest.approx(0.5)
    assert cov.counts == [50, 50, 0]
    assert cov.kl_uniform == pytest.approx(math.log(3 / 2))  # two of three modes, equal shares
    balanced = metrics.mode_coverage(centers.repeat(4, 1), centers, std=0.1)
    assert balanced.kl_uniform == pytest.approx(0.0) and balanced.modes == 3
    assert metrics.mode_coverage(torch.full((4, 2), 100.0), centers, 0.1).kl_uniform == math.inf
    with pytest.raises(ValueError, match="centers"):
        metrics.mode_coverage(x, torch.zeros(3, 3), 0.1)
    # The protocol's "less than 3 std": a sample at exactly 3 std (0.375, exact in binary) is not high quality.
    edge = metrics.mode_coverage(torch.tensor([[0.375, 0.0], [0.374, 0.0]]), centers, std=0.125)
    assert edge.counts == [1, 0, 0] and edge.high_quality == 0.5 and edge.samples == 2


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64, 12, 20])
def test_dcgan_shapes(size):
    g = models.DCGANGenerator(latent_dim=10, channels=3, size=size, width=8)
    d = models.DCGANDiscriminator(channels=3, size=size, width=8)
    x = g(torch.randn(2, 10))
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert d(x).shape == (2, 1)
    # size = base * 2^stages, base in 4..7: the last feature maps are base x base (7x7 for MNIST's 28)
    base = {8: 4, 16: 4, 28: 7, 32: 4, 64: 4, 12: 6, 20: 5}[size]
    stages = int(math.log2(size // base))
    assert d.features(x).shape == (2, 8 * 2 ** (stages - 1) * base * base)
    e = models.ConvEncoder(channels=3, size=size, latent_dim=10, width=8)
    joint = models.JointDCGANDiscriminator(channels=3, size=size, latent_dim=10, width=8, hidden=16)
    assert e(x).shape == (2, 10) and joint(pygan.bigan.pack_pair(x, e(x))).shape == (2, 1)
    bn = models.DCGANDiscriminator(channels=3, size=size, width=8, batch_norm=True)
    assert bn(x).shape == (2, 1)


@pytest.mark.parametrize("n", [0, 1, 3, 6, 8, 64])
def test_minibatch_std_is_the_std_over_each_group(n, rng):
    """Each sample's extra map is the mean over (c, h, w) of sqrt(Var + 1e-8) over its group: the
    samples i with the same i mod (n / G), G the largest divisor of n up to the group size."""
    m = models.MinibatchStd(4)
    x = torch.randn(n, 5, 3, 2, dtype=torch.float64, generator=rng)
    y = m(x)
    assert y.shape == (n, 6, 3, 2) and torch.equal(y[:, :5], x)
    groups = max(d for d in range(1, min(4, n) + 1) if n % d == 0) if n else 1
    for i in range(n):
        members = x[[j for j in range(n) if j % (n // groups) == i % (n // groups)]]
        expect = (members.var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert len(members) == groups
        torch.testing.assert_close(y[i, 5], expect.expand(3, 2), rtol=4 * 2 ** -52, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_minibatch_std_in_low_precision_is_the_float64_map_rounded(dtype, rng):
    """Each dtype's map is within 4 ulps of the float64 map of the same (rounded) inputs, over
    magnitudes from 1e-3 to 1e4 (float16's squares overflow past 256 unless reduced wider), and a
    lone sample's zero variance keeps a finite gradient (float16 would round the 1e-8 to 0)."""
    m = models.MinibatchStd(4)
    for scale in (1e-3, 1.0, 1e4):
        x = (scale * torch.randn(8, 5, 3, 2, dtype=torch.float64, generator=rng)).to(dtype)
        expect = m(x.double())[:, 5]
        torch.testing.assert_close(m(x)[:, 5].double(), expect, rtol=4 * torch.finfo(dtype).eps, atol=0)
    one = torch.randn(1, 5, 3, 2, generator=rng).to(dtype).requires_grad_(True)
    m(one)[:, 5].sum().backward()
    assert one.grad.isfinite().all()


def test_minibatch_std_gradients_and_discriminator(rng):
    """Exact first and second derivatives (a penalty of D differentiates through it twice), and a
    DCGAN discriminator with it: one more input channel to the head, rebuilt from its arguments."""
    x = torch.randn(8, 2, 3, 3, dtype=torch.float64, generator=rng, requires_grad=True)
    m = models.MinibatchStd(4)
    assert torch.autograd.gradcheck(m, x) and torch.autograd.gradgradcheck(m, x)
    d = models.DCGANDiscriminator(channels=3, size=16, width=8, minibatch_std=4)
    assert d.head.in_channels == 16 + 1 and d(torch.randn(6, 3, 16, 16, generator=rng)).shape == (6, 1)
    assert d.init_kwargs["minibatch_std"] == 4
    assert models.DCGANDiscriminator(channels=3, size=16, width=8).minibatch_std is None
    with pytest.raises(ValueError, match="minibatch_std must be a non-negative int"):
        models.DCGANDiscriminator(minibatch_std=-1)
    with pytest.raises(ValueError, match="group must be a positive int"):
        models.MinibatchStd(0)


@pytest.mark.parametrize("size", [8, 16, 28, 32])
def test_resnet_shapes_and_fixup_initialization(size):
    """R3GAN's networks: every residual block starts as the identity (its last convolution is
    zero), the others are scaled by (blocks in all)^(-1/4), and D's output is one logit per image."""
    torch.manual_seed(0)
    g = models.ResNetGenerator(latent_dim=10, channels=3, size=size, width=8, blocks=2, cardinality=4)
    d = models.ResNetDiscriminator(channels=3, size=size, width=8, blocks=2, cardinality=4)
    x = g(torch.randn(2, 10))
    assert x.shape == (2, 3, size, size) and d(x).shape == (2, 1) and d.features(x).shape == (2, 8)
    blocks = [m for m in d.modules() if isinstance(m, models._ResidualBlock)]
    stages = int(math.log2(size // (7 if size == 28 else 4))) + 1  # resolutions: 7, 14, 28 or 4, ..., size
    assert len(blocks) == 2 * stages
    h = torch.randn(3, 8, 4, 4)
    for b in blocks:
        assert torch.equal(b(h), h) and not b.project.weight.any()
    # He init (std sqrt(2 / (1 + 0.2^2) / fan_in)) times L^(-1/4), L = 2 * stages blocks.
    w = torch.cat([b.expand.weight.flatten() for b in blocks])
    expect = math.sqrt(2 / 1.04 / 8) * (2 * stages) ** -0.25
    assert w.std().item() == pytest.approx(expect, rel=0.15)
    with pytest.raises(ValueError, match=r"width \* expansion \(16\) must be a multiple of cardinality \(3\)"):
        models.ResNetDiscriminator(width=8, cardinality=3)
    with pytest.raises(ValueError, match="blocks must be a positive int"):
        models.ResNetGenerator(blocks=0)


def test_mlp_models_and_build():
    g, d = models.build("mlp", (2,))
    assert g(torch.randn(4, g.latent_dim)).shape == (4, 2) and d(torch.randn(4, 2)).shape == (4, 1)
    g, d = models.build("mlp", (1, 8, 8))
    x = g(torch.randn(3, g.latent_dim))
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1 and d(x).shape == (3, 1)
    for size in (36, 9, 4, 7.0):
        with pytest.raises(ValueError, match="image size must be 4, 5, 6 or 7 times a power of two"):
            models.DCGANGenerator(size=size)
    with pytest.raises(ValueError, match="unknown model 'vit'"):
        models.build("vit", (2,))
    with pytest.raises(ValueError, match="model 'resnet' needs square images"):
        models.build("resnet", (2,))
    with pytest.raises(ValueError, match="square images"):
        models.build("dcgan", (2,))
    # discriminators are built from the fused layers
    assert any(isinstance(m, pygan.nn.FusedLinear) for m in models.MLPDiscriminator().modules())


@pytest.mark.parametrize("family", ["mlp", "dcgan", "resnet"])
def test_build_hands_the_backend_to_every_fused_layer(family):
    """models.build / build_bigan (and so the CLI's --backend) reach the fused layers of D and E."""
    from pygan import nn as pnn

    shape = (2,) if family == "mlp" else (3, 16, 16)
    _, d = models.build(family, shape, width=8, backend="cpu")
    nets = [d] + (list(models.build_bigan(family, shape, width=8, backend="cpu")[1:]) if family != "resnet" else [])
    for net in nets:
        fused = [m for m in net.modules() if isinstance(m, (pnn.FusedLinear, pnn.FusedConv2d, pnn.LeakyReLU))
                 and getattr(m, "slope", getattr(m, "negative_slope", None)) is not None]
        assert fused and all(m.backend == "cpu" for m in fused), type(net).__name__
