"""Gradient penalties: the fused head against the float64 reference on every backend and dtype,
each kind against plain double backprop on MLP and conv discriminators, and the known traps
(per-sample norm and interpolation weight, clipping after the step, AMP, DDP, torch.compile)."""

import contextlib
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import pygan
from pygan import penalties
from pygan._ops.penalty_head import KINDS as HEADS
from pygan._ops.penalty_head import PenaltyHead, penalty_head, penalty_head_backward
from pygan._ops.multi_tensor import clip_

from . import reference as ref
from .conftest import free_port

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# Error of the head against float64 on the same (rounded) gradient: a float32 sum of squares; the
# gradient's own backward is rounded to its dtype.
RTOL = {torch.float32: 2e-6, torch.float64: 1e-12, torch.bfloat16: 1e-2, torch.float16: 2e-3}
# (600, 2): rows shorter than a vector, over more than one block of the CPU backward's row factors.
SHAPES = [(1, 3), (7, 2), (5, 3, 4, 4), (33, 1), (600, 2), (2, 1100), (3, 2049)]


def _grad(shape, dtype, device, rng, scale=1.0):
    return (torch.randn(shape, generator=rng, dtype=torch.float64) * scale).to(dtype).to(device)


def _close(out, expect, rtol, what, scale=None):
    scale = expect.abs().max().item() if scale is None else scale
    err = (out.double().cpu() - expect.double().cpu()).abs().max().item()
    assert err <= rtol * scale + 1e-300, f"{what}: error {err:.3e} > {rtol * scale:.3e}"


# --------------------------------------------------------------------------------------------
# The fused head
# --------------------------------------------------------------------------------------------

def _twin(g, kind, center, weight, backend, per_sample=False, norms=True):
    """The eager twin called like the registered op (it takes the constants as one tuple)."""
    return PenaltyHead.apply(g, (kind, center, weight, backend, per_sample, norms))


@pytest.mark.parametrize("op", [penalty_head, _twin], ids=["op", "eager"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head", list(HEADS))
def test_head_matches_float64_reference(backend, head, dtype, op, rng):
    name, device = backend
    for shape in SHAPES:
        # Norms around the center, so both branches of the one-sided head are taken.
        g = _grad(shape, dtype, device, rng, scale=1.3 / math.sqrt(math.prod(shape[1:])))
        g.requires_grad_(True)
        center, weight = 0.9, 7.5
        p, norms = op(g, HEADS[head], center, weight, name)[:2]
        expect, expect_norms = ref.penalty_head(g.detach(), head, center, weight)
        assert p.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        what = f"{head} {dtype} {shape} seed={rng.initial_seed()}"
        # (n - c)^2 cancels near the center: judge the error against the terms' size before it.
        size = weight * (expect_norms**2 + center**2).mean().item()
        _close(p, expect, RTOL[torch.float32 if dtype != torch.float64 else dtype] * 4, what + " value",
               scale=size)
        _close(norms, expect_norms, RTOL[torch.float32 if dtype != torch.float64 else dtype] * 4, what + " norms")
        # Backward, with an upstream on both the penalty and the norms.
        up = torch.rand((), generator=rng, dtype=torch.float64) + 0.5
        up_n = torch.randn(shape[0], generator=rng, dtype=torch.float64)
        (p * up.to(p.dtype).to(device) + (norms * up_n.to(norms.dtype).to(device)).sum()).backward()
        g64 = g.detach().double().cpu().requires_grad_(True)
        e, en = ref.penalty_head(g64, head, center, weight)
        (e * up + (en * up_n).sum()).backward()
        assert g.grad.dtype == dtype
        # d/dg_i = (2 w / B (n_i - c) up + up_n_i) g_i / n_i: near the center n_i - c cancels like the
        # value, so judge against the factor's size before it, (n_i + c).
        n64 = expect_norms.clamp_min(torch.finfo(torch.float64).tiny)
        factor = 2 * weight / shape[0] * (n64 + center) * up + up_n.abs()
        size_g = (g.detach().double().cpu().abs().flatten(1) * (factor / n64)[:, None]).max().item()
        _close(g.grad, g64.grad.to(dtype).double(), RTOL[dtype] * 4, what + " grad",
               scale=max(size_g, g64.grad.abs().max().item()))


@pytest.mark.parametrize("op", [penalty_head, _twin], ids=["op", "eager"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head", list(HEADS))
def test_head_per_sample_values_match_float64_reference(backend, head, dtype, op, rng):
    name, device = backend
    for shape in SHAPES:
        g = _grad(shape, dtype, device, rng, scale=1.3 / math.sqrt(math.prod(shape[1:])))
        g.requires_grad_(True)
        center, weight = 0.9, 7.5
        out = op(g, HEADS[head], center, weight, name, True)
        p, values = out[0], out[-1]
        expect, expect_norms = ref.penalty_values(g.detach(), head, center, weight)
        what = f"{head} {dtype} {shape} seed={rng.initial_seed()}"
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        assert values.dtype == acc and values.shape == (shape[0],)
        # Per sample, (n - c)^2 cancels near the center: judge against the terms before it.
        size = weight * (expect_norms**2 + center**2)
        err = (values.double().cpu() - expect).abs()
        assert (err <= RTOL[acc] * 4 * size).all(), f"{what} values: error {err.max().item():.3e}"
        _close(p, expect.mean(), RTOL[acc] * 4, what + " mean", scale=size.mean().item())
        # Backward with an upstream on every sample's value and on the mean.
        up = torch.randn(shape[0], generator=rng, dtype=torch.float64)
        up_p = torch.rand((), generator=rng, dtype=torch.float64)
        ((values * up.to(acc).to(device)).sum() + p * up_p.to(acc).to(device)).backward()
        g64 = g.detach().double().cpu().requires_grad_(True)
        e, en = ref.penalty_values(g64, head, center, weight)
        ((e * up).sum() + e.mean() * up_p).backward()
        n64 = en.detach().clamp_min(torch.finfo(torch.float64).tiny)
        factor = 2 * weight * (n64 + center) * (up.abs() + up_p / shape[0])
        size_g = (g.detach().double().cpu().abs().flatten(1) * (factor / n64)[:, None]).max().item()
        _close(g.grad, g64.grad.to(dtype).double(), RTOL[dtype] * 4, what + " grad",
               scale=max(size_g, g64.grad.abs().max().item()))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head", list(HEADS))
def test_head_penalty_alone_equals_the_full_node(backend, head, dtype, rng):
    """The penalty alone (the twin's one-output node, whose norms share the factors' memory) gives
    the bits of the node that also returns the norms, value and gradient (the latter is checked
    against float64 above)."""
    name, device = backend
    for shape in SHAPES:
        g = _grad(shape, dtype, device, rng, scale=1.3 / math.sqrt(math.prod(shape[1:])))
        results = []
        for norms in (True, False):
            x = g.clone().requires_grad_(True)
            out = _twin(x, HEADS[head], 0.9, 7.5, name, False, norms)
            (out[0] if norms else out).backward()
            results.append((out[0] if norms else out, x.grad))
        (p, grad), (p_alone, grad_alone) = results
        assert torch.equal(p, p_alone) and torch.equal(grad, grad_alone), f"{head} {dtype} {shape}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head", list(HEADS))
def test_head_penalty_alone_under_any_upstream(backend, head, dtype, rng):
    """The penalty alone with an upstream other than 1 (scaled in place: within an ulp of the full
    node's (up * coef_i) * g_ij), a second backward of the same graph and a backward under
    ``create_graph`` (both from the backward kernel: the full node's bits)."""
    name, device = backend
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    eps = torch.finfo(dtype).eps + 4 * torch.finfo(acc).eps  # one rounding to dtype after acc's
    for shape in SHAPES:
        g = _grad(shape, dtype, device, rng, scale=1.3 / math.sqrt(math.prod(shape[1:])))
        up = torch.tensor(0.5 + torch.rand((), generator=rng).item() * 4, dtype=acc, device=device)
        x = g.clone().requires_grad_(True)
        (full,) = torch.autograd.grad(_twin(x, HEADS[head], 0.9, 7.5, name)[0], x, up)
        p = _twin(x, HEADS[head], 0.9, 7.5, name, False, False)
        (first,) = torch.autograd.grad(p, x, up, retain_graph=True)
        (second,) = torch.autograd.grad(p, x, up, retain_graph=True)
        (graphed,) = torch.autograd.grad(p, x, up, create_graph=True)
        what = f"{head} {dtype} {shape} up={up.item()}"
        assert first.dtype == dtype and torch.equal(second, full) and torch.equal(graphed, full), what
        tiny = torch.finfo(dtype).tiny  # a subnormal product has no relative accuracy
        err = (first.double() - full.double()).abs()
        assert (err <= eps * full.double().abs() + tiny).all(), f"{what}: error {err.max().item():.3e}"


def test_head_penalty_alone_without_grad_matches():
    """Without a gradient to take (no_grad, or an input that needs none), the penalty alone is the
    same value."""
    g = torch.randn(300, 5, dtype=torch.float64)
    x = g.clone().requires_grad_(True)
    p = _twin(x, 0, 0.9, 7.5, "cpu", False, False)
    with torch.no_grad():
        q = _twin(x, 0, 0.9, 7.5, "cpu", False, False)
    assert torch.equal(p, q) and torch.equal(p, _twin(g, 0, 0.9, 7.5, "cpu", False, False))
    assert q.grad_fn is None


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("head", list(HEADS))
def test_head_gradcheck(head, per_sample, rng):
    g = torch.randn(5, 3, 2, generator=rng, dtype=torch.float64).requires_grad_(True)
    keep = (0, 1, 3) if per_sample else (0, 1)
    fn = lambda x: tuple(penalty_head(x, HEADS[head], 0.7, 3.0, "cpu", per_sample)[i] for i in keep)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (g,))
    eager = lambda x: _twin(x, HEADS[head], 0.7, 3.0, "cpu", per_sample)  # noqa: E731
    assert torch.autograd.gradcheck(eager, (g,))


def test_head_triton_agrees_with_cpu(rng):
    if pygan._ops.backend.unavailable_reason("triton", torch.device("cpu")) is not None:
        pytest.skip("Triton not usable here")
    for shape in SHAPES:
        g = _grad(shape, torch.float32, "cpu", rng)
        a = penalty_head(g, 0, 1.0, 10.0, "cpu", True)
        b = penalty_head(g, 0, 1.0, 10.0, "triton", True)
        for x, y in zip(a, b):
            _close(x, y, 1e-5, f"{shape}")


def test_head_extremes(backend):
    name, device = backend
    # A zero row: the norm has no derivative; like torch's norm, its gradient is zero, never NaN.
    g = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1e4, -1e4]], device=device).requires_grad_(True)
    for head in HEADS.values():
        p, norms, _, values = penalty_head(g, head, 1.0, 1.0, name, True)
        g.grad = None
        (p + values.sum()).backward()
        assert torch.isfinite(g.grad).all()
        assert g.grad[0].abs().sum() == 0
    _close(norms, torch.tensor([0.0, 5.0, math.sqrt(2) * 1e4]), 1e-6, "norms")
    # float16 gradients whose squares overflow float16: the head sums in float32.
    h = torch.full((2, 4), 1000.0, dtype=torch.float16, device=device)
    p = penalty_head(h, 2, 0.0, 1.0, name)[0]
    assert p.item() == pytest.approx(4e6, rel=1e-6)
    # NaN and inf propagate to the penalty.
    for bad in (float("nan"), float("inf")):
        b = torch.tensor([[1.0, bad], [1.0, 1.0]], device=device)
        assert not math.isfinite(penalty_head(b, 0, 1.0, 1.0, name)[0].item())


def test_head_ops_pass_opcheck(rng):
    g = torch.randn(4, 3, generator=rng).requires_grad_(True)
    torch.library.opcheck(penalty_head, (g, 0, 1.0, 10.0, "cpu"))
    torch.library.opcheck(penalty_head, (g, 2, 1.0, 10.0, "cpu", True))
    coef, norms = torch.rand(4), torch.rand(4) + 0.1
    torch.library.opcheck(penalty_head_backward, (g.detach(), coef, norms, torch.tensor(1.0), None, "cpu"))
    torch.library.opcheck(clip_, ([torch.randn(5), torch.randn(2, 3)], 0.1, "cpu"))


# --------------------------------------------------------------------------------------------
# Every kind against plain double backprop
# --------------------------------------------------------------------------------------------

def _mlp(rng, d_in=5):
    torch.manual_seed(rng.initial_seed())
    return nn.Sequential(nn.Linear(d_in, 17), nn.LeakyReLU(0.2), nn.Linear(17, 9), nn.Tanh(),
                         nn.Linear(9, 1)).double()


def _conv(rng):
    torch.manual_seed(rng.initial_seed())
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 5, 3, 2, 1),
                         nn.SiLU(), nn.Flatten(), nn.Linear(5 * 2 * 3, 1)).double()


def _param_grads(module):
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def _points(kind, real, fake, seed):
    """The points each kind evaluates at, drawn exactly as pygan draws them (same generator)."""
    g = torch.Generator().manual_seed(seed)
    if kind in ("wgan-gp", "one-sided"):
        eps = torch.rand(real.shape[0], generator=g).double().view(-1, *[1] * (real.dim() - 1))
        return eps * real + (1 - eps) * fake
    if kind == "r1":
        return real
    if kind == "r2":
        return fake
    return penalties.dragan_points(real, generator=g)


@pytest.mark.parametrize("model", ["mlp", "conv"])
@pytest.mark.parametrize("kind", penalties.KINDS)
def test_every_kind_equals_double_backprop(kind, model, rng):
    disc = _mlp(rng) if model == "mlp" else _conv(rng)
    for batch in (1, 6):
        shape = (batch, 5) if model == "mlp" else (batch, 3, 7, 9)
        # Non-contiguous inputs: every second element of the last dimension.
        wide = shape[:-1] + (2 * shape[-1],)
        real = torch.randn(wide, generator=rng, dtype=torch.float64)[..., ::2]
        fake = torch.randn(shape, generator=rng, dtype=torch.float64) * 2
        assert not real.is_contiguous()
        weight, center = 3.0, 0.8
        disc.zero_grad()
        p = penalties.gradient_penalty(disc, real, fake if kind in penalties.NEEDS_FAKE else None, kind=kind,
                                       weight=weight, center=center,
                                       generator=torch.Generator().manual_seed(11))
        p.backward()
        ours = _param_grads(disc)
        head = {"wgan-gp": "two-sided", "dragan": "two-sided", "one-sided": "one-sided"}.get(kind, "squared")
        w = weight / 2 if head == "squared" else weight
        disc.zero_grad()
        expect = ref.gradient_penalty(disc, _points(kind, real, fake, 11), head, center, w)
        expect.backward()
        what = f"{kind} {model} batch={batch} seed={rng.initial_seed()}"
        assert p.item() == pytest.approx(expect.item(), rel=1e-12, abs=1e-300), what
        for a, b in zip(ours, _param_grads(disc)):
            _close(a, b, 1e-10, what, scale=b.abs().max().item() + 1e-300)


def test_functional_forms_match_gradient_penalty(rng):
    disc = _mlp(rng)
    real = torch.randn(8, 5, generator=rng, dtype=torch.float64)
    fake = torch.randn(8, 5, generator=rng, dtype=torch.float64)
    x = real.clone().requires_grad_(True)
    a = penalties.r1(disc(x), x, weight=4.0)
    b = penalties.gradient_penalty(disc, real, kind="r1", weight=4.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-14)
    y = fake.clone().requires_grad_(True)
    assert penalties.r2(disc(y), y).item() == pytest.approx(
        penalties.gradient_penalty(disc, real, fake, kind="r2").item(), rel=1e-14)
    eps = torch.rand(8, generator=rng, dtype=torch.float64)
    xh = penalties.interpolate(real, fake, eps)
    expect = ref.gradient_penalty(disc, xh, "two-sided")
    assert penalties.wgan_gp(disc(xh), xh).item() == pytest.approx(expect.item(), rel=1e-13)
    assert penalties.one_sided(disc(xh), xh).item() == pytest.approx(
        ref.gradient_penalty(disc, xh, "one-sided").item(), rel=1e-13, abs=1e-300)


# --------------------------------------------------------------------------------------------
# Known traps (DESIGN.md section 5)
# --------------------------------------------------------------------------------------------

class HalfSquaredNorm(nn.Module):
    """D(x) = ||x||^2 / 2 per sample, so the input gradient of sample i is x_i itself."""

    def forward(self, x):
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_trap_norm_is_per_sample_over_all_dimensions():
    # Samples whose gradients have norms 0.5 and 1.5 over all of C x H x W: the per-sample
    # two-sided penalty is 10 * mean(0.25, 0.25) = 2.5. A norm over the whole batch gives 3.43,
    # a per-pixel norm something else again.
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    x[0, 1, 0, 1] = 0.5
    x[1].fill_(1.5 / math.sqrt(12))
    p = penalties.gradient_penalty(HalfSquaredNorm(), x, x, kind="wgan-gp")
    assert p.item() == pytest.approx(2.5, rel=1e-12)


def test_trap_one_interpolation_weight_per_sample(rng):
    # real = 1 and fake = 0 everywhere, so x̂ is the interpolation weight itself, exactly (recovering
    # it as (x̂ - fake) / (real - fake) from random data divides rounding errors by small gaps).
    real = torch.ones(64, 3, 4, 4)
    fake = torch.zeros(64, 3, 4, 4)
    xh = penalties.interpolate(real, fake, generator=rng)
    # Every sample lies on its own segment: one weight over all its elements ...
    per_sample = xh.detach().flatten(1)
    assert torch.equal(per_sample, per_sample[:, :1].expand_as(per_sample))
    # ... and the weights differ between samples (not one weight for the batch).
    assert per_sample[:, 0].std() > 0.1
    assert xh.requires_grad and xh.grad_fn is None


def test_trap_clipping_after_the_optimizer_step():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.RMSprop(critic.parameters(), lr=0.5)
    c = 0.01
    for _ in range(3):
        opt.zero_grad()
        pygan.discriminator_loss(critic(torch.randn(16, 2)), critic(torch.randn(16, 2) + 1),
                                 "wasserstein").backward()
        opt.step()
        pygan.clip_weights_(critic, c)  # after the step: the weights the next evaluation uses
        assert max(p.abs().max().item() for p in critic.parameters()) <= c


def test_trap_sigmoid_bce_loses_precision():
    # Logits in, never probabilities: at a logit of -110 sigmoid underflows to 0 and BCE on it
    # returns its clamp, while the logit form keeps the exact value.
    v = torch.tensor([-110.0])
    naive = nn.BCELoss()(torch.sigmoid(v), torch.ones(1))
    assert naive.item() == pytest.approx(100.0)  # sigmoid underflowed, log clamped: wrong by 10
    assert pygan.generator_loss(v, "gan").item() == pytest.approx(110.0, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Lazy regularization
# --------------------------------------------------------------------------------------------

class CountingMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_lazy_applies_every_k_steps_scaled_by_k(rng):
    disc = CountingMLP()
    real = torch.randn(5, 3, generator=rng)
    full = penalties.gradient_penalty(disc, real, kind="r1").item()
    reg = penalties.GradientPenalty("r1", lazy=4)
    values = []
    for _ in range(8):
        disc.calls = 0
        assert reg.due == (reg.calls % 4 == 0)
        values.append(reg(disc, real).item())
        assert disc.calls == (1 if len(values) in (1, 5) else 0)
    assert values[0] == pytest.approx(4 * full, rel=1e-6) and values[4] == values[0]
    assert all(v == 0 for i, v in enumerate(values) if i not in (0, 4))
    # The counter is part of the state: a resumed run stays in phase.
    state = reg.state_dict()
    again = penalties.GradientPenalty("r1", lazy=4)
    again.load_state_dict(state)
    assert again.calls == 8 and again.due


# --------------------------------------------------------------------------------------------
# Weight clipping
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_clip_matches_clamp(backend, dtype, rng):
    name, device = backend
    from pygan._ops import backend as _backend

    for isa in _backend.cpu_isas() if name == "cpu" else [None]:  # every build of the CPU loop
        with _backend.cpu_isa(isa) if isa else contextlib.nullcontext():
            tensors = [torch.randn(s, generator=rng).to(dtype).to(device) for s in [(1,), (7, 3), (70001,), (2, 1, 5)]]
            tensors[1][0, 0] = float("nan")
            tensors[2][:3] = torch.tensor([float("inf"), -float("inf"), float("nan")])
            expect = [t.clamp(-0.3, 0.3) for t in tensors]
            clip_(tensors, 0.3, name)
            for t, e in zip(tensors, expect):
                assert torch.equal(t.isnan(), e.isnan()), isa
                assert torch.equal(t.nan_to_num(), e.nan_to_num()), isa


def test_clip_weights_many_parameters_and_modules():
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Linear(3, 3) for _ in range(30)])  # 60 tensors
    for p in net.parameters():
        p.data.mul_(10)
    expect = [p.detach().clamp(-0.05, 0.05) for p in net.parameters()]
    pygan.clip_weights_(net, 0.05)
    assert all(torch.equal(p.detach(), e) for p, e in zip(net.parameters(), expect))


# --------------------------------------------------------------------------------------------
# AMP
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_amp_penalty_is_finite_and_close(dtype, rng):
    # A smooth activation: through a LeakyReLU, a pre-activation within rounding of 0 flips its
    # slope between float16 and float32, and the input gradient jumps by a whole unit's share (errors
    # up to 4% of the largest gradient). With tanh the error is rounding alone: at most 1.5 ulps of
    # the dtype over 300 seeds, checked here against 16.
    torch.manual_seed(rng.initial_seed())
    disc = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
    real, fake = torch.randn(16, 4, generator=rng), torch.randn(16, 4, generator=rng)
    disc.zero_grad()
    p32 = penalties.gradient_penalty(disc, real, fake, generator=torch.Generator().manual_seed(3))
    p32.backward()
    g32 = _param_grads(disc)
    # fp16 with GradScaler's default scale: steps whose scaled gradients overflow are skipped and
    # the scale backs off, as for any loss; from then on the penalty is finite and unscaled.
    scaler = torch.amp.GradScaler("cpu") if dtype == torch.float16 else None
    opt = torch.optim.SGD(disc.parameters(), lr=0.0)
    for _ in range(30):
        disc.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            p = penalties.gradient_penalty(disc, real, fake, scaler=scaler,
                                           generator=torch.Generator().manual_seed(3))
        if scaler is None:
            p.backward()
            break
        scale = scaler.get_scale()
        scaler.scale(p).backward()
        scaler.step(opt)  # unscales the gradients in place
        scaler.update()
        if math.isfinite(p.item()) and scaler.get_scale() == scale:
            break
    assert p.dtype == torch.float32 and math.isfinite(p.item())
    assert p.item() == pytest.approx(p32.item(), rel=5e-2)
    tol = 16 * torch.finfo(dtype).eps
    for a, b in zip(_param_grads(disc), g32):
        assert torch.isfinite(a).all()
        _close(a, b, tol, f"{dtype} grads seed={rng.initial_seed()}", scale=b.abs().max().item())


def test_amp_scaler_does_not_change_the_penalty(rng):
    disc = _mlp(rng).float()
    real, fake = torch.randn(6, 5, generator=rng), torch.randn(6, 5, generator=rng)
    plain = penalties.gradient_penalty(disc, real, fake, generator=torch.Generator().manual_seed(1))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaled = penalties.gradient_penalty(disc, real, fake, generator=torch.Generator().manual_seed(1),
                                        scaler=scaler)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-6)


# --------------------------------------------------------------------------------------------
# DDP and torch.compile
# --------------------------------------------------------------------------------------------

DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist
from torch import nn
import pygan
rank, world, kind, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", rank=rank, world_size=world)
torch.manual_seed(0)
disc = nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).double()
real = torch.randn(8, 3, dtype=torch.float64)
fake = torch.randn(8, 3, dtype=torch.float64) + 1
ddp = nn.parallel.DistributedDataParallel(disc)
half = slice(4 * rank, 4 * rank + 4)
loss = pygan.discriminator_loss(ddp(real[half]), ddp(fake[half]).flatten(), "wasserstein")
loss = loss + pygan.gradient_penalty(ddp, real[half], fake[half] if kind != "r1" else None, kind=kind,
                                     generator=torch.Generator().manual_seed(100 + rank))
loss.backward()
torch.save([p.grad for p in disc.parameters()], out)
dist.barrier()  # both ranks are done with the group before either tears it down
dist.destroy_process_group()
# The work and the file are done: skip the interpreter's teardown, where gloo's threads can abort
# the process on a loaded machine ("terminate called without an active exception").
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
def test_ddp_gives_the_combined_batch_gradient(kind, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", kind, str(tmp_path / f"g{r}.pt")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode()[-3000:]
    g0, g1 = torch.load(tmp_path / "g0.pt"), torch.load(tmp_path / "g1.pt")
    assert all(torch.equal(a, b) for a, b in zip(g0, g1)), "ranks disagree"
    # One process: the mean over both halves of the loss and of each half's penalty.
    torch.manual_seed(0)
    disc = nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).double()
    real = torch.randn(8, 3, dtype=torch.float64)
    fake = torch.randn(8, 3, dtype=torch.float64) + 1
    loss = pygan.discriminator_loss(disc(real), disc(fake).flatten(), "wasserstein")
    for r in range(2):
        half = slice(4 * r, 4 * r + 4)
        loss = loss + 0.5 * pygan.gradient_penalty(disc, real[half], fake[half] if kind != "r1" else None, kind=kind,
                                                   generator=torch.Generator().manual_seed(100 + r))
    loss.backward()
    for a, p in zip(g0, disc.parameters()):
        _close(a, p.grad, 1e-12, f"ddp {kind}", scale=p.grad.abs().max().item())


@pytest.mark.slow
def test_compiled_critic_step_equals_eager(rng):
    # float64: the compiled graph reorders sums, and a float32 parameter gradient that is a sum with
    # cancellation differs by more than 1e-5 of the largest one on some seeds; in float64 both
    # orders agree to 1e-10 of it, which still tells any wrong term apart.
    disc = _mlp(rng)
    real = torch.randn(8, 5, generator=rng, dtype=torch.float64)
    fake = torch.randn(8, 5, generator=rng, dtype=torch.float64)

    def critic_step(real, fake):
        loss = pygan.discriminator_loss(disc(real), disc(fake), "wasserstein")
        return loss + penalties.gradient_penalty(disc, real, kind="r1")

    grads = []
    for fn in (critic_step, torch.compile(critic_step)):
        disc.zero_grad()
        fn(real, fake).backward()
        grads.append(_param_grads(disc))
    for a, b in zip(*grads):
        _close(a, b, 1e-10, "compiled", scale=b.abs().max().item() + 1e-12)

    # The functional form on outputs of a compiled discriminator: double backward through the
    # compiled graph is PyTorch's clear error, never a silent wrong number.
    compiled = torch.compile(disc)
    x = real.clone().requires_grad_(True)
    try:
        p = penalties.r1(compiled(x), x)
        disc.zero_grad()
        p.backward()
    except RuntimeError as e:
        assert "double backward" in str(e)
    else:
        got = _param_grads(disc)
        disc.zero_grad()
        penalties.r1(disc(x), x).backward()
        for a, b in zip(got, _param_grads(disc)):
            _close(a, b, 1e-10, "compiled functional", scale=b.abs().max().item() + 1e-12)
