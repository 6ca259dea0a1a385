"""The training engine against hand-written PyTorch: the D and G steps, n_critic, the fused
simultaneous step, penalties and clipping inside the loop, AMP, EMA, exact resume, DDP and fit."""

import contextlib
import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pygan
from pygan import models
from pygan.losses import LOSS_NAMES

from .conftest import free_port

LR = 0.05


def _pair(seed=0, dtype=torch.float64, hidden=8):
    torch.manual_seed(seed)
    g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=hidden, depth=2).to(dtype)
    d = models.MLPDiscriminator((2,), hidden=hidden, depth=2).to(dtype)
    return g, d


def _sgd(params):
    return torch.optim.SGD(params, lr=LR)


def _gan(g, d, **kw):
    kw.setdefault("g_optimizer", _sgd)
    kw.setdefault("d_optimizer", _sgd)
    kw.setdefault("seed", 123)
    return pygan.GAN(g, d, **kw)


def _noise(gen, m, dtype=torch.float64):
    # The default prior: float32 standard normals from the GAN's generator, cast to G's dtype.
    return torch.randn((m, 3), generator=gen).to(dtype)


def _sgd_update(module, grads):
    with torch.no_grad():
        for p, g in zip(module.parameters(), grads):
            p -= LR * g


def _assert_params(a, b, tol=1e-12, what=""):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=tol, atol=tol), f"{what}: {name} differs by {(p - q).abs().max()}"


def _real(m=16, seed=5):
    return pygan.data.ring().sample(m, torch.Generator().manual_seed(seed)).double()


# ---------------------------------------------------------------------------------------------
# The steps against hand-written references
# ---------------------------------------------------------------------------------------------

def test_d_step_is_one_descent_step_on_the_bce_loss():
    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = _gan(g, d)
    real = _real()
    stats = gan.d_step(real)

    z = _noise(torch.Generator().manual_seed(123), 16)
    v_r, v_f = d_ref(real), d_ref(g_ref(z).detach())
    loss = F.softplus(-v_r).mean() + F.softplus(v_f).mean()
    _sgd_update(d_ref, torch.autograd.grad(loss, list(d_ref.parameters())))
    _assert_params(d, d_ref, what="D after d_step")
    _assert_params(g, g_ref, tol=0, what="G untouched by d_step")
    assert stats["d_loss"].item() == pytest.approx(loss.item(), rel=1e-12)
    assert stats["divergence"].item() == pytest.approx(-loss.item(), rel=1e-12)
    assert stats["d_real"].item() == pytest.approx(v_r.mean().item(), rel=1e-6)
    assert stats["d_fake"].item() == pytest.approx(v_f.mean().item(), rel=1e-6)
    assert all(s.device == real.device and s.dim() == 0 for s in stats.values())


@pytest.mark.parametrize("saturating", [False, True])
def test_g_step_is_one_descent_step_on_the_generator_loss(saturating):
    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = _gan(g, d, saturating=saturating)
    stats = gan.g_step(batch_size=16)

    z = _noise(torch.Generator().manual_seed(123), 16)
    v = d_ref(g_ref(z))
    loss = -F.softplus(v).mean() if saturating else F.softplus(-v).mean()  # log(1 - D) = -softplus(v)
    _sgd_update(g_ref, torch.autograd.grad(loss, list(g_ref.parameters())))
    _assert_params(g, g_ref, what="G after g_step")
    _assert_params(d, d_ref, tol=0, what="D untouched by g_step")
    assert all(p.grad is None for p in d.parameters()), "g_step computed D's gradients"
    assert stats["g_loss"].item() == pytest.approx(loss.item(), rel=1e-12)


def test_step_runs_n_critic_d_steps_then_one_g_step_in_order():
    g, d = _pair()
    a = _gan(g, d, n_critic=3)
    b = _gan(copy.deepcopy(g), copy.deepcopy(d), n_critic=3)
    real = _real(24)
    a.step(real)
    for chunk in real.chunk(3):
        b.d_step(chunk)
    b.g_step(batch_size=8)
    _assert_params(a.generator, b.generator, tol=0, what="G")
    _assert_params(a.discriminator, b.discriminator, tol=0, what="D")
    assert a.steps == 1
    with pytest.raises(ValueError, match="multiple of n_critic"):
        a.step(real[:23])
    with pytest.raises(ValueError, match="need n_critic=3"):
        a.step([real[:8], real[8:16]])


def _simultaneous_reference(g, d, real, z, loss, penalty_gamma=0.0, **params):
    """Both players' gradients at the same (theta_G, theta_D), by plain autograd on pygan's losses."""
    fake = g(z)
    v_r, v_f = d(real), d(fake)
    l_d = pygan.discriminator_loss(v_r, v_f, loss, **params)
    if penalty_gamma:
        x = real.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
        l_d = l_d + penalty_gamma / 2 * gx.pow(2).sum(1).mean()
    grads_d = torch.autograd.grad(l_d, list(d.parameters()), retain_graph=True)
    l_g = pygan.generator_loss(v_f, loss, real_logits=v_r.detach(), **params)
    grads_g = torch.autograd.grad(l_g, list(g.parameters()))
    return l_d, l_g, grads_d, grads_g


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_fused_step_equals_the_simultaneous_gradient_step(loss):
    params = {"alpha": 0.5} if loss == "alpha" else {}
    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = _gan(g, d, loss=loss, fused=True, **params)
    real = _real()
    stats = gan.step(real)

    z = _noise(torch.Generator().manual_seed(123), 16)
    l_d, l_g, grads_d, grads_g = _simultaneous_reference(g_ref, d_ref, real, z, loss, **params)
    _sgd_update(d_ref, grads_d)
    _sgd_update(g_ref, grads_g)
    _assert_params(d, d_ref, tol=1e-11, what=f"D ({loss})")
    _assert_params(g, g_ref, tol=1e-11, what=f"G ({loss})")
    assert stats["d_loss"].item() == pytest.approx(l_d.item(), rel=1e-10, abs=1e-12)
    assert stats["g_loss"].item() == pytest.approx(l_g.item(), rel=1e-10, abs=1e-12)


def test_fused_step_with_a_penalty_and_n_critic():
    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = _gan(g, d, fused=True, n_critic=2, penalty=pygan.GradientPenalty("r1", weight=3.0))
    real = _real(32)
    gan.step(real)

    gen = torch.Generator().manual_seed(123)
    # D step 1 (alternating), on the first half; then the fused step on the second half.
    z = _noise(gen, 16)
    first = real[:16]
    x = first.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(d_ref(x).sum(), x, create_graph=True)
    l_d = (F.softplus(-d_ref(first)).mean() + F.softplus(d_ref(g_ref(z).detach())).mean()
           + 1.5 * gx.pow(2).sum(1).mean())
    _sgd_update(d_ref, torch.autograd.grad(l_d, list(d_ref.parameters())))
    z = _noise(gen, 16)
    _, _, grads_d, grads_g = _simultaneous_reference(g_ref, d_ref, real[16:], z, "gan", penalty_gamma=3.0)
    _sgd_update(d_ref, grads_d)
    _sgd_update(g_ref, grads_g)
    _assert_params(d, d_ref, tol=1e-11, what="D")
    _assert_params(g, g_ref, tol=1e-11, what="G")


def test_relativistic_g_step_needs_real():
    gan = _gan(*_pair(), loss="relativistic_average")
    with pytest.raises(ValueError, match="pass real="):
        gan.g_step(batch_size=4)
    gan.step(_real(8))  # step passes its batch


def test_penalty_and_clip_inside_the_d_step():
    g, d = _pair()
    gan = _gan(g, d, loss="wasserstein", penalty="wgan-gp", clip=0.05)
    stats = gan.d_step(_real())
    assert stats["penalty"].item() > 0
    assert all(p.abs().max() <= 0.05 for p in d.parameters())


@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
@pytest.mark.parametrize("penalty,forwards", [(None, 2), ("r1", 2), ("r2", 2), ("wgan-gp", 3), ("dragan", 3)])
def test_d_forwards_per_d_step(penalty, forwards, fused):
    """D runs once per batch: R1 and R2 take their gradients from the loss's own forward of the
    real or the fake batch (in the fused step too, where the fakes are G's output); the interpolate
    penalties run D once more, on their own points."""
    g, d = _pair()
    calls = []
    d.register_forward_hook(lambda *_: calls.append(1))
    gan = _gan(g, d, fused=fused, penalty=penalty,
               loss="wasserstein" if penalty in ("wgan-gp", "dragan") else "gan")
    gan.step(_real())
    assert len(calls) == forwards + (0 if fused else 1)  # the alternating G step runs D on fakes once more


def test_r1_on_the_loss_forward_equals_r1_on_its_own_forward():
    """The shared forward changes no number: the D step with R1 (lazy 2, so scaled by 2) equals the
    hand-written step whose penalty runs D again."""
    g, d = _pair()
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    gan = _gan(g, d, penalty=pygan.GradientPenalty("r1", weight=3.0, lazy=2))
    real = _real()
    stats = gan.d_step(real)
    fake = g_ref(_noise(torch.Generator().manual_seed(123), 16)).detach()
    x = real.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(d_ref(x).sum(), x, create_graph=True)
    l_d = pygan.discriminator_loss(d_ref(real), d_ref(fake), "gan") + 2 * 1.5 * gx.pow(2).sum(1).mean()
    _sgd_update(d_ref, torch.autograd.grad(l_d, list(d_ref.parameters())))
    _assert_params(d, d_ref, tol=1e-12, what="D")
    assert stats["penalty"].item() == pytest.approx(3.0 * gx.pow(2).sum(1).mean().item(), rel=1e-12)
    assert not real.requires_grad  # the caller's batch is left as it was
    assert gan.penalty.calls == 1 and gan.penalty.last_norms.shape == (16,)


def test_penalty_from_outputs_errors():
    r1 = pygan.GradientPenalty("r1", lazy=2)
    x = torch.randn(4, 2, requires_grad=True)
    r1.calls = 1
    with pytest.raises(RuntimeError, match="check .due"):
        r1.from_outputs(x.sum(1), x)
    with pytest.raises(ValueError, match="takes its own points"):
        pygan.GradientPenalty("wgan-gp").from_outputs(x.sum(1), x)


def test_lazy_penalty_applies_every_kth_d_step():
    gan = _gan(*_pair(), penalty=pygan.GradientPenalty("r1", weight=1.0, lazy=3))
    applied = [gan.d_step(_real(8, seed=i))["penalty"].item() > 0 for i in range(6)]
    assert applied == [True, False, False, True, False, False]


# ---------------------------------------------------------------------------------------------
# AMP and EMA
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("fused", [False, True])
def test_amp_steps_train_in_float32_with_finite_statistics(amp, fused):
    g, d = _pair(dtype=torch.float32, hidden=16)
    gan = pygan.GAN(g, d, amp=amp, fused=fused, penalty="r1", seed=1)
    before = [p.clone() for p in g.parameters()]
    for i in range(3):
        stats = gan.step(_real(16, seed=i).float())
    assert all(torch.isfinite(v) for v in stats.values())
    assert all(p.dtype == torch.float32 for p in g.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters())), "G did not move"
    assert (gan.d_scaler is not None) == (amp == "fp16")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_ema_update_matches_the_formula(backend, dtype, rng):
    name, device = backend
    from pygan._ops import backend as _backend

    for isa in _backend.cpu_isas() if name == "cpu" else [None]:  # every build of the CPU loop
        with _backend.cpu_isa(isa) if isa else contextlib.nullcontext():
            _check_ema_formula(name, device, dtype, rng)


def _check_ema_formula(name, device, dtype, rng):
    # 7 x 5 weights: the loop's 8-element steps and its scalar tail.
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3)).to(device, dtype)
    ema = pygan.EMA(net, decay=0.9, backend=name)
    avg = [p.detach().double().clone() for p in net.parameters()]
    for t in range(1, 4):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=rng).to(device, dtype))
        ema.update(net)
        beta = min(0.9, (1 + t) / (10 + t))
        for a, q, e in zip(avg, net.parameters(), ema.module.parameters()):
            # the reference from the kernel's own previous state: one rounding per step
            prev = a.clone()
            a.copy_(prev + (1 - beta) * (q.double() - prev))
            tol = {torch.float32: 1e-6, torch.float64: 1e-14}.get(dtype, 1e-2)
            assert torch.allclose(e.double(), a, rtol=tol, atol=tol), (name, dtype, t)
            a.copy_(e.double())
    assert ema.num_updates.item() == 3


@pytest.mark.parametrize("rampup", [True, False])
def test_ema_update_under_torch_compile_matches_eager(rampup, rng):
    """The compiled update takes the registered ops and the counter's device arithmetic instead of
    the CPU's one C call: the same weights, buffers, counter and weight (torch.compile silently drops
    a plain write into the 0-dim weight, which left the average where it started)."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    eager, compiled = pygan.EMA(net, 0.9, rampup=rampup), pygan.EMA(net, 0.9, rampup=rampup)
    update = torch.compile(compiled.update)
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=rng))
        net(torch.randn(5, 4, generator=rng))  # moves the running statistics
        eager.update(net)
        update(net)
    assert compiled.num_updates.item() == 3 and torch.equal(compiled.weight, eager.weight)
    for a, b in zip([*eager.module.parameters(), *eager.module.buffers()],
                    [*compiled.module.parameters(), *compiled.module.buffers()]):
        torch.testing.assert_close(b, a, rtol=2e-7, atol=0)


def test_ema_recompute_batch_norm_is_the_average_over_the_batches(rng):
    """The averaged copy's statistics become the mean over the batches of each batch's mean and
    unbiased variance (what momentum None gives), layer by layer through the train-mode forward;
    momenta and mode come back; a copy without batch norm and an empty input are handled."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2, momentum=0.3))
    ema = pygan.EMA(net, 0.9)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=rng))
    net(torch.randn(8, 3, generator=rng))  # the model's own running statistics
    ema.update(net)
    m = ema.module
    batches = [torch.randn(16, 3, generator=rng) for _ in range(5)]
    assert ema.recompute_batch_norm(batches) == 2
    with torch.no_grad():
        h = [m[0](b) for b in batches]
        for norm, nxt in ((m[1], m[3]), (m[4], None)):
            torch.testing.assert_close(norm.running_mean, torch.stack([x.mean(0) for x in h]).mean(0))
            torch.testing.assert_close(norm.running_var, torch.stack([x.var(0) for x in h]).mean(0))
            if nxt is not None:  # the next layer sees the batch-normalized activations
                h = [nxt(torch.relu(torch.nn.functional.batch_norm(x, None, None, norm.weight, norm.bias, True)))
                     for x in h]
    assert (m[1].momentum, m[4].momentum, m.training) == (0.1, 0.3, False)
    assert not torch.equal(m[1].running_mean, net[1].running_mean)
    before = m[1].running_mean.clone()
    with pytest.raises(ValueError, match="no batch"):
        ema.recompute_batch_norm([])
    assert torch.equal(m[1].running_mean, before)
    assert pygan.EMA(torch.nn.Linear(2, 2)).recompute_batch_norm([]) == 0
    # A forward that reaches only the first layer re-estimates it alone; one that raises changes nothing.
    second = m[4].running_mean.clone()
    assert ema.recompute_batch_norm(batches[:2], lambda copy, b: copy[:2](b)) == 1
    assert torch.equal(m[4].running_mean, second) and not torch.equal(m[1].running_mean, before)
    first = m[1].running_mean.clone()

    def broken(copy, b):
        copy[:2](b)
        raise RuntimeError("mid-pass")
    with pytest.raises(RuntimeError, match="mid-pass"):
        ema.recompute_batch_norm(batches, broken)
    assert torch.equal(m[1].running_mean, first) and m[1].momentum == 0.1 and not m.training
    ema.update(net)  # the next update copies the model's statistics again
    assert torch.equal(m[1].running_mean, net[1].running_mean)


def test_gan_recompute_ema_batch_norm():
    """GAN.recompute_ema_batch_norm draws its own noise (the global random state is untouched, the
    result repeatable), changes what sample() draws, and refuses a GAN without an EMA."""
    from pygan.models import DCGANDiscriminator, DCGANGenerator

    def build(ema):
        torch.manual_seed(5)
        return pygan.GAN(DCGANGenerator(8, channels=1, size=8, width=4), DCGANDiscriminator(1, 8, width=4),
                         ema=ema, seed=2)

    gan = build(0.9)
    for i in range(3):
        gan.step(torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(i)))
    live = [b.clone() for b in gan.generator.buffers()]
    drawn = gan.sample(4, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in gan.generator.modules())
    assert norms >= 1 and gan.recompute_ema_batch_norm(batches=3, batch_size=8) == norms
    assert torch.equal(torch.get_rng_state(), state)
    first = [b.clone() for b in gan.ema.module.buffers()]
    assert not all(torch.equal(a, b) for a, b in zip(first, live))
    assert not torch.equal(gan.sample(4, generator=torch.Generator().manual_seed(0)), drawn)
    gan.recompute_ema_batch_norm(batches=3, batch_size=8)
    assert all(torch.equal(a, b) for a, b in zip(first, gan.ema.module.buffers()))
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        gan.recompute_ema_batch_norm(batch_size=1)
    with pytest.raises(ValueError, match="batches"):
        gan.recompute_ema_batch_norm(batches=0)
    with pytest.raises(ValueError, match="no EMA generator"):
        build(None).recompute_ema_batch_norm()


def test_ema_without_rampup_and_buffers_copied():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = pygan.EMA(net, decay=0.5, rampup=False)
    old = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(4, 2))  # moves the running statistics
    ema.update(net)
    for o, p, e in zip(old, net.parameters(), ema.module.parameters()):
        assert torch.allclose(e, 0.5 * o + 0.5 * p.detach(), atol=1e-6)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    with pytest.raises(ValueError, match="decay"):
        pygan.EMA(net, decay=1.0)


def _ema_check(check: str, monkeypatch) -> None:
    """EMA's per-update check of the walked trees: "compiled" (pygan._autograd, where built) or
    "python" (the fall-back)."""
    from pygan._ops import backend as _backend

    if check == "python":
        monkeypatch.setattr(_backend, "load_nodes", lambda: None)
    elif _backend.load_nodes() is None:
        pytest.skip("pygan._autograd is not built here")


@pytest.mark.parametrize("check", ["compiled", "python"])
def test_ema_follows_the_model_after_to_and_replaced_parameters(check, monkeypatch):
    """The module trees are walked once; parameters are read from them on every update, so .to()
    and a replaced parameter are seen, and a model of another shape is an error. With the
    per-update check in C++ (pygan._autograd) and in Python."""
    import copy

    _ema_check(check, monkeypatch)

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    ema = pygan.EMA(net, decay=0.5, rampup=False)
    ema.update(net)
    net.to(torch.float64)
    ema.to(torch.float64)
    net[0].weight = torch.nn.Parameter(torch.full((4, 3), 3.0, dtype=torch.float64))
    old = [p.detach().clone() for p in ema.module.parameters()]
    ema.update(net)
    for o, p, e in zip(old, net.parameters(), ema.module.parameters()):
        assert e.dtype == torch.float64
        assert torch.allclose(e, 0.5 * o + 0.5 * p.detach(), atol=1e-12)
    assert copy.deepcopy(ema)._trees is None  # a copy does not drag the model along
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)).double()
    with pytest.raises(ValueError, match="differ from the averaged copy"):
        ema.update(other)


@pytest.mark.parametrize("check", ["compiled", "python"])
def test_ema_sees_swapped_data_and_replaced_buffers(check, monkeypatch):
    """Later updates skip the walk while both trees hold the same objects. Data swapped in place
    for another dtype (``.double()`` on the model alone) or shape is an error, never a kernel
    reading past a tensor; buffers that ``.to()`` replaced are the ones copied. Both checks."""
    _ema_check(check, monkeypatch)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = pygan.EMA(net, decay=0.5, rampup=False)
    ema.update(net)
    net.to(torch.float64)
    ema.to(torch.float64)
    net(torch.randn(5, 3, dtype=torch.float64))  # moves the (new) running statistics
    ema.update(net)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    assert ema.module[1].running_mean.dtype == torch.float64
    net.float()
    with pytest.raises(ValueError, match="differ from the averaged copy"):
        ema.update(net)
    net.double()
    ema.update(net)
    net[0].weight.data = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="differ from the averaged copy"):
        ema.update(net)


def test_ema_counter_stays_float64_through_dtype_conversions():
    """Converting the EMA (.half(), .to(dtype)) converts the averaged copy; its counter and weight
    stay float64 with their exact values (the kernels read them as float64). A counter assigned in
    another dtype is a clear error, never a kernel reading past it."""
    net = torch.nn.Linear(3, 2)
    ema = pygan.EMA(net, decay=0.999)
    for _ in range(3):
        ema.update(net)
    ema.num_updates.fill_(4097.0)  # not a float16 number
    ema.half()
    assert ema.module.weight.dtype == torch.float16
    assert ema.num_updates.dtype == torch.float64 and ema.num_updates.item() == 4097.0
    net.half()
    ema.update(net)
    assert ema.num_updates.item() == 4098.0
    assert ema.weight.item() == pytest.approx(1.0 - min(4099.0 / 4108.0, 0.999), rel=1e-15)
    ema.num_updates = torch.zeros((), dtype=torch.float32)
    with pytest.raises(ValueError, match="counter and weight must stay float64"):
        ema.update(net)


def test_ema_of_a_channels_last_model_matches_the_formula(rng):
    """A model converted to channels-last (dense, its elements in another order) is averaged like a
    contiguous one, before and after the conversion; converting the model but not the average, or
    a parameter that is not dense, is a clear error, never elements paired out of order."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    ema = pygan.EMA(net, decay=0.5, rampup=False)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        net.to(memory_format=memory_format)
        ema.to(memory_format=memory_format)
        before = [q.detach().clone() for q in ema.module.parameters()]
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=rng))
        ema.update(net)
        for q, q0, p in zip(ema.module.parameters(), before, net.parameters()):
            assert torch.allclose(q, q0 + 0.5 * (p - q0), rtol=1e-6, atol=1e-7)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    net.to(memory_format=torch.contiguous_format)  # the average left channels-last
    with pytest.raises(ValueError, match="in the same layout"):
        ema.update(net)
    strided = torch.nn.Linear(3, 2)
    strided.weight = torch.nn.Parameter(torch.randn(3, 2).t())
    with pytest.raises(ValueError, match=r"parameter 0 must be a contiguous \(or channels-last\) floating-point "
                                         r"tensor, got torch.float32 with strides \(1, 2\)"):
        pygan.EMA(strided)


def test_clip_weights_of_a_channels_last_model():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)).to(memory_format=torch.channels_last)
    with torch.no_grad():
        net[0].weight.normal_()
    expect = net[0].weight.detach().clamp(-0.1, 0.1)
    pygan.clip_weights_(net, 0.1)
    assert torch.equal(net[0].weight, expect)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_gan_samples_from_the_ema_generator():
    g, d = _pair(dtype=torch.float32)
    gan = pygan.GAN(g, d, ema=0.5, seed=3)
    gan.step(_real(8).float())
    z_gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(gan.sample(4, generator=z_gen()), gan.ema.module(torch.randn(4, 3, generator=z_gen())))
    assert not torch.equal(gan.sample(4, generator=z_gen()), gan.sample(4, ema=False, generator=z_gen()))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

def _run(gan, steps, seed0):
    for i in range(steps):
        m = 8 * gan.n_critic
        labels = None if gan.num_classes is None else (torch.arange(m) + i) % gan.num_classes
        gan.step(_real(m, seed=seed0 + i).float(), labels=labels)


@pytest.mark.parametrize("options", [
    dict(),
    dict(fused=True, ema=0.9, n_critic=2, penalty=pygan.GradientPenalty("wgan-gp", lazy=3), loss="wasserstein"),
    dict(amp="fp16", penalty="r1", ema=0.99),
    dict(bigan=True),
    dict(bigan=True, fused=True, ema=0.9, n_critic=2, penalty=pygan.GradientPenalty("wgan-gp", lazy=3),
         loss="wasserstein"),
    dict(penalty="r1+r2+wgan-gp", fused=True, ema=0.9, loss="relativistic", amp="bf16"),
    dict(conditional=True, penalty=[pygan.GradientPenalty("r1", lazy=2), pygan.GradientPenalty("r2")],
         n_critic=2, ema=0.9),
], ids=["plain", "fused-ema-lazy-wgan", "fp16", "bigan", "bigan-fused-ema-lazy-wgan", "r1+r2+gp-bf16-fused",
        "conditional-lazy-r1+r2"])
def test_n_steps_save_load_n_steps_equals_2n_steps_bit_for_bit(options, tmp_path):
    def fresh():
        g, d = _pair(dtype=torch.float32, hidden=16)
        opts = {k: copy.deepcopy(v) for k, v in options.items()}
        if opts.pop("conditional", False):
            torch.manual_seed(0)
            g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=16, depth=2, num_classes=3)
            d = models.MLPDiscriminator((2,), hidden=16, depth=2, num_classes=3)
        if opts.pop("bigan", False):
            e = models.MLPEncoder((2,), 3, hidden=16, depth=2)
            d = models.JointMLPDiscriminator((2,), 3, hidden=16, depth=2)
            return pygan.BiGAN(g, e, d, seed=11, **opts)
        return pygan.GAN(g, d, seed=11, **opts)

    straight = fresh()
    _run(straight, 6, 0)

    first = fresh()
    _run(first, 3, 0)
    first.save(tmp_path / "ck.pt")
    del first
    torch.manual_seed(999)  # the global state must come from the checkpoint, not from here
    resumed = pygan.GAN.load(tmp_path / "ck.pt", resume=True)  # a BiGAN checkpoint loads as a BiGAN
    assert resumed.steps == 3 and type(resumed) is type(straight)
    _run(resumed, 3, 3)
    _assert_params(straight._g_player, resumed._g_player, tol=0, what="G (and E)")
    _assert_params(straight.discriminator, resumed.discriminator, tol=0, what="D")
    if straight.ema is not None:
        _assert_params(straight.ema.module, resumed.ema.module, tol=0, what="EMA")
    for a, b in zip(straight.d_optimizer.state.values(), resumed.d_optimizer.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    gan = _gan(*_pair())
    path = gan.save(tmp_path / "ck.pt")
    before = path.read_bytes()

    def broken(obj, f, *a, **k):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        gan.save(path)
    assert path.read_bytes() == before, "a failed save damaged the previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_load_rejects_a_mismatched_gan(tmp_path):
    gan = _gan(*_pair(), ema=0.9)
    gan.save(tmp_path / "ck.pt")
    other = _gan(*_pair())
    with pytest.raises(ValueError, match="ema"):
        other.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=False))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        pygan.GAN.load(tmp_path / "missing.pt")


class _Shift(torch.nn.Module):
    """A generator that is not one of pygan.models (checkpoints can only pickle it)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, z):
        return self.lin(z)


class _TwoPoints:
    """A custom prior (checkpoints can only pickle it)."""

    def __call__(self, n, device, generator=None):
        return torch.randint(0, 2, (n, 3), generator=generator, device=device).float()


def test_load_is_safe_and_needs_pickled_parts_passed_or_trusted(tmp_path):
    """Checkpoints are plain data: pygan's networks, Normal/Uniform priors and torch.optim classes
    are rebuilt from their arguments; a custom network or prior must be passed, or the file trusted.
    Nothing is silently replaced: a custom prior was once swapped for Normal(latent_dim)."""
    _, d = _pair(dtype=torch.float32)
    gan = pygan.GAN(_Shift(), d, prior=_TwoPoints(), seed=1)
    gan.step(_real(8).float())
    path = gan.save(tmp_path / "ck.pt")
    with pytest.raises(ValueError, match=r"checkpoint's generator is a .*_Shift.*Pass generator= yourself, or trusted=True"):
        pygan.GAN.load(path)
    with pytest.raises(ValueError, match=r"checkpoint's prior is a .*_TwoPoints.*Pass prior="):
        pygan.GAN.load(path, generator=_Shift())
    z = torch.ones(4, 3)
    for loaded in (pygan.GAN.load(path, generator=_Shift(), prior=_TwoPoints()), pygan.GAN.load(path, trusted=True)):
        assert isinstance(loaded.prior, _TwoPoints)
        assert torch.equal(loaded.generate(z), gan.generate(z))
        assert loaded.steps == 1
    # pygan's own networks, prior and optimizers need nothing: dtype and options come back too.
    g, d = _pair(dtype=torch.float64)
    plain = pygan.GAN(g, d, prior=pygan.Uniform(3), g_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.5))
    plain.step(_real(8))
    again = pygan.GAN.load(plain.save(tmp_path / "plain.pt"))
    assert isinstance(again.prior, pygan.Uniform) and again.prior.shape == (3,)
    assert type(again.g_optimizer) is torch.optim.SGD and again.g_optimizer.defaults["momentum"] == 0.5
    assert next(again.generator.parameters()).dtype == torch.float64
    _assert_params(plain.generator, again.generator, tol=0, what="G")


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_load_refuses_foreign_and_damaged_files_without_running_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": 2, "payload": _Boom()}, tmp_path / "evil.pt")
    with pytest.raises(pygan.checkpoint.NotACheckpoint, match="evil.pt is not a pygan checkpoint, or is damaged"):
        pygan.GAN.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    # Bytes that are no checkpoint fail inside the unpickler in many ways (IndexError, KeyError,
    # AssertionError, ...): each one is the same clear error. Random files and truncated checkpoints.
    gan = _gan(*_pair())
    gan.save(tmp_path / "good.pt")
    good = (tmp_path / "good.pt").read_bytes()
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    junk = [rng.bytes(int(n)) for n in rng.integers(1, 2000, 60)] + [good[: len(good) // k] for k in (2, 3, 10)]
    for i, data in enumerate(junk):
        (tmp_path / "junk.pt").write_bytes(data)
        with pytest.raises(pygan.checkpoint.NotACheckpoint, match="junk.pt is not a pygan checkpoint"):
            pygan.GAN.load(tmp_path / "junk.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(pygan.checkpoint.NotACheckpoint, match="foreign.pt is not a pygan checkpoint .it holds no pygan format tag"):
        pygan.GAN.load(tmp_path / "foreign.pt")
    torch.save({"format": 1}, tmp_path / "old.pt")
    with pytest.raises(pygan.checkpoint.NotACheckpoint, match="format 1; this pygan reads format 2"):
        pygan.GAN.load(tmp_path / "old.pt")


def test_flipped_bytes_inside_a_checkpoint_never_load_as_other_weights(tmp_path):
    """A checkpoint with flipped bytes either loads exactly the saved state (the bytes were padding
    or ignored header fields) or is a NotACheckpoint naming the file: the entries' checksums are
    verified before torch.load reads them. Fresh random positions each run."""
    gan = _gan(*_pair())
    gan.step(_real(8))
    gan.save(tmp_path / "good.pt")
    good = bytearray((tmp_path / "good.pt").read_bytes())
    expect = [p.detach().clone() for p in gan.discriminator.parameters()]
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    loaded = 0
    for trial in range(40):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), int(rng.integers(1, 9))):
            data[pos] ^= int(rng.integers(1, 256))
        (tmp_path / "flipped.pt").write_bytes(bytes(data))
        try:
            other = pygan.GAN.load(tmp_path / "flipped.pt")
        except pygan.checkpoint.NotACheckpoint as e:
            assert "flipped.pt" in str(e)
            continue
        loaded += 1
        for a, b in zip(expect, other.discriminator.parameters()):
            assert torch.equal(a, b.detach()), f"trial {trial} loaded other weights"
    assert loaded < 40  # most flips land in checked bytes


def test_load_restores_global_random_states_only_to_resume(tmp_path):
    gan = _gan(*_pair())
    path = gan.save(tmp_path / "ck.pt")
    torch.manual_seed(5)
    expect = torch.rand(3)
    torch.manual_seed(5)
    pygan.GAN.load(path)  # to sample: the process's random stream goes on untouched
    assert torch.equal(torch.rand(3), expect)
    saved = torch.load(path, weights_only=True)["global_rng"]["torch"]
    pygan.GAN.load(path, resume=True)
    assert torch.equal(torch.get_rng_state(), saved)


def test_failed_load_state_dict_leaves_the_gan_as_it_was(tmp_path):
    gan = _gan(*_pair())
    gan.step(_real(8))
    before = copy.deepcopy(gan.state_dict())
    other = _gan(*_pair(seed=1))
    other.step(_real(8))
    state = other.state_dict()
    state["format"] = 2
    state["d_optimizer"] = {"state": {}, "param_groups": [{"params": [0]}]}  # loaded after G and D; does not fit
    with pytest.raises(ValueError):
        gan.load_state_dict(state)
    for key in ("generator", "discriminator"):
        for name, value in before[key].items():
            assert torch.equal(gan.state_dict()[key][name], value), f"{key}.{name} was half-loaded"
    assert gan.steps == before["steps"]


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------

def _poison_at(step):
    """An on_sample hook that sets D's first weight to NaN after ``step``."""
    def hook(gan, done, out):
        if done == step:
            with torch.no_grad():
                next(gan.discriminator.parameters()).fill_(float("nan"))
    return hook


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    g, d = _pair(dtype=torch.float32, hidden=16)
    gan = pygan.GAN(g, d, seed=4)
    with pytest.raises(pygan.TrainingDiverged, match=r"d_loss, .*not finite at steps 7-8; the last good checkpoint"):
        gan.fit("ring", 20, batch_size=16, out=tmp_path, log_every=2, checkpoint_every=4, sample_every=1,
                on_sample=_poison_at(6), progress=False)
    kept = pygan.GAN.load(tmp_path / "checkpoint.pt")
    assert kept.steps == 4 and all(torch.isfinite(p).all() for p in kept.discriminator.parameters())
    assert [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()] == [2, 4, 6]
    g, d = _pair(dtype=torch.float32, hidden=16)
    stopped = pygan.GAN(g, d, seed=4)
    hist = stopped.fit("ring", 20, batch_size=16, out=tmp_path / "stop", log_every=2, sample_every=1,
                       on_sample=_poison_at(6), progress=False, nonfinite="stop")
    assert [h["step"] for h in hist] == [2, 4, 6] and stopped.steps == 8
    assert not (tmp_path / "stop" / "checkpoint.pt").exists()


class _BadBatchAt(pygan.data.Sampler):
    """Ring samples, with one batch of NaN (a corrupt record) on the ``bad``-th draw."""

    def __init__(self, bad):
        self.ring, self.calls, self.bad = pygan.data.ring(), 0, bad
        self.device, self.shape = self.ring.device, self.ring.shape

    def sample(self, n, generator=None):
        self.calls += 1
        x = self.ring.sample(n, generator).double()
        return x.fill_(float("nan")) if self.calls == self.bad else x


def test_skip_leaves_out_nonfinite_updates():
    gan = _gan(*_pair())
    hist = gan.fit(_BadBatchAt(3), 6, batch_size=8, log_every=3, progress=False, nonfinite="skip")
    assert gan.skipped_steps == 1 and gan.steps == 6
    assert all(math.isfinite(v) for h in hist for v in h.values())
    assert all(torch.isfinite(p).all() for p in gan.discriminator.parameters())
    with pytest.raises(ValueError, match="nonfinite must be one of 'raise', 'stop', 'skip'"):
        gan.fit("ring", 8, nonfinite="ignore")


def test_log_never_repeats_or_mixes_runs(tmp_path):
    """A fresh fit into a used folder starts a fresh log; a resume from an earlier checkpoint (a
    crash after it) drops the records past it, so each step is logged once."""
    def fresh():
        g, d = _pair(dtype=torch.float32, hidden=16)
        return pygan.GAN(g, d, seed=4)

    fresh().fit("ring", 6, batch_size=16, out=tmp_path, log_every=2, progress=False)
    fresh().fit("ring", 4, batch_size=16, out=tmp_path, log_every=2, progress=False)
    steps = lambda: [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert steps() == [2, 4]
    crashed = fresh()
    crashed.fit("ring", 4, batch_size=16, out=tmp_path / "c", log_every=2, checkpoint_every=4, progress=False)
    with open(tmp_path / "c" / "log.jsonl", "a") as f:  # steps 5-6 logged, then a crash before the checkpoint
        f.write(json.dumps({"step": 6, "d_loss": 1.0}) + "\n" + '{"step": 8, "d_lo')
    fresh().fit("ring", 8, batch_size=16, out=tmp_path / "c", log_every=2, resume=True, progress=False)
    assert [json.loads(x)["step"] for x in (tmp_path / "c" / "log.jsonl").read_text().splitlines()] == [2, 4, 6, 8]


def test_fit_takes_numpy_arrays_and_lists():
    import numpy as np

    rows = np.random.default_rng(0).normal(size=(64, 2))
    for data in (rows, rows.astype(np.float32), rows.tolist()):
        gan = _gan(*_pair(dtype=torch.float64 if isinstance(data, np.ndarray) and data.dtype == np.float64
                          else torch.float32))
        gan.fit(data, 2, batch_size=8, progress=False)
        assert gan.steps == 2
    with pytest.raises(TypeError, match="rows of numbers of one length"):
        pygan.data.as_sampler([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        _gan(*_pair()).fit("ring", 2, batch_size=0)
    with pytest.raises(ValueError, match="log_every must be a positive int, got 0"):
        _gan(*_pair()).fit("ring", 2, log_every=0)


def test_fit_logs_checkpoints_draws_and_resumes_exactly(tmp_path):
    def fresh():
        g, d = _pair(dtype=torch.float32, hidden=16)
        return pygan.GAN(g, d, seed=4)

    calls = []
    straight = fresh()
    straight.fit("ring", 8, batch_size=16, out=tmp_path / "a", log_every=4, progress=False)
    part = fresh()
    hist = part.fit("ring", 4, batch_size=16, out=tmp_path / "b", log_every=2, sample_every=2,
                    on_sample=lambda gan, step, out: calls.append(step), progress=False)
    assert [h["step"] for h in hist] == [2, 4] and calls == [2, 4]
    assert set(pygan.gan.STAT_NAMES) <= set(hist[0]) | {"divergence"}
    resumed = fresh()
    resumed.fit("ring", 8, batch_size=16, out=tmp_path / "b", log_every=2, resume=True, progress=False)
    assert resumed.steps == 8
    _assert_params(straight.generator, resumed.generator, tol=0, what="G after resume")
    lines = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6, 8]
    assert (tmp_path / "b" / "checkpoint.pt").is_file()


def _cosine(start, end, step, horizon):
    return end + (start - end) * (1 + math.cos(math.pi * min(step, horizon) / horizon)) / 2


def test_anneal_steps_with_the_cosines_learning_rate_and_penalty_weight():
    """An annealed GAN's steps equal steps of a GAN whose lr and R1 weight are set by hand to the
    cosine's values, through the horizon and past it (where they hold)."""
    horizon, lr_end, w0, w_end = 4, 0.01, 2.0, 0.25
    annealed = _gan(*_pair(), penalty=pygan.GradientPenalty("r1", weight=w0),
                    anneal=pygan.Anneal(horizon, lr=lr_end, penalty_weight=w_end))
    by_hand = _gan(*_pair(), penalty=pygan.GradientPenalty("r1", weight=w0))
    for step in range(horizon + 2):
        for opt in (by_hand.g_optimizer, by_hand.d_optimizer):
            opt.param_groups[0]["lr"] = _cosine(LR, lr_end, step, horizon)
        by_hand.penalty.weight = _cosine(w0, w_end, step, horizon)
        real = _real(seed=step)
        a, b = annealed.step(real), by_hand.step(real)
        assert torch.allclose(a["penalty"], b["penalty"], rtol=1e-13, atol=0), step
        _assert_params(annealed.discriminator, by_hand.discriminator, what=f"D at step {step}")
        _assert_params(annealed.generator, by_hand.generator, what=f"G at step {step}")
    assert annealed.g_optimizer.param_groups[0]["lr"] == pytest.approx(lr_end, rel=1e-15)
    assert annealed.penalty.weight == w0  # the weight it was built with; the anneal scales it
    assert "anneal=Anneal(steps=4, lr=0.01, penalty_weight=0.25)" in repr(annealed)


def test_an_annealed_run_resumes_exactly_from_a_checkpoint(tmp_path):
    def fresh():
        g, d = _pair(dtype=torch.float32, hidden=16)
        return pygan.GAN(g, d, penalty="r1+r2", seed=4, anneal=pygan.Anneal(6, lr=1e-5, penalty_weight=0.5))

    straight = fresh()
    straight.fit("ring", 8, batch_size=16, progress=False)
    part = fresh()
    part.fit("ring", 3, batch_size=16, out=tmp_path, progress=False)
    resumed = pygan.GAN.load(tmp_path / "checkpoint.pt", resume=True)
    assert resumed.anneal == part.anneal and resumed.d_optimizer.param_groups[0]["initial_lr"] == 2e-4
    resumed.fit("ring", 8, batch_size=16, progress=False)
    _assert_params(straight.generator, resumed.generator, tol=0, what="G after resume")
    _assert_params(straight.discriminator, resumed.discriminator, tol=0, what="D after resume")


def test_a_channels_last_gan_resumes_channels_last_and_exactly(tmp_path):
    """Networks converted to channels-last are rebuilt channels-last from a checkpoint (its spec
    records the layout), with Adam's moments and the EMA in the same layout, and the resumed steps
    are the uninterrupted run's to the bit; a contiguous network's spec has no such record."""
    from pygan.models import DCGANDiscriminator, DCGANGenerator

    def fresh():
        torch.manual_seed(3)
        g = DCGANGenerator(8, channels=1, size=16, width=4).to(memory_format=torch.channels_last)
        d = DCGANDiscriminator(1, 16, width=4, minibatch_std=2).to(memory_format=torch.channels_last)
        return pygan.GAN(g, d, penalty="r1+r2", ema=0.9, seed=2, fused=True)

    def batch(i):
        return torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(i))

    straight, part = fresh(), fresh()
    for i in range(4):
        straight.step(batch(i))
    for i in range(2):
        part.step(batch(i))
    part.save(tmp_path / "c.pt")
    resumed = pygan.GAN.load(tmp_path / "c.pt", resume=True)
    conv = [m.weight for m in resumed.discriminator.modules()  # one input channel: both layouts at once
            if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1]
    assert len(conv) >= 2 and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in conv)
    for w in conv:
        state = resumed.d_optimizer.state[w]
        assert state["exp_avg"].stride() == w.stride() and state["exp_avg_sq"].stride() == w.stride()
    for p, q in zip(resumed.ema.module.parameters(), resumed.generator.parameters()):
        assert p.stride() == q.stride()
    for i in range(2, 4):
        resumed.step(batch(i))
    _assert_params(straight.generator, resumed.generator, tol=0, what="G after resume")
    _assert_params(straight.discriminator, resumed.discriminator, tol=0, what="D after resume")
    _assert_params(straight.ema.module, resumed.ema.module, tol=0, what="EMA after resume")
    assert "memory_format" not in pygan.checkpoint.module_spec(DCGANDiscriminator(1, 8, width=4))


def test_the_log_records_the_annealed_values(tmp_path):
    """Each log record holds the learning rates and penalty weights the anneal set for its last step."""
    g, d = _pair(dtype=torch.float32, hidden=16)
    penalties = [pygan.GradientPenalty("r1", weight=2.0), pygan.GradientPenalty("r2", weight=1.0)]
    gan = pygan.GAN(g, d, penalty=penalties, seed=4, anneal=pygan.Anneal(6, lr=1e-5, penalty_weight=0.5))
    records = gan.fit("ring", 8, batch_size=16, out=tmp_path, log_every=2, progress=False)
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    for r in records:
        last = r["step"] - 1  # the step the values were set for, counted from 0
        assert r["g_lr"] == pytest.approx(_cosine(2e-4, 1e-5, last, 6), rel=1e-12)
        assert r["d_lr"] == r["g_lr"]
        assert r["r1_weight"] == pytest.approx(_cosine(2.0, 0.5, last, 6), rel=1e-12)
        assert r["r2_weight"] == pytest.approx(_cosine(1.0, 0.5, last, 6), rel=1e-12)
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == records


def test_anneal_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="Anneal steps .* must be a positive int, got 0"):
        pygan.Anneal(0, lr=1e-4)
    with pytest.raises(ValueError, match="needs lr or penalty_weight"):
        pygan.Anneal(10)
    with pytest.raises(ValueError, match="Anneal lr must be positive"):
        pygan.Anneal(10, lr=0.0)
    with pytest.raises(ValueError, match="Anneal penalty_weight must be non-negative"):
        pygan.Anneal(10, penalty_weight=-1.0)
    with pytest.raises(TypeError, match="anneal must be a pygan.Anneal, got str"):
        _gan(*_pair(), anneal="cosine")
    with pytest.raises(ValueError, match="anneals the gradient penalties, and this GAN has none"):
        _gan(*_pair(), anneal=pygan.Anneal(10, penalty_weight=0.1))
    with pytest.raises(ValueError, match="r1 has weight 0"):
        _gan(*_pair(), penalty=pygan.GradientPenalty("r1", weight=0.0), anneal=pygan.Anneal(10, penalty_weight=0.1))
    _gan(*_pair(), anneal=pygan.Anneal(10, lr=1e-3))  # a learning rate alone needs no penalty


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

def test_clear_errors():
    g, d = _pair()
    with pytest.raises(ValueError, match="unknown loss"):
        pygan.GAN(g, d, loss="gann")
    with pytest.raises(ValueError, match="n_critic"):
        pygan.GAN(g, d, n_critic=0)
    with pytest.raises(ValueError, match="amp"):
        pygan.GAN(g, d, amp="fp8")
    with pytest.raises(ValueError, match="unknown penalty"):
        pygan.GAN(g, d, penalty="gp")
    with pytest.raises(ValueError, match="clip"):
        pygan.GAN(g, d, clip=-1.0)
    with pytest.raises(ValueError, match="capture=True .* CUDA device"):
        pygan.GAN(g, d, capture=True)
    with pytest.raises(TypeError, match="discriminator must be a torch.nn.Module"):
        pygan.GAN(g, lambda x: x)
    with pytest.raises(ValueError, match="pass prior="):
        pygan.GAN(torch.nn.Linear(3, 2).double(), d)
    with pytest.raises(TypeError, match="g_optimizer"):
        pygan.GAN(g, d, g_optimizer="adam")
    gan = pygan.GAN(g, d)
    with pytest.raises(ValueError, match="non-empty batch"):
        gan.d_step(torch.zeros(0, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating point"):
        gan.d_step(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        gan.g_step()
    with pytest.raises(ValueError, match=r"real samples have shape \(3,\) per sample and the generator makes \(2,\)"):
        gan.d_step(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown backend 'metal'"):
        pygan.GAN(g, d, backend="metal")


@pytest.mark.gpu
@pytest.mark.parametrize("fused", [False, True])
def test_captured_steps_equal_eager_steps(fused):
    def fresh(capture):
        torch.manual_seed(0)
        g = models.MLPGenerator(8, (2,), 32).cuda()
        d = models.MLPDiscriminator((2,), 32).cuda()
        return pygan.GAN(g, d, capture=capture, fused=fused, n_critic=2, seed=1, ema=0.9,
                         penalty=pygan.GradientPenalty("r1", weight=1.0, lazy=4))

    eager, captured = fresh(False), fresh(True)
    data = pygan.data.ring(device="cuda")
    for i in range(10):
        real = data.sample(64, torch.Generator("cuda").manual_seed(i))
        # the same noise: eager draws from the default generator too when it is seeded alike
        torch.cuda.manual_seed(100 + i)
        a = eager.step(real)
        torch.cuda.manual_seed(100 + i)
        b = captured.step(real)
        assert torch.isfinite(b["d_loss"]) and torch.isfinite(b["g_loss"])
        for key in ("d_loss", "g_loss"):  # float32 kernels replayed: equal up to rounding
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    for p, q in zip(captured.g.module.parameters(), eager.g.module.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert len(captured._graphs) == 2, "lazy penalty: one graph with, one without"
    assert captured.penalty.calls == eager.penalty.calls == 20


# ---------------------------------------------------------------------------------------------
# DDP
# ---------------------------------------------------------------------------------------------

DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist
import pygan
from pygan import models
rank, world, out, fused, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5]
bigan, classes, cycle = model == "bigan", (3 if model == "conditional" else None), model == "cyclegan"
if world > 1:
    dist.init_process_group("gloo", rank=rank, world_size=world)
torch.manual_seed(0)
g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=8, depth=2, num_classes=classes).double()
if cycle:  # two translation generators and two PatchGAN discriminators (instance norm: per sample)
    nets = [models.TranslationGenerator(1, 8, width=4, blocks=1).double() for _ in range(2)] + \
        [models.PatchDiscriminator(1, 8, width=4).double() for _ in range(2)]
    g, d = pygan.cyclegan.CycleGenerator(*nets[:2]), pygan.cyclegan.CycleDiscriminator(*nets[2:])
elif bigan:
    e = models.MLPEncoder((2,), 3, hidden=8, depth=2).double()
    d = models.JointMLPDiscriminator((2,), 3, hidden=8, depth=2).double()
else:
    d = models.MLPDiscriminator((2,), hidden=8, depth=2, num_classes=classes).double()
Z = torch.randn(4, 16, 3, dtype=torch.float64)        # noise of every call, for the combined batch
R = torch.randn(4, 16, *((2, 1, 8, 8) if cycle else (2,)), dtype=torch.float64)  # real batches (CycleGAN: pairs)
Y = torch.randint(3, (4, 16))                         # their labels (conditional)
m = 16 // world
calls = [0]
def prior(n, device, generator):
    z = Z[calls[0], rank * m:(rank + 1) * m]
    calls[0] += 1
    return z
# BiGAN: R1 alone; the others R1 + R2, both on the loss's own forwards (R2 through G's output when fused).
penalty = [pygan.GradientPenalty("r1", weight=2.0)] + ([] if bigan else [pygan.GradientPenalty("r2", weight=1.0)])
options = dict(prior=prior, fused=fused, penalty=penalty,
               g_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.05), d_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.05))
if cycle:  # the pools differ per rank (each draws its own): parity holds without one
    del options["prior"]
    gan = pygan.CycleGAN(*nets, pool_size=0, **options)
else:
    gan = pygan.BiGAN(g, e, d, **options) if bigan else pygan.GAN(g, d, **options)
assert gan.distributed == (world > 1)
for step in range(2):
    gan.step(R[step, rank * m:(rank + 1) * m], labels=Y[step, rank * m:(rank + 1) * m] if classes else None)
torch.save([p.detach() for p in list(gan._g_player.parameters()) + list(d.parameters())], out)
if world > 1:
    dist.barrier()  # both ranks are done with the group before either tears it down
    dist.destroy_process_group()
# The work and the file are done: skip the interpreter's teardown, where gloo's threads can abort
# the process on a loaded machine ("terminate called without an active exception").
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("model", ["gan", "bigan", "conditional", "cyclegan"])
@pytest.mark.parametrize("fused", [False, True])
def test_ddp_two_processes_equal_one_process_on_the_combined_batch(fused, model, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), OMP_NUM_THREADS="1")
    flags = ["1" if fused else "0", model]
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", str(tmp_path / f"p{r}.pt"), *flags],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    procs.append(subprocess.Popen([sys.executable, str(script), "0", "1", str(tmp_path / "single.pt"), *flags],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode()[-3000:]
    p0, p1, single = (torch.load(tmp_path / f) for f in ("p0.pt", "p1.pt", "single.pt"))
    assert all(torch.equal(a, b) for a, b in zip(p0, p1)), "ranks hold different parameters"
    for a, b in zip(p0, single):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12), (a - b).abs().max()


def test_lerp_op_registration():
    from pygan._ops.multi_tensor import lerp_

    w = torch.tensor(0.25, dtype=torch.float64)
    torch.library.opcheck(lerp_, ([torch.randn(5), torch.randn(2, 3)], [torch.randn(5), torch.randn(2, 3)], w, "cpu"))


def test_repr_names_the_options_that_differ_from_the_defaults():
    g, d = _pair()
    text = repr(pygan.GAN(g, d, penalty=pygan.GradientPenalty("r1", weight=0.1, lazy=4), ema=0.99, fused=True))
    assert text.startswith("GAN(MLPGenerator, MLPDiscriminator, loss='gan', penalty=r1(weight=0.1, lazy=4), fused=True")
    assert "ema=0.99" in text and "steps=0" in text and "n_critic" not in text


def test_the_default_adam_is_torchs_fused_kernel_with_the_same_updates():
    """pygan.gan.adam (the engine's default optimizer and the command line's): torch's fused Adam,
    capturable for a CUDA graph; five updates equal torch's default per-parameter Adam to float32
    rounding (the kernels order their arithmetic differently)."""
    g, d = _pair(0)
    gan = pygan.GAN(g, d, penalty="r1")
    assert gan.g_optimizer.defaults["fused"] and gan.d_optimizer.defaults["fused"]
    assert gan.d_optimizer.defaults["betas"] == (0.5, 0.999) and gan.d_optimizer.defaults["lr"] == 2e-4
    captured = pygan.gan.adam([torch.zeros(2, requires_grad=True)], 1e-3, (0.5, 0.9), capture=True)
    assert captured.defaults["capturable"] and not captured.defaults["fused"]
    rng = torch.Generator().manual_seed(torch.seed() % 2 ** 32)
    w = torch.randn(64, 32, generator=rng)
    ours, torchs = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    opts = [pygan.gan.adam([ours], 1e-3, (0.0, 0.99)), torch.optim.Adam([torchs], lr=1e-3, betas=(0.0, 0.99))]
    for _ in range(5):
        grad = torch.randn(64, 32, generator=rng)
        for p, opt in zip((ours, torchs), opts):
            p.grad = grad.clone()
            opt.step()
    # Each update moves a weight by at most lr (Adam's step is bounded by lr): a few float32
    # roundings of the weight's size and of lr.
    tol = 8 * torch.finfo(torch.float32).eps * (w.abs() + 5e-3)
    assert ((ours - torchs).abs() <= tol).all()
