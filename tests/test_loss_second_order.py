"""Double backward through every loss op: gradients of gradients (Hessian-vector products) on every
backend and dtype against the float64 reference, gradgradcheck in float64, and the second
derivatives at the extremes. The references' second derivatives are themselves checked against
mpmath (tests/test_reference.py), so they are the oracle here."""

import pytest
import torch

import pygan
from pygan._ops import adversarial_loss as loss_op
from pygan._ops.loss_terms import TERM_CODES, loss_spec

from .test_losses import ATOL, CASES, DTYPES, EXTREMES, RTOL, _floor, _logits, _roles, _run, _run_ref

# Small shapes: the tolerance takes the whole |Hessian| of the float64 reference.
SHAPES = [((1,), (3,)), ((4, 1), (3, 1)), ((2, 1, 2, 2), (5,))]
PAIRED = [((1,), (1,)), ((4, 1), (4, 1)), ((2, 1, 2, 2), (2, 1, 2, 2))]


def _loss_fn(role, loss, reduction, backend, params, ups):
    """sum(up * loss) for the reduced losses, sum_k sum(up_k * terms_k) for reduction 'none'."""
    def fn(real, fake):
        out = (_run(role, real, fake, loss, reduction, backend, params) if backend is not None
               else _run_ref(role, real, fake, loss, reduction, params))
        if reduction != "none":
            return out * ups[0].to(out.dtype)
        return sum((t * u.to(t.dtype)).sum() for t, u in zip((t for t in out if t is not None), ups))
    return fn


def _hvp(fn, xs, vs):
    """d/dx <d fn / dx, v>, with the first gradient taken with create_graph."""
    grads = torch.autograd.grad(fn(*xs), xs, create_graph=True, allow_unused=True)
    inner = sum((g * v.to(g.dtype)).sum() for g, v in zip(grads, vs) if g is not None)
    if not isinstance(inner, torch.Tensor) or not inner.requires_grad:  # linear in x: H = 0
        return [torch.zeros_like(x) for x in xs]
    return [g if g is not None else torch.zeros_like(x)
            for g, x in zip(torch.autograd.grad(inner, xs, allow_unused=True), xs)]


def _abs_hessian_times(fn64, xs64, vs):
    """|H| |v| of the float64 reference, H its full Hessian: the sum of the magnitudes that every
    entry of H v adds up, which is what a rounding error is relative to."""
    sizes = [x.numel() for x in xs64]
    hess = torch.autograd.functional.hessian(lambda *a: fn64(*a), tuple(x.detach() for x in xs64))
    rows = [torch.cat([hess[i][j].reshape(sizes[i], sizes[j]) for j in range(len(xs64))], 1)
            for i in range(len(xs64))]
    full = torch.cat(rows, 0).abs()
    v = torch.cat([v.reshape(-1).double().abs() for v in vs])
    return [s.reshape(x.shape) for s, x in zip((full @ v).split(sizes), xs64)]


# The kernels compute in float32 (float64 for float64): rounding u = x - shift and their own steps
# moves a result as much as moving the logits by a few ulps of that dtype would. Near a zero of a
# second derivative (alpha < 1's f*'' changes sign) that conditioning, not |H| |v|, is the scale
# of the error, so the bound adds how far H v moves when every logit moves by COND_ULPS ulps.
COND_ULPS = 16


def _conditioning(fn64, xs64, vs, want, dtype):
    eps = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps
    worst = [torch.zeros_like(w) for w in want]
    for sign in (-1.0, 1.0):
        moved = [(x.detach() * (1.0 + sign * COND_ULPS * eps)).requires_grad_() for x in xs64]
        worst = [torch.maximum(m, (h.detach() - w).abs()) for m, h, w in zip(worst, _hvp(fn64, moved, vs), want)]
    return worst


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("loss,params", CASES)
def test_hessian_vector_products_match_float64_reference(backend, loss, params, dtype, rng):
    """Every role and reduction: the gradient of <grad, v> (random upstream and v) equals the float64
    reference's, within ulps of the dtype relative to |H| |v|, plus the result's conditioning."""
    name, device = backend
    shapes = PAIRED if loss == "relativistic" else SHAPES
    rs, fs = shapes[int(torch.randint(len(shapes), (1,), generator=rng))]
    real0 = _logits(rs, dtype, "cpu", rng, scale=2.0)
    fake0 = _logits(fs, dtype, "cpu", rng, scale=2.0)
    for role in _roles(loss):
        for reduction in ("mean", "sum", "none"):
            r64, f64 = real0.double(), fake0.double()
            shapes_up = [()] if reduction != "none" else [
                t.shape for t in _run_ref(role, r64, f64, loss, "none", params) if t is not None]
            ups = [(torch.randn(s, generator=rng, dtype=torch.float64) + 0.5).to(dtype).double() for s in shapes_up]
            vs = [torch.randn(x.shape, generator=rng, dtype=torch.float64) for x in (real0, fake0)]
            xs = [x.to(device).clone().requires_grad_() for x in (real0, fake0)]
            got = _hvp(_loss_fn(role, loss, reduction, name, params, [u.to(dtype).to(device) for u in ups]),
                       xs, [v.to(dtype).to(device) for v in vs])
            xs64 = [x.double().clone().requires_grad_() for x in (real0, fake0)]
            fn64 = _loss_fn(role, loss, reduction, None, params, ups)
            v64 = [v.to(dtype).double() for v in vs]
            want = [w.detach() for w in _hvp(fn64, xs64, v64)]
            bound_fn = _loss_fn(role, loss, reduction, None, params, [u.abs() for u in ups])
            scale = _abs_hessian_times(bound_fn, xs64, v64)
            cond = _conditioning(fn64, xs64, v64, want, dtype)
            what = f"{role} {loss} {reduction} {dtype} seed={rng.initial_seed()}"
            for g, w, s, c, x, label in zip(got, want, scale, cond, xs, ("real", "fake")):
                assert g.dtype == dtype and g.shape == x.shape, what
                g = g.detach().cpu().double()
                over = torch.isinf(w.to(dtype).double()) & torch.isfinite(w)
                assert torch.equal(g[over], w.to(dtype).double()[over]), f"{what} {label}: overflow differs"
                err = (g - w).abs()[~over]
                bound = (5 * RTOL[dtype] * (s + w.abs()) + c + _floor(dtype))[~over]
                worst = int(torch.argmax(err - bound)) if err.numel() else 0
                assert (err <= bound).all(), (
                    f"{what} {label}: error {err[worst].item():.3e} > bound {bound[worst].item():.3e} "
                    f"(value {w[~over][worst].item():.6e})")


@pytest.mark.parametrize("loss,params", CASES)
def test_gradgradcheck_float64(backend, loss, params, rng):
    """gradgradcheck of every role (D, G, G with real logits, the joint player) under mean, sum
    and none: second derivatives in the logits and mixed ones in the upstream gradients."""
    name, device = backend
    # The Triton interpreter is slow: D's loss alone there (it has both sides' terms, and the
    # Hessian-vector test covers every role on every backend).
    interpreted = name == "triton" and device == "cpu"
    real = _logits((3,), torch.float64, device, rng, scale=1.5).requires_grad_()
    fake = _logits((3,) if loss == "relativistic" else (2,), torch.float64, device, rng, scale=1.5).requires_grad_()
    for role in ("D",) if interpreted else ("D", "G", "GE"):
        for reduction in ("mean", "none") if interpreted else ("mean", "sum", "none"):
            def fn(r, f):
                out = _run(role, r, f, loss, reduction, name, params)
                return tuple(t for t in out if t is not None) if reduction == "none" else out

            assert torch.autograd.gradgradcheck(fn, (real, fake)), (role, reduction)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("loss,params", CASES)
def test_second_derivatives_at_extremes(backend, loss, params, dtype):
    """|v| up to 1e4: each term's second derivative is finite wherever the float64 one fits in the
    dtype, equals it there, and overflows to the same inf where it does not."""
    name, device = backend
    values = [v for v in EXTREMES if dtype != torch.float16 or abs(v) < 6e4]
    x = torch.tensor(values, dtype=torch.float64).to(dtype)
    real, fake = (x, x.flip(0)) if loss_spec(loss, params).kind.startswith("relativistic") else (x, x.clone())
    ones = [torch.ones(len(values), dtype=torch.float64)] * 2
    for role in ("D", "G_sat", "GE"):
        for reduction in ("sum", "none"):
            ups = [torch.ones((), dtype=torch.float64)] if reduction == "sum" else ones
            xs = [t.to(device).clone().requires_grad_() for t in (real, fake)]
            got = _hvp(_loss_fn(role, loss, reduction, name, params, [u.to(dtype).to(device) for u in ups]),
                       xs, [o.to(dtype).to(device) for o in ones])
            xs64 = [t.double().clone().requires_grad_() for t in (real, fake)]
            want = _hvp(_loss_fn(role, loss, reduction, None, params, ups), xs64, ones)
            for g, w in zip(got, want):
                w = w.detach()
                finite = torch.isfinite(w)
                torch.testing.assert_close(g.detach().cpu().double()[finite], w.to(dtype).double()[finite],
                                           rtol=RTOL[dtype] * 4, atol=ATOL[dtype],
                                           msg=lambda m: f"{role} {loss} {reduction}: {m}")


def test_backward_op_passes_opcheck(rng):
    """The backward op is a registered op with an autograd formula of its own (both orders)."""
    real = _logits((6,), torch.float64, "cpu", rng).requires_grad_()
    fake = _logits((5,), torch.float64, "cpu", rng).requires_grad_()
    shift = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    up = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    t0, t1 = TERM_CODES["JS_REAL"], TERM_CODES["JS_FAKE"]
    for order in (1, 2):
        if order == 2:  # the second-order op is linear in its upstreams, and no more in x
            real, fake, shift = real.detach(), fake.detach(), shift.detach()
        torch.library.opcheck(loss_op.adversarial_loss_backward,
                              (real, fake, shift, None, t0, t1, 1.0, 1.0, 0.0, 1, "auto", up, None, None, order))
        torch.library.opcheck(loss_op.adversarial_loss_backward,
                              (real, fake, None, shift, t0, t1, 1.0, -1.0, 0.0, 0, "auto", None,
                               torch.randn(6, dtype=torch.float64, generator=rng).requires_grad_(),
                               torch.randn(5, dtype=torch.float64, generator=rng).requires_grad_(), order))


def test_third_derivative_is_a_clear_error(rng):
    real = _logits((4,), torch.float64, "cpu", rng).requires_grad_()
    fake = _logits((3,), torch.float64, "cpu", rng).requires_grad_()
    loss = pygan.discriminator_loss(real, fake, "gan")
    (g,) = torch.autograd.grad(loss, real, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), real, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable 2 times"):
        torch.autograd.grad(h.sum(), real)


def test_penalty_on_the_loss_gradient_matches_bce(rng):
    """A use of double backward: a penalty on the gradient of D's loss with respect to its logits,
    differentiated through to D's weights, equals the same thing written with PyTorch's BCE."""
    d = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x_real = torch.randn(16, 3, dtype=torch.float64, generator=rng)
    x_fake = torch.randn(12, 3, dtype=torch.float64, generator=rng)
    grads = []
    for fused in (True, False):
        d.zero_grad()
        real, fake = d(x_real), d(x_fake)
        if fused:
            loss = pygan.discriminator_loss(real, fake, "gan")
        else:
            bce = torch.nn.functional.binary_cross_entropy_with_logits
            loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        g_real, g_fake = torch.autograd.grad(loss, (real, fake), create_graph=True)
        (loss + g_real.square().sum() + g_fake.square().sum()).backward()
        grads.append([p.grad.clone() for p in d.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
