"""The fused losses against the float64 reference, on every backend and dtype, with fresh random
inputs on every run."""

import contextlib
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import pygan
from pygan import divergences
from pygan._ops import adversarial_loss as loss_op
from pygan._ops.loss_terms import LOSS_NAMES, TERM_CODES, loss_spec

from . import reference as ref

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# Relative tolerance of the result against the float64 reference on the same (rounded) inputs, in
# ulps of the result's dtype: float16 and bfloat16 results are float32 math rounded once to the
# dtype (half an ulp, and the float32 error: 2 ulps cover both); float32 allows 16 ulps for the
# polynomial and Halley approximations of the loops; float64 kernels use float64 versions of the
# same approximations, held to 1e-12. The references are within 32 float64 ulps of mpmath
# (tests/test_reference.py), so they never decide a comparison.
RTOL = {torch.float32: 16 * torch.finfo(torch.float32).eps, torch.float64: 1e-12,
        torch.bfloat16: 2 * torch.finfo(torch.bfloat16).eps, torch.float16: 2 * torch.finfo(torch.float16).eps}


def _floor(dtype: torch.dtype) -> float:
    """The absolute error allowed at any value: one spacing of the dtype's subnormal grid (a float16
    gradient of 1e-8 rounds by up to 3e-8), and the compute dtype's smallest normal number, below
    which the kernels' exponentials may flush to zero."""
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    smallest_subnormal = torch.finfo(dtype).tiny * torch.finfo(dtype).eps
    return max(smallest_subnormal, torch.finfo(compute).tiny)


CASES = [pytest.param(name, {}, id=name) for name in LOSS_NAMES if name != "alpha"] + [
    pytest.param("alpha", {"alpha": a}, id=f"alpha={a}") for a in (-1.0, 0.5, 2.0, 3.5)
]


def _logits(shape, dtype, device, rng, scale=3.0):
    return (torch.randn(shape, generator=rng, dtype=torch.float64) * scale).to(dtype).to(device)


def _shapes(loss, rng):
    """Real and fake shapes: PatchGAN maps against a flat batch, odd sizes, batch 1."""
    if loss == "relativistic":
        s = [(1,), (7, 1), (3, 1, 5, 5), (257,)][int(torch.randint(4, (1,), generator=rng))]
        return s, s
    pairs = [((1,), (7,)), ((8, 1), (5, 1)), ((3, 1, 5, 5), (33,)), ((257,), (2, 1, 4, 4))]
    return pairs[int(torch.randint(len(pairs), (1,), generator=rng))]


def _scale(terms):
    """The size of a loss for tolerances: the mean absolute term per side, added."""
    return sum(t.abs().mean() for t in terms if t is not None)


def _shift(loss, params):
    """The size of the constant a per-sample term subtracts: the alpha loss's real term is
    softplus(-u) - 1 / (1 - alpha), which cancels to a small value near that constant, so its
    rounding is relative to the constant, not to the result (alpha = -1: 0.512 - 0.5 = 0.012)."""
    if loss != "alpha":
        return 0.0
    a = params["alpha"]
    return abs(1.0 / (1.0 - a)) + abs(1.0 / a)


def _assert_close(out, expect, scale, rtol, what):
    # Where the exact value overflows the output's dtype, the kernel must give the same inf.
    rounded = expect.to(out.dtype).double()
    over = torch.isinf(rounded) & torch.isfinite(expect)
    assert torch.equal(out.double()[over], rounded[over]), f"{what}: overflow differs"
    out, expect = out[~over], expect[~over]
    if out.numel() == 0:
        return
    err = (out.double() - expect).abs().max().item()
    bound = rtol * (scale + expect.abs().max().item()) + _floor(out.dtype)
    assert err <= bound, f"{what}: error {err:.3e} > {bound:.3e}"


def _roles(loss):
    # G: the generator; GE: a joint generator player (BiGAN's G and E); *_sat: the minimax forms.
    if loss == "relativistic":  # GE is G's loss there; pairing needs one shape
        return ["D", "G", "G_sat"]
    return ["D", "G", "G_sat", "GE", "GE_sat"]


def _run(role, real, fake, loss, reduction, backend, params):
    if role == "D":
        return pygan.discriminator_loss(real, fake, loss, reduction=reduction, backend=backend, **params)
    if role.startswith("GE"):
        return pygan.joint_generator_loss(real, fake, loss, saturating=role == "GE_sat", reduction=reduction,
                                          backend=backend, **params)
    return pygan.generator_loss(fake, loss, saturating=role == "G_sat", real_logits=real,
                                reduction=reduction, backend=backend, **params)


def _run_ref(role, real, fake, loss, reduction, params):
    if role == "D":
        return ref.discriminator_loss(real, fake, loss, reduction, **params)
    if role.startswith("GE"):
        return ref.joint_generator_loss(real, fake, loss, role == "GE_sat", reduction, **params)
    return ref.generator_loss(fake, loss, saturating=role == "G_sat", real=real, reduction=reduction, **params)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("loss,params", CASES)
def test_matches_float64_reference(backend, loss, params, dtype, rng):
    """Values and gradients (with a random, non-unit upstream gradient) for D, G and saturating G,
    under every reduction."""
    name, device = backend
    rs, fs = _shapes(loss, rng)
    real0 = _logits(rs, dtype, device, rng)
    fake0 = _logits(fs, dtype, device, rng)
    for role in _roles(loss):
        uses_real = role in ("D", "GE", "GE_sat") or loss.startswith("relativistic")
        for reduction in ("mean", "sum", "none"):
            real = real0.detach().clone().requires_grad_(uses_real)
            fake = fake0.detach().clone().requires_grad_()
            out = _run(role, real, fake, loss, reduction, name, params)
            real64 = real0.detach().double().cpu().clone().requires_grad_(uses_real)
            fake64 = fake0.detach().double().cpu().clone().requires_grad_()
            expect = _run_ref(role, real64, fake64, loss, reduction, params)
            what = f"{role} {loss} {reduction} {dtype} seed={rng.initial_seed()}"
            if reduction == "none":
                terms = [t for t in expect if t is not None]
                outs = [t for t in out if t is not None]
                assert [t is None for t in out] == [t is None for t in expect], what
                for o, e in zip(outs, terms):
                    assert o.dtype == dtype and o.shape == e.shape and o.device.type == device
                    _assert_close(o.cpu(), e.detach(), _shift(loss, params), RTOL[dtype], what)
                ups = [torch.randn(e.shape, generator=rng, dtype=torch.float64) for e in terms]
                torch.autograd.backward([o for o in outs], [u.to(dtype).to(device) for u in ups])
                torch.autograd.backward(terms, [u.to(dtype).double() for u in ups])
                # Through relativistic_average's means every gradient gathers a sum over the other
                # side's upstream-weighted derivatives, which random upstreams can cancel: judge the
                # float32 sums against the sum of magnitudes. The terms are monotone, so that is the
                # gradient for |upstream|.
                grad_scale = _abs_upstream_grads(role, real0, fake0, loss, params, ups, uses_real)
            else:
                assert out.dtype == dtype and out.shape == () and out.device.type == device
                scale = _scale(_run_ref(role, real64.detach(), fake64.detach(), loss, "none", params))
                scale = scale * (1 if reduction == "mean" else real0.numel() + fake0.numel())
                _assert_close(out.cpu(), expect.detach(), float(scale), RTOL[dtype], what)
                up = float(torch.randn((), generator=rng)) + 2.0
                (out * up).backward()
                (expect * torch.tensor(up, dtype=dtype).double()).backward()
                grad_scale = {"real": 0.0, "fake": 0.0}
            for x, x64, label in ((real, real64, "real"), (fake, fake64, "fake")):
                if not x.requires_grad:
                    continue
                assert x.grad is not None and x.grad.dtype == dtype, f"{what}: no {label} grad"
                g, g64 = x.grad.cpu(), x64.grad  # g in its own dtype: overflow is judged there
                if g64 is None:
                    g64 = torch.zeros_like(g, dtype=torch.float64)
                _assert_close(g, g64, grad_scale[label], 5 * RTOL[dtype], f"{what} grad {label}")


def _abs_upstream_grads(role, real0, fake0, loss, params, ups, uses_real):
    """The largest float64 reference gradient of each side for upstreams |u| (reduction "none")."""
    if loss != "relativistic_average":
        return {"real": 0.0, "fake": 0.0}
    r = real0.detach().double().cpu().clone().requires_grad_(uses_real)
    f = fake0.detach().double().cpu().clone().requires_grad_()
    terms = [t for t in _run_ref(role, r, f, loss, "none", params) if t is not None]
    torch.autograd.backward(terms, [u.abs() for u in ups])
    return {label: x.grad.abs().max().item() if x.grad is not None else 0.0 for label, x in (("real", r), ("fake", f))}


@pytest.mark.parametrize("loss,params", CASES)
def test_gradcheck_float64(backend, loss, params, rng):
    name, device = backend
    real = _logits((5,), torch.float64, device, rng, scale=1.5).requires_grad_()
    fake = _logits((5,) if loss == "relativistic" else (4,), torch.float64, device, rng, scale=1.5).requires_grad_()
    for reduction in ("mean", "none"):
        def d_loss(r, f):
            out = pygan.discriminator_loss(r, f, loss, reduction=reduction, backend=name, **params)
            return tuple(t for t in out if t is not None) if reduction == "none" else out

        def g_loss(r, f):
            out = pygan.generator_loss(f, loss, real_logits=r, reduction=reduction, backend=name, **params)
            return tuple(t for t in out if t is not None) if reduction == "none" else out

        assert torch.autograd.gradcheck(d_loss, (real, fake))
        assert torch.autograd.gradcheck(g_loss, (real, fake))


# Terms are differences of O(1) quantities near their zeros: allow a few ulps of 1 there.
ATOL = {d: 4 * torch.finfo(d).eps for d in DTYPES}
EXTREMES = [-1e4, -100.0, -20.0, -1.0, -1e-6, 0.0, 1e-6, 1.0, 20.0, 100.0, 1e4]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("loss,params", CASES)
def test_extremes(backend, loss, params, dtype):
    """|v| up to 1e4: every term and derivative is finite wherever the float64 value fits in the
    dtype, and equals it there; where the true value overflows the dtype, the kernel gives inf."""
    name, device = backend
    if dtype == torch.float16:
        values = [v for v in EXTREMES if abs(v) < 6e4]
    else:
        values = EXTREMES
    x = torch.tensor(values, dtype=torch.float64).to(dtype)
    spec = loss_spec(loss, params)
    if spec.kind.startswith("relativistic"):
        real, fake = x, x.flip(0)
    else:
        real, fake = x, x.clone()
    for role in ("D", "G_sat", "GE"):
        r = real.to(device).clone().requires_grad_()
        f = fake.to(device).clone().requires_grad_()
        out = _run(role, r, f, loss, "none", name, params)
        r64 = real.double().clone().requires_grad_()
        f64 = fake.double().clone().requires_grad_()
        exp = _run_ref(role, r64, f64, loss, "none", params)
        for o, e in zip(out, exp):
            if e is None:
                continue
            e_in_dtype = e.detach().to(dtype).double()  # overflow -> inf, as the kernel must give
            torch.testing.assert_close(o.detach().cpu().double(), e_in_dtype, rtol=RTOL[dtype] * 4,
                                       atol=ATOL[dtype], equal_nan=False, msg=lambda m: f"{role} {loss}: {m}")
        grads_out = [t for t in out if t is not None]
        torch.autograd.backward(grads_out, [torch.ones_like(t) for t in grads_out])
        torch.autograd.backward([t for t in exp if t is not None], [torch.ones_like(t) for t in exp if t is not None])
        # The same gradients once more through reduction="sum", where they come from the forward
        # pass (the training path) instead of the recomputing backward.
        rs = real.to(device).clone().requires_grad_()
        fs = fake.to(device).clone().requires_grad_()
        _run(role, rs, fs, loss, "sum", name, params).backward()
        for x_, xs, x64 in ((r, rs, r64), (f, fs, f64)):
            if x64.grad is None:
                continue
            g64 = x64.grad.to(dtype).double()
            finite = torch.isfinite(x64.grad)
            for g, path in ((x_.grad, "none"), (xs.grad, "sum")):
                g = g.cpu().double()
                torch.testing.assert_close(g[finite], g64[finite], rtol=RTOL[dtype] * 4, atol=ATOL[dtype],
                                           msg=lambda m: f"{role} {loss} grad ({path}): {m}")


@pytest.mark.parametrize("loss,params", CASES)
def test_nan_propagates(backend, loss, params, rng):
    name, device = backend
    real = _logits((9,), torch.float32, device, rng)
    fake = _logits((9,), torch.float32, device, rng)
    real[3] = math.nan
    fake[5] = math.nan
    assert torch.isnan(pygan.discriminator_loss(real, fake, loss, backend=name, **params))
    assert torch.isnan(pygan.generator_loss(fake, loss, real_logits=real, backend=name, **params))


def test_gan_is_bce_with_logits(backend, rng):
    name, device = backend
    real = _logits((64, 1, 4, 4), torch.float32, device, rng).requires_grad_()
    fake = _logits((48,), torch.float32, device, rng).requires_grad_()
    ours = pygan.discriminator_loss(real, fake, "gan", backend=name)
    bce = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(ours, bce, rtol=1e-6, atol=1e-6)
    g = pygan.generator_loss(fake, "gan", backend=name)
    torch.testing.assert_close(g, F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)),
                               rtol=1e-6, atol=1e-6)
    sat = pygan.generator_loss(fake, "gan", saturating=True, backend=name)
    torch.testing.assert_close(sat, torch.log1p(-torch.sigmoid(fake.double())).mean().float(),
                               rtol=1e-5, atol=1e-6)


def test_backends_agree(rng):
    """Every backend that runs here gives the same loss and gradients (float32)."""
    from .conftest import BACKENDS

    names = [p.values[0] for p in BACKENDS if not p.marks or all(m.name != "skip" for m in p.marks)]
    names = [n for n in names if pygan._ops.backend.unavailable_reason(n[0], torch.device(n[1])) is None]
    if len(names) < 2:
        pytest.skip("only one backend runs here")
    real = _logits((3000,), torch.float32, "cpu", rng)
    fake = _logits((2000,), torch.float32, "cpu", rng)
    results = []
    for name, device, isa in names:
        r, f = real.to(device).requires_grad_(), fake.to(device).requires_grad_()
        with pygan._ops.backend.cpu_isa(isa) if isa else contextlib.nullcontext():
            out = pygan.discriminator_loss(r, f, "js", backend=name)
            out.backward()
        results.append((out.cpu(), r.grad.cpu(), f.grad.cpu()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)


def test_non_contiguous_and_mixed_dtypes(rng):
    x = _logits((16, 10), torch.float32, "cpu", rng)
    real = x.t()  # non-contiguous
    fake = _logits((30,), torch.bfloat16, "cpu", rng)
    out = pygan.discriminator_loss(real, fake, "hinge")
    expect = ref.discriminator_loss(real, fake, "hinge")
    assert out.dtype == torch.float32  # promoted
    torch.testing.assert_close(out.double(), expect, rtol=1e-6, atol=1e-6)


def test_deterministic_and_thread_count_independent():
    """The CPU reductions are bitwise reproducible, whatever the number of threads."""
    code = ("import torch, pygan; g = torch.Generator().manual_seed(1); "
            "r = torch.randn(1 << 20, generator=g); f = torch.randn(1 << 19, generator=g); "
            "print(pygan.discriminator_loss(r, f, 'jeffrey', backend='cpu').item().hex()); "
            # the relativistic kernel's means, gradient sums and corrections are chunked sums too
            "r.requires_grad_(); f.requires_grad_(); "
            "loss = pygan.discriminator_loss(r, f, 'relativistic_average', backend='cpu'); loss.backward(); "
            "print(loss.item().hex(), r.grad.double().sum().item().hex(), f.grad.double().sum().item().hex())\n"
            # the penalty head's rows, short (many per work item) and long, and their gradients
            "for shape in ((40000, 2), (300, 900)):\n"
            "    x = torch.randn(shape, generator=g).requires_grad_()\n"
            "    p = pygan.penalties.gradient_norm_penalty(x, weight=3.0, backend='cpu'); p.backward()\n"
            "    print(p.item().hex(), x.grad.double().sum().item().hex())")
    outs = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, PYGAN_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.add(res.stdout.strip())
    assert len(outs) == 1, outs


@pytest.mark.parametrize(
    "name,alpha",
    [("kl", None), ("reverse_kl", None), ("pearson", None), ("neyman", None),
     ("squared_hellinger", None), ("jeffrey", None), ("js", None), ("gan", None),
     ("total_variation", None), ("alpha", 0.5), ("alpha", 2.0), ("alpha", -1.0)],
)
def test_divergence_estimate_at_optimal_critic(name, alpha):
    """At v* = g_f^{-1}(f'(p/q)) the bound equals D_f(P||Q), here for P = N(0, 1), Q = N(0.3, 1.1^2)
    (exact value by quadrature), within Monte-Carlo error."""
    g = torch.Generator().manual_seed(1234)
    n = 400_000
    mp, sp_, mq, sq = 0.0, 1.0, 0.3, 1.1

    def log_ratio(x):
        lp = -0.5 * ((x - mp) / sp_) ** 2 - math.log(sp_)
        lq = -0.5 * ((x - mq) / sq) ** 2 - math.log(sq)
        return lp - lq

    x = mp + sp_ * torch.randn(n, generator=g, dtype=torch.float64)
    y = mq + sq * torch.randn(n, generator=g, dtype=torch.float64)
    kw = {} if alpha is None else {"alpha": alpha}
    vx = divergences.optimal_logit(name, torch.exp(log_ratio(x)), **kw)
    vy = divergences.optimal_logit(name, torch.exp(log_ratio(y)), **kw)
    est = pygan.divergence_estimate(vx, vy, name, **kw).item()
    # Monte-Carlo standard error of E_P[g(v)] - E_Q[f*(g(v))].
    d = divergences.divergence(name, **kw)
    tx, ty = d.activation(vx), d.f_conj(d.activation(vy))
    se = math.sqrt(tx.var().item() / n + ty.var().item() / n)
    grid = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
    q = torch.exp(-0.5 * ((grid - mq) / sq) ** 2) / (sq * math.sqrt(2 * math.pi))
    exact = torch.trapezoid(q * d.f(torch.exp(log_ratio(grid))), grid).item()
    assert abs(est - exact) <= 5 * se + 1e-9, (name, est, exact, se)


def test_gan_bound_is_jsd_at_optimum():
    """For 'gan' the bound at D* is 2 JSD - log 4 (two discrete distributions, exact expectations)."""
    p = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.4, 0.1], dtype=torch.float64)
    m = 0.5 * (p + q)
    jsd = 0.5 * (p * torch.log(p / m)).sum() + 0.5 * (q * torch.log(q / m)).sum()
    v = divergences.optimal_logit("gan", p / q)
    # Weighted samples: repeat each support point in proportion to its probability.
    reps = 1000
    vr = torch.repeat_interleave(v, (p * reps).round().long())
    vf = torch.repeat_interleave(v, (q * reps).round().long())
    est = pygan.divergence_estimate(vr, vf, "gan")
    torch.testing.assert_close(est, 2 * jsd - math.log(4), rtol=1e-12, atol=1e-12)


def test_modules_wrap_functions(rng):
    real = _logits((10,), torch.float32, "cpu", rng)
    fake = _logits((10,), torch.float32, "cpu", rng)
    assert torch.equal(pygan.DiscriminatorLoss("alpha", alpha=0.5)(real, fake),
                       pygan.discriminator_loss(real, fake, "alpha", alpha=0.5))
    assert torch.equal(pygan.GeneratorLoss("relativistic_average")(fake, real),
                       pygan.generator_loss(fake, "relativistic_average", real_logits=real))
    assert torch.equal(pygan.DivergenceEstimate("js")(real, fake), pygan.divergence_estimate(real, fake, "js"))
    assert "alpha=0.5" in repr(pygan.DiscriminatorLoss("alpha", alpha=0.5))


def test_custom_ops_pass_opcheck(rng):
    real = _logits((6,), torch.float32, "cpu", rng).requires_grad_()
    fake = _logits((5,), torch.float32, "cpu", rng).requires_grad_()
    shift = torch.tensor(0.3, requires_grad=True)
    t0, t1 = TERM_CODES["SOFTPLUS_NEG"], TERM_CODES["SOFTPLUS"]
    torch.library.opcheck(loss_op.adversarial_loss, (real, fake, shift, None, t0, t1, 1.0, 1.0, 0.0, 1, "auto"))
    torch.library.opcheck(loss_op.adversarial_loss_terms, (real, fake, None, shift, t0, t1, 1.0, -1.0, 0.0, "auto"))
    torch.library.opcheck(loss_op.adversarial_loss_and_grad, (real, fake, shift, None, t0, t1, 1.0, 1.0, 0.0, 2, "auto"))
    torch.library.opcheck(loss_op.adversarial_minimax, (real.detach(), fake.detach(), None, shift.detach(), t0, t1,
                                                     1.0, 1.0, t0, t0, 0.0, 1.0, 0.0, "auto"))


def _grads(loss_fn, *xs):
    xs = [x.detach().clone().requires_grad_() for x in xs]
    out = loss_fn(*xs)
    out.backward()
    return out, [x.grad for x in xs]


@pytest.mark.parametrize("role", ["D", "G"])
@pytest.mark.parametrize("loss", ["gan", "js", "relativistic_average", "jeffrey"])
def test_training_path_equals_recomputing_path(backend, loss, role, rng):
    """With inputs that need gradients the loss returns its gradient from the forward pass; a second
    backward (retain_graph) and create_graph fall back to recomputing it: all three agree. G's
    non-relativistic losses take their own one-sided node (fake logits only)."""
    name, device = backend
    real = _logits((300,), torch.float32, device, rng)
    fake = _logits((200,), torch.float32, device, rng)
    if role == "D":
        def call(real, fake):
            return pygan.discriminator_loss(real, fake, loss, backend=name)
    else:
        def call(real, fake):
            return pygan.generator_loss(fake, loss, real_logits=real, backend=name) + 0 * real.sum()
    xs = [real.clone().requires_grad_(), fake.clone().requires_grad_()]
    out = call(*xs)
    out.backward(torch.tensor(3.0, device=device), retain_graph=True)
    first = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    out.backward(torch.tensor(3.0, device=device))  # the saved gradients are spent: recomputed
    for g, x in zip(first, xs):
        torch.testing.assert_close(x.grad, g, rtol=2e-6, atol=0)
    ys = [real.clone().requires_grad_(), fake.clone().requires_grad_()]
    grads = torch.autograd.grad(3.0 * call(*ys), ys, create_graph=True)
    for g, h in zip(first, grads):
        torch.testing.assert_close(h, g, rtol=2e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_training_path_keeps_precision_under_loss_scaling(backend, dtype, rng):
    """A mean over many logits has per-element gradients near the bottom of float16's range; the
    gradient saved by the forward pass is kept in float32, so a large upstream (a GradScaler's loss
    scale) still gives each gradient to the dtype's own precision."""
    name, device = backend
    n, scale = 8192, 32768.0  # a power of two: exact as an upstream in float16
    real = _logits((n,), dtype, device, rng).requires_grad_()
    fake = _logits((n,), dtype, device, rng).requires_grad_()
    pygan.discriminator_loss(real, fake, "gan", backend=name).backward(torch.tensor(scale, dtype=dtype, device=device))
    r64 = real.detach().double().cpu().requires_grad_()
    f64 = fake.detach().double().cpu().requires_grad_()
    (ref.discriminator_loss(r64, f64, "gan", "mean") * scale).backward()
    for x, x64 in ((real, r64), (fake, f64)):
        expect = x64.grad.to(dtype).double()
        # Relative error, measured against the smallest normal number where the exact value is below it.
        err = ((x.grad.cpu().double() - x64.grad).abs() / x64.grad.abs().clamp_min(torch.finfo(dtype).tiny))
        assert err.max().item() <= torch.finfo(dtype).eps, (dtype, err.max().item())
        assert torch.count_nonzero(x.grad.cpu().double() - expect) <= n // 100


@pytest.mark.parametrize("loss,params", CASES)
def test_cpu_instruction_sets_agree(loss, params, rng):
    """Every build of the CPU loops (base and AVX2 where the CPU has it) matches the float64 result
    over several parallel chunks, values and gradients."""
    real = _logits((40000,), torch.float32, "cpu", rng)
    fake = _logits((40000,) if loss == "relativistic" else (20001,), torch.float32, "cpu", rng)
    r64, f64 = real.double().requires_grad_(), fake.double().requires_grad_()
    expect = ref.discriminator_loss(r64, f64, loss, "mean", **params)
    expect.backward()
    scale = float(_scale(ref.discriminator_loss(r64.detach(), f64.detach(), loss, "none", **params)))
    isas = pygan._ops.backend.cpu_isas()
    assert isas and isas[0] == "base"
    for isa in isas:
        with pygan._ops.backend.cpu_isa(isa):
            out, grads = _grads(lambda r, f: pygan.discriminator_loss(r, f, loss, backend="cpu", **params),
                                   real, fake)
        what = f"{isa} {loss} seed={rng.initial_seed()}"
        _assert_close(out, expect.detach(), scale, 1e-5, what)
        for g, e in zip(grads, (r64.grad, f64.grad)):
            _assert_close(g, e, 0.0, 5 * RTOL[torch.float32], what + " grad")


def _ulps(out: torch.Tensor, expect64: torch.Tensor) -> torch.Tensor:
    """|out - expect| in ulps of the float32 nearest to the float64 ``expect`` (0 where both are the
    same infinity or NaN)."""
    e32 = expect64.float()
    spacing = (torch.nextafter(e32.abs(), torch.tensor(float("inf"))) - e32.abs()).double()
    err = (out.double() - expect64).abs() / spacing.clamp_min(torch.finfo(torch.float32).tiny * 2**-23)
    same = (out.double() == e32.double()) | (out.isnan() & expect64.isnan())
    return torch.where(same, torch.zeros_like(err), err)


def test_cpu_expm1_within_two_ulps():
    """The float32 loops' expm1 (from exp's own reduction, fast_math.h), read through the term that is
    expm1 itself (squared_hellinger's fake side, reduction "none"): within 2 ulps of float64's over
    every 251st float32 in [-40, 89] and at the special values, with the sign of zero kept, on every
    CPU build. tanh, jeffrey's Halley steps and the alpha terms go through it."""
    grid = torch.arange(0, 0x42B20000, 251, dtype=torch.int64)  # positive floats up to 89
    neg = torch.arange(0, 0x42200000, 251, dtype=torch.int64)  # and down to -40
    x = torch.cat([grid.to(torch.int32).view(torch.float32), -neg.to(torch.int32).view(torch.float32),
                   torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 88.72, 88.73, -1e-40])])
    expect = torch.expm1(x.double())
    for isa in pygan._ops.backend.cpu_isas():
        with pygan._ops.backend.cpu_isa(isa):
            out = pygan.discriminator_loss(x[:1], x, "squared_hellinger", reduction="none", backend="cpu").fake
        ulps = _ulps(out, expect)
        assert ulps.max().item() <= 2.0, (isa, x[ulps.argmax()].item(), ulps.max().item())
        assert torch.equal(torch.signbit(out[x == 0]), torch.signbit(x[x == 0])), isa


@pytest.mark.parametrize("loss", ["gan", "relativistic_average"])
def test_torch_compile_fullgraph(loss, rng):
    """torch.compile(fullgraph=True) traces through the ops (no graph break) and matches eager."""
    torch._dynamo.reset()

    def step(real, fake):
        d = pygan.discriminator_loss(real, fake, loss)
        g = pygan.generator_loss(fake, loss, real_logits=real)
        return d + 0.5 * g

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    real = _logits((32, 1, 2, 2), torch.float32, "cpu", rng).requires_grad_()
    fake = _logits((32, 1, 2, 2), torch.float32, "cpu", rng).requires_grad_()
    out = compiled(real, fake)
    out.backward()
    r2, f2 = real.detach().clone().requires_grad_(), fake.detach().clone().requires_grad_()
    expect = step(r2, f2)
    expect.backward()
    torch.testing.assert_close(out, expect)
    torch.testing.assert_close(real.grad, r2.grad)
    torch.testing.assert_close(fake.grad, f2.grad)


@pytest.mark.parametrize("loss", ["gan", "relativistic", "relativistic_average"])
def test_minimax_under_torch_compile(loss, rng):
    """minimax_losses traces with fullgraph=True (the registered op) and matches eager."""
    torch._dynamo.reset()
    fn = torch.compile(lambda r, f: tuple(pygan.minimax_losses(r, f, loss, joint=True)), fullgraph=True,
                       backend="aot_eager")
    real = _logits((16, 1), torch.float32, "cpu", rng)
    fake = _logits((16, 1), torch.float32, "cpu", rng)
    for got, want in zip(fn(real, fake), pygan.minimax_losses(real, fake, loss, joint=True)):
        torch.testing.assert_close(got, want)


@pytest.mark.slow
def test_torch_compile_inductor(rng):
    torch._dynamo.reset()
    fn = torch.compile(lambda r, f: pygan.discriminator_loss(r, f, "hinge") * 2.0, fullgraph=True)
    real = _logits((100,), torch.float32, "cpu", rng)
    fake = _logits((90,), torch.float32, "cpu", rng)
    torch.testing.assert_close(fn(real, fake), pygan.discriminator_loss(real, fake, "hinge") * 2.0)


@pytest.mark.gpu
def test_cuda_graph_capture():
    """The fused ops launch without host syncs or allocation in the kernels: capture and replay."""
    for name in ("cuda", "triton"):
        real = torch.randn(5000, device="cuda")
        fake = torch.randn(3000, device="cuda")
        pygan.discriminator_loss(real, fake, "js", backend=name)  # warm up (Triton compiles)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = pygan.discriminator_loss(real, fake, "js", backend=name)
        for _ in range(3):
            real.copy_(torch.randn_like(real))
            graph.replay()
            torch.cuda.synchronize()
            torch.testing.assert_close(out, pygan.discriminator_loss(real, fake, "js", backend="cpu" if False else name))


@pytest.mark.parametrize("joint", [False, True], ids=["gan", "joint"])
@pytest.mark.parametrize("loss,params", CASES)
def test_minimax_losses_give_each_players_gradient(loss, params, joint, rng):
    """The fused step's losses and upstream gradients equal autograd of the separate losses; the
    joint (BiGAN) player's include the real side, the plain generator's do not."""
    n = 6
    real = _logits((n,), torch.float64, "cpu", rng).requires_grad_()
    fake = _logits((n,), torch.float64, "cpu", rng).requires_grad_()
    for saturating in (False, True):
        ml = pygan.minimax_losses(real, fake, loss, saturating=saturating, joint=joint, **params)
        d = ref.discriminator_loss(real, fake, loss, **params)
        if joint:
            g = ref.joint_generator_loss(real, fake, loss, saturating, **params)
        else:
            g = ref.generator_loss(fake, loss, saturating, real, **params)
        d_r, d_f = torch.autograd.grad(d, (real, fake))
        g_r, g_f = torch.autograd.grad(g, (real, fake), allow_unused=True)
        for got, want in ((ml.d_loss, d), (ml.g_loss, g), (ml.d_real_grad, d_r), (ml.d_fake_grad, d_f),
                          (ml.g_fake_grad, g_f)):
            torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-14)
        if joint:
            torch.testing.assert_close(ml.g_real_grad, g_r, rtol=1e-12, atol=1e-14)
        else:
            assert ml.g_real_grad is None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("loss,params", CASES)
def test_minimax_kernel_matches_float64_reference(backend, loss, params, dtype, rng):
    """The one-launch minimax op on every backend and dtype: both losses and every gradient against
    float64 autograd of the reference losses, for plain and joint, saturating and not; the shapes
    (PatchGAN maps, odd sizes, batch 1) and the tolerances of the single-loss test."""
    name, device = backend
    rs, fs = _shapes(loss, rng)
    real, fake = _logits(rs, dtype, device, rng), _logits(fs, dtype, device, rng)
    real64 = real.double().cpu().requires_grad_()
    fake64 = fake.double().cpu().requires_grad_()
    for joint in (False, True):
        for saturating in (False, True):
            ml = pygan.minimax_losses(real, fake, loss, saturating=saturating, joint=joint, backend=name,
                                      **params)
            what = f"{loss} joint={joint} saturating={saturating} {dtype} seed={rng.initial_seed()}"
            d = ref.discriminator_loss(real64, fake64, loss, **params)
            if joint:
                g = ref.joint_generator_loss(real64, fake64, loss, saturating, **params)
                g_role = "GE_sat" if saturating else "GE"
            else:
                g = ref.generator_loss(fake64, loss, saturating, real64, **params)
                g_role = "G_sat" if saturating else "G"
            d_r, d_f = torch.autograd.grad(d, (real64, fake64))
            g_r, g_f = torch.autograd.grad(g, (real64, fake64), allow_unused=True)
            for got, want, role in ((ml.d_loss, d, "D"), (ml.g_loss, g, g_role)):
                assert got.dtype == dtype and got.shape == () and got.device.type == device, what
                scale = _scale(_run_ref(role, real64.detach(), fake64.detach(), loss, "none", params))
                _assert_close(got.cpu(), want.detach(), float(scale), RTOL[dtype], f"{what} {role} loss")
            grads = [(ml.d_real_grad, d_r, "D real"), (ml.d_fake_grad, d_f, "D fake"),
                     (ml.g_fake_grad, g_f, "G fake")]
            if joint:
                grads.append((ml.g_real_grad, g_r, "G real"))
            else:
                assert ml.g_real_grad is None
            for got, want, label in grads:
                assert got.dtype == dtype and got.shape == want.shape, f"{what} {label}"
                _assert_close(got.cpu(), want, 0.0, 5 * RTOL[dtype], f"{what} grad {label}")


def _count_cpu_calls(monkeypatch) -> list:
    """The names of the CPU kernel entries called from now on, in order."""
    from pygan._ops import backend as _backend, launch

    c, _ = _backend._load_c()
    calls = []

    class Counting:
        def __getattr__(self, attr):
            fn = getattr(c, attr)
            if attr.endswith("_cpu"):
                return lambda *a: (calls.append(attr), fn(*a))[1]
            return fn

    monkeypatch.setattr(_backend, "_load_c", lambda: (Counting(), None))
    monkeypatch.setattr(launch, "_ENTRIES", {})  # entries looked up before the counting module
    return calls


def test_minimax_is_one_kernel_launch(monkeypatch, rng):
    """minimax_losses runs the two losses in one call of the CPU kernel (not one per player)."""
    calls = _count_cpu_calls(monkeypatch)
    real, fake = _logits((64,), torch.float32, "cpu", rng), _logits((48,), torch.float32, "cpu", rng)
    for loss in ("gan", "hinge", "relativistic_average"):
        calls.clear()
        pygan.minimax_losses(real, fake, loss, joint=loss == "hinge", backend="cpu")
        # (the relativistic average loss: its own kernel, which also takes the means)
        assert calls == ["averaged_minimax_cpu" if loss == "relativistic_average" else "minimax_forward_cpu"], \
            (loss, calls)


def test_relativistic_losses_are_one_kernel_call(monkeypatch, rng):
    """With gradients, each relativistic loss is one call of the CPU kernel (the differences, means
    and corrections inside it) and backward calls none; a second backward calls it again and gives
    the same bits. The Python nodes, whose calls go through pygan._C's entries (the C++ nodes of
    pygan._autograd call the same kernel through its table: tests/test_autograd_nodes.py)."""
    monkeypatch.setattr(loss_op, "_nodes", lambda: None)
    calls = _count_cpu_calls(monkeypatch)
    for loss in ("relativistic", "relativistic_average"):
        real = _logits((64,), torch.float32, "cpu", rng).requires_grad_()
        fake = _logits((64,) if loss == "relativistic" else (48,), torch.float32, "cpu", rng).requires_grad_()
        for entry in (lambda: pygan.discriminator_loss(real, fake, loss, backend="cpu"),
                      lambda: pygan.generator_loss(fake, loss, real_logits=real, backend="cpu")):
            calls.clear()
            out = entry()
            assert calls == ["relative_forward_cpu"], (loss, calls)
            first = torch.autograd.grad(out, (real, fake), torch.tensor(2.5), retain_graph=True)
            assert calls == ["relative_forward_cpu"], (loss, calls)
            again = torch.autograd.grad(out, (real, fake), torch.tensor(2.5))
            assert calls == ["relative_forward_cpu"] * 2, (loss, calls)
            for g, h in zip(first, again):
                assert torch.equal(g, h), loss


def test_relative_kernel_refuses_what_it_cannot_compute():
    """The C++ entry of the relativistic losses refuses sides it would read or write out of bounds."""
    from pygan._ops import backend as _backend

    c, _ = _backend._load_c()
    x, y, g = torch.randn(5), torch.randn(4), torch.empty(5)
    out = torch.empty(())
    a, b = (x.data_ptr(), 5, 0, 10, 1.0, 0), (y.data_ptr(), 4, 0, 10, 0.0, 0)  # Sides
    with pytest.raises(ValueError, match="paired sides differ in size"):
        c.relative_forward_cpu(a, b, 1, 0.0, 1, out.data_ptr(), 0, g.data_ptr(), g.data_ptr())
    half = (x.data_ptr(), 5, 2, 10, 1.0, 0)
    with pytest.raises(ValueError, match="must be float32 or both float64"):
        c.relative_forward_cpu(half, half, 2, 0.0, 1, out.data_ptr(), 0, g.data_ptr(), g.data_ptr())
    with pytest.raises(ValueError, match="reduction must be MEAN or SUM"):
        c.relative_forward_cpu(a, a, 2, 0.0, 0, out.data_ptr(), 0, g.data_ptr(), g.data_ptr())
    with pytest.raises(ValueError, match="mode must be PAIRED or AVERAGED"):
        c.relative_forward_cpu(a, a, 3, 0.0, 1, out.data_ptr(), 0, g.data_ptr(), g.data_ptr())
    with pytest.raises(ValueError, match="generator side must be its discriminator side"):
        c.averaged_minimax_cpu(a, b, b, b, 0.0, out.data_ptr(), out.data_ptr(), 0, *[g.data_ptr()] * 4)
    with pytest.raises(ValueError, match="must be float32 or both float64"):
        c.averaged_minimax_cpu(half, half, half, half, 0.0, out.data_ptr(), out.data_ptr(), 0, *[g.data_ptr()] * 4)


def test_minimax_sides_must_share_their_logits():
    """The C++ entry point refuses a generator side that is not its discriminator side re-termed."""
    from pygan._ops import backend as _backend

    c, _ = _backend._load_c()
    x, y = torch.randn(5), torch.randn(5)
    d0, d1 = (x.data_ptr(), 5, 0, 10, 1.0, 0), (y.data_ptr(), 5, 0, 11, 1.0, 0)  # Sides
    g1 = (x.data_ptr(), 5, 0, 10, 1.0, 0)  # the real logits where the fake ones belong
    out = torch.empty(2)
    with pytest.raises(ValueError, match="generator side must be its discriminator side"):
        c.minimax_forward_cpu(d0, d1, d0, g1, 0.0, out.data_ptr(), out.data_ptr() + 4, 0, 0, 0, 0, 0)


def test_joint_generator_loss_swaps_the_labels():
    """For "gan" the BiGAN player's loss is BCE with the labels swapped: real pairs labelled fake,
    fake pairs real; the minimax form is minus D's loss."""
    real, fake = torch.tensor([0.3, -2.0, 4.0]), torch.tensor([1.5, -0.5])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    swapped = bce(real, torch.zeros(3)) + bce(fake, torch.ones(2))
    torch.testing.assert_close(pygan.joint_generator_loss(real, fake, "gan"), swapped)
    torch.testing.assert_close(pygan.joint_generator_loss(real, fake, "gan", saturating=True),
                               -pygan.discriminator_loss(real, fake, "gan"))
    torch.testing.assert_close(pygan.joint_generator_loss(real, fake, "hinge"), real.mean() - fake.mean())


def test_alpha_conjugate_derivative_at_its_domain_boundary(backend):
    """alpha > 1: f*(t) is flat at -1/alpha for t <= -1/(alpha - 1) and its derivative is 0 at the
    boundary itself (a reference that differentiated through log(0) gave nan there)."""
    name, device = backend
    for a in (2.0, 3.0):
        fake = torch.tensor([-1.0 / (a - 1.0), -5.0], dtype=torch.float64, device=device, requires_grad=True)
        pygan.discriminator_loss(torch.zeros(1, dtype=torch.float64, device=device), fake, "alpha", alpha=a,
                                 backend=name).backward()
        f64 = fake.detach().cpu().clone().requires_grad_()
        ref.discriminator_loss(torch.zeros(1, dtype=torch.float64), f64, "alpha", alpha=a).backward()
        assert torch.equal(fake.grad.cpu(), torch.zeros(2, dtype=torch.float64))
        assert torch.equal(f64.grad, torch.zeros(2, dtype=torch.float64))
