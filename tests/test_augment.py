"""Differentiable augmentation: each operation against a per-sample loop written from its
definition (the same random draws), gradients by gradcheck, the probability, ADA's adaptive
probability, and the engine's steps against a hand-written reference with the draws fixed."""

import copy

import pytest
import torch

import pygan
from pygan import augment as aug
from pygan import models

from . import reference as ref
from .conftest import assert_same_params, reference_updates, sgd



def _images(b=6, c=3, h=8, w=10, seed=0, dtype=torch.float64):
    return torch.randn((b, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------
# The operations, sample by sample
# ---------------------------------------------------------------------------------------------

def _color_loop(x):
    b = x.shape[0]
    u = [torch.rand(b).to(x.dtype) for _ in range(3)]  # the draws, in the operation's order
    out = []
    for i in range(b):
        y = x[i] + (u[0][i] - 0.5)
        y = y.mean(0, keepdim=True) + (y - y.mean(0, keepdim=True)) * 2 * u[1][i]
        out.append(y.mean() + (y - y.mean()) * (u[2][i] + 0.5))
    return torch.stack(out)


def _translation_loop(x, ratio):
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b,))
    dx = torch.randint(-sx, sx + 1, (b,))
    out = torch.zeros_like(x)
    for i in range(b):
        for r in range(h):
            for c in range(w):
                rs, cs = r - int(dy[i]), c - int(dx[i])
                if 0 <= rs < h and 0 <= cs < w:
                    out[i, :, r, c] = x[i, :, rs, cs]
    return out


def _cutout_loop(x, ratio):
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h, (b,))
    cx = torch.randint(0, w, (b,))
    out = x.clone()
    for i in range(b):
        top, left = int(cy[i]) - ch // 2, int(cx[i]) - cw // 2
        out[i, :, max(top, 0):max(top + ch, 0), max(left, 0):max(left + cw, 0)] = 0
    return out


@pytest.mark.parametrize("op", ["color", "translation", "cutout"])
def test_each_operation_equals_its_definition(op):
    for seed in range(4):
        x = _images(seed=seed, h=7 + seed, w=9 - seed)
        ratio = {"translation": 0.25, "cutout": 0.4}.get(op)
        torch.manual_seed(seed)
        out = aug.color(x) if op == "color" else getattr(aug, op)(x, ratio)
        torch.manual_seed(seed)
        expect = _color_loop(x) if op == "color" else globals()[f"_{op}_loop"](x, ratio)
        torch.testing.assert_close(out, expect, rtol=1e-12, atol=1e-12)


def test_translation_moves_content_and_cutout_zeroes_a_square():
    # Translation keeps the pixels it does not push out; cutout zeroes about ratio^2 of the image.
    x = torch.ones(64, 1, 8, 8, dtype=torch.float64)
    torch.manual_seed(0)
    kept = aug.translation(x, 0.25).sum((1, 2, 3))
    assert kept.min() >= (8 - 2) ** 2 and kept.max() == 64
    torch.manual_seed(0)
    zeroed = 64 - aug.cutout(x, 0.5).sum((1, 2, 3))
    assert zeroed.max() == 16 and zeroed.min() >= 4  # a 4x4 square, at least a corner of it inside


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_gradcheck_with_fixed_draws(policy):
    x = _images(b=2, c=2, h=4, w=5).requires_grad_(True)
    pipeline = aug.DiffAugment(policy, p=0.7)

    def fn(t):
        torch.manual_seed(3)  # the same draws at every evaluation
        return pipeline(t)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_probability_per_operation_and_sample():
    x = _images(b=4000, c=1, h=4, w=4, dtype=torch.float32)
    assert torch.equal(aug.DiffAugment(p=0.0)(x), x)
    torch.manual_seed(0)
    changed = (aug.DiffAugment("color", p=0.3)(x) != x).flatten(1).any(1).float().mean().item()
    assert abs(changed - 0.3) < 5 * (0.3 * 0.7 / 4000) ** 0.5  # binomial, fixed seed
    # A device tensor p (AdaptiveAugment's) works as the float does.
    torch.manual_seed(1)
    a = aug.DiffAugment("color")(x, torch.tensor(0.3))
    torch.manual_seed(1)
    b = aug.DiffAugment("color", p=0.3)(x)
    assert torch.equal(a, b)


def test_augmentation_errors():
    with pytest.raises(ValueError, match="policy must name operations of color, translation, cutout"):
        aug.DiffAugment("color,flip")
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        aug.DiffAugment(p=1.5)
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\), got \(5, 2\)"):
        aug.DiffAugment()(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\)"):
        aug.AdaptiveAugment(target=1.0)
    with pytest.raises(TypeError, match="augment must be a callable"):
        pygan.GAN(*_players(), augment="color")


# ---------------------------------------------------------------------------------------------
# ADA's adaptive probability
# ---------------------------------------------------------------------------------------------

def test_adaptive_probability_follows_the_overfitting_heuristic():
    ada = aug.AdaptiveAugment(target=0.6, interval=2, speed=100, p=0.5)
    ada.observe(torch.tensor([1.0, 2.0, 3.0, -1.0, 4.0]))  # signs sum to 3
    assert ada.p.item() == 0.5  # not an adjustment step yet
    ada.observe(torch.ones(5))  # r_t over the interval = (3 + 5) / 10 = 0.8 > 0.6: p rises by 10 / 100
    assert ada.p.item() == pytest.approx(0.6)
    assert ada.seen.item() == 0 and ada.sign_sum.item() == 0
    for _ in range(2):
        ada.observe(-torch.ones(5, 1, 2, 2))  # per-image logit maps: one sign per image
    assert ada.p.item() == pytest.approx(0.5)
    for _ in range(40):
        ada.observe(-torch.ones(5))
    assert ada.p.item() == 0.0  # clamped
    state = copy.deepcopy(ada.state_dict())
    other = aug.AdaptiveAugment(target=0.6, interval=2, speed=100)
    other.load_state_dict(state)
    assert other.p.item() == 0.0 and other.steps.item() == ada.steps.item() == 44


# ---------------------------------------------------------------------------------------------
# In the engine
# ---------------------------------------------------------------------------------------------

def _players(seed=0):
    torch.manual_seed(seed)
    g = models.MLPGenerator(latent_dim=3, out_shape=(1, 6, 6), hidden=8, depth=2).double()
    d = models.MLPDiscriminator((1, 6, 6), hidden=8, depth=2).double()
    return g, d




def _gp(d, x):
    x = x.detach().requires_grad_(True)
    (gx,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return gx


@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
def test_step_equals_the_reference_with_the_draws_fixed(fused):
    """D and G see T(real) and T(fake); R1 and R2 differentiate with respect to the batch before T
    through the loss's forward (the same draws), WGAN-GP runs D(T(x̂)) at its points."""
    g, d = _players()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    pipeline = aug.DiffAugment(p=0.8)
    gan = pygan.GAN(g, d, fused=fused, augment=pipeline, g_optimizer=sgd, d_optimizer=sgd, seed=9,
                    penalty=[pygan.GradientPenalty("r1", weight=2.0), pygan.GradientPenalty("r2", weight=1.0),
                             pygan.GradientPenalty("wgan-gp", weight=0.5)])
    real = torch.rand((8, 1, 6, 6), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(42)
    stats = gan.step(real)

    torch.manual_seed(42)
    gen = torch.Generator().manual_seed(9)
    fake = g_ref(torch.randn((8, 3), generator=gen).double())
    # (fused: the fakes stay G's output, and G's loss reuses D's forward of them, draws included)
    x_r, x_f = real.clone().requires_grad_(True), fake if fused else fake.detach().requires_grad_(True)
    v_r, v_f = d_ref(pipeline(x_r)), d_ref(pipeline(x_f))  # the draws for real, then fake
    l_d = pygan.discriminator_loss(v_r, v_f, "gan")
    (g_r,) = torch.autograd.grad(v_r.sum(), x_r, create_graph=True)
    (g_f,) = torch.autograd.grad(v_f.sum(), x_f, create_graph=True)
    eps = torch.rand((8,), generator=gen).double().view(-1, 1, 1, 1)
    x_hat = fake.detach() + eps * (real - fake.detach())
    g_hat = _gp(lambda t: d_ref(pipeline(t)), x_hat)
    pens = [ref.penalty_values(g_r, "squared", weight=1.0)[0].mean(),
            ref.penalty_values(g_f, "squared", weight=0.5)[0].mean(),
            ref.penalty_values(g_hat, "two-sided", weight=0.5)[0].mean()]
    grads_d = torch.autograd.grad(l_d + sum(pens), list(d_ref.parameters()), retain_graph=True)

    def g_loss():  # fused: through D's forward of the same fakes; alternating: fresh fakes, fresh draws
        if fused:
            return pygan.generator_loss(v_f, "gan")
        return pygan.generator_loss(d_ref(pipeline(g_ref(torch.randn((8, 3), generator=gen).double()))), "gan")

    reference_updates(d_ref, g_ref, grads_d, fused, g_loss)
    assert_same_params(d, d_ref, "D")
    assert_same_params(g, g_ref, "G")
    assert stats["penalty"].item() == pytest.approx(sum(pens).item(), rel=1e-10)


def test_adaptive_augmentation_trains_saves_and_resumes_exactly(tmp_path):
    """AdaptiveAugment's p, sums and step count are training state: a run saved and resumed
    (global random state included, which the draws use) equals the uninterrupted run."""
    def fresh():
        g, d = _players()
        return pygan.GAN(g, d, augment=aug.AdaptiveAugment(interval=1, speed=64, p=0.2), seed=5,
                         penalty="r1+r2")

    data = torch.rand((256, 1, 6, 6), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    calls = []
    straight = fresh()
    straight.discriminator.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(0)
    stats = [straight.step(data[i * 8:(i + 1) * 8]) for i in range(6)]
    assert len(calls) == 6 * 3  # D once per batch (R1 and R2 share it), once more in the G step
    assert stats[0]["augment_p"].item() != stats[-1]["augment_p"].item()
    assert straight.augment.p.item() == stats[-1]["augment_p"].item()

    part = fresh()
    torch.manual_seed(0)
    for i in range(3):
        part.step(data[i * 8:(i + 1) * 8])
    path = part.save(tmp_path / "c.pt")
    resumed = pygan.GAN.load(path, resume=True)
    assert type(resumed.augment) is aug.AdaptiveAugment and resumed.augment.speed == 64
    for i in range(3, 6):
        resumed.step(data[i * 8:(i + 1) * 8])
    assert torch.equal(resumed.augment.p, straight.augment.p)
    for a, b in ((straight.generator, resumed.generator), (straight.discriminator, resumed.discriminator)):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)
    assert "augment=AdaptiveAugment(" in repr(resumed)


def test_a_custom_augmentation_is_pickled_only_for_trusted_files(tmp_path):
    g, d = _players()
    gan = pygan.GAN(g, d, augment=_Flip(), seed=1)
    path = gan.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="augment is a .*_Flip.*Pass augment= yourself"):
        pygan.GAN.load(path)
    assert isinstance(pygan.GAN.load(path, trusted=True).augment, _Flip)
    assert isinstance(pygan.GAN.load(path, augment=_Flip()).augment, _Flip)


class _Flip:
    """A user's augmentation: a plain callable (a horizontal flip)."""

    def __call__(self, x):
        return x.flip(-1)
