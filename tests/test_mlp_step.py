"""The MLP critic's closed-form step (pygan._ops.mlp_step) against autograd: the logits, the input
gradient, the loss's backward and the R1/R2 double backward, on fresh random networks and
upstreams, in float64 and float32, with every slope branch; gradcheck of each output in what it
carries gradient to; and the engine's steps with it against the same steps through autograd."""

import copy

import pytest
import torch
import torch.nn.functional as F

import pygan
from pygan import models
from pygan._ops.mlp_step import mlp_step


def _net(rng, d, width, depth, dtype, bias=True):
    dims = [d] + [width] * depth + [1]
    ws = [(torch.randn(o, i, generator=rng, dtype=torch.float64) / i ** 0.5).to(dtype) for i, o in zip(dims, dims[1:])]
    bs = [(torch.randn(o, generator=rng, dtype=torch.float64) * 0.3).to(dtype) if bias else None for o in dims[1:]]
    return [w.requires_grad_(True) for w in ws], [b.requires_grad_(True) if b is not None else None for b in bs]


def _autograd_mlp(x, ws, bs, slope, slopes=None):
    """The MLP through autograd; with ``slopes`` (one tensor per hidden layer) the activation is
    the piecewise-linear map with those slopes held fixed (LeakyReLU's own derivative)."""
    a = x
    for i, (w, b) in enumerate(zip(ws[:-1], bs[:-1])):
        h = F.linear(a, w, b)
        a = F.leaky_relu(h, slope) if slopes is None else h * slopes[i]
    return F.linear(a, ws[-1], bs[-1])


def _slopes(x, ws, bs, slope):
    """The activations' slopes as the network computes them in its own dtype: a float64 reference
    that recomputed the pre-activations could put one within rounding of 0 on the other side of
    the kink and differentiate a different linear piece."""
    slopes, a = [], x.detach()
    with torch.no_grad():
        for w, b in zip(ws[:-1], bs[:-1]):
            h = F.linear(a, w, b)
            s = torch.full(h.shape, slope, dtype=torch.float64)
            s[h > 0] = 1.0
            slopes.append(s)
            a = F.leaky_relu(h, slope)
    return slopes


def _grads(outputs, inputs, retain=False):
    return [g if g is not None else torch.zeros_like(i)
            for g, i in zip(torch.autograd.grad(outputs, inputs, allow_unused=True, retain_graph=retain), inputs)]


def _case(rng, dtype, depth, slope, bias=True, m=33, d=3, width=17):
    ws, bs = _net(rng, d, width, depth, dtype, bias)
    x = torch.randn(m, d, generator=rng, dtype=torch.float64).to(dtype).requires_grad_(True)
    ups = [torch.randn(m, 1, generator=rng, dtype=torch.float64).to(dtype) for _ in range(2)]
    gamma = float(torch.rand((), generator=rng, dtype=torch.float64)) + 0.1
    return ws, bs, x, ups, gamma


def _everything(step, x, ws, bs, ups, gamma):
    """The logits, input gradient, D's parameter gradient of loss + R1 and G's input gradient,
    from ``step(x) -> (for_d, for_g, grad)``."""
    params = [p for p in ws + bs if p is not None]
    v_d, v_g, g = step(x)
    c_d, c_g = ups
    total = (v_d * c_d).sum() + gamma / 2 * g.pow(2).sum(1).mean()
    return v_d, g, _grads(total, params, retain=True), _grads((v_g * c_g).sum(), [x])[0]


def _autograd_step(ws, bs, slope, slopes=None):
    def step(x):
        v = _autograd_mlp(x, ws, bs, slope, slopes)
        (g,) = torch.autograd.grad(v.sum(), x, create_graph=True)
        return v, v, g
    return step


def _reference(x, ws, bs, ups, gamma, slope, absolute=False):
    """_everything in float64 through autograd, with the slopes the network computed in its own
    dtype; ``absolute``: of |every input| and |slope|, which bounds each result's sum of |terms|."""
    slopes = _slopes(x, ws, bs, slope)
    f = (lambda t: t.detach().double().abs()) if absolute else (lambda t: t.detach().double())
    ws64 = [f(w).requires_grad_(True) for w in ws]
    bs64 = [f(b).requires_grad_(True) if b is not None else None for b in bs]
    if absolute:
        slopes = [s.abs() for s in slopes]
    return _everything(_autograd_step(ws64, bs64, slope, slopes), f(x).requires_grad_(True), ws64, bs64,
                       [f(u) for u in ups], gamma)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("slope", [0.2, 0.0, -0.5, 1.0], ids=lambda s: f"slope{s}")
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("scale,m,d", [(1.0, 33, 3), (1e15, 5, 2), (1e-30, 4, 1), (1.0, 1, 1)],
                         ids=["plain", "huge", "tiny", "one"])
def test_matches_autograd_double_backward(rng, dtype, depth, slope, bias, scale, m, d):
    width = 17
    ws, bs, x, ups, gamma = _case(rng, dtype, depth, slope, bias, m=m, d=d, width=width)
    with torch.no_grad():
        x.mul_(scale)
    got = _everything(lambda x: mlp_step([x], ws, bs, slope)[0], x, ws, bs, ups, gamma)
    ref = _reference(x, ws, bs, ups, gamma, slope)
    bound = _reference(x, ws, bs, ups, gamma, slope, absolute=True)
    # Every result is a sum of products through at most depth + 2 matrix products of up to
    # max(width, m) terms (the weight gradients sum over the batch) and a few elementwise steps:
    # n roundings of the dtype against the sum of |terms|.
    n = 2 * (depth + 3) * (max(width, m) + 4)
    eps = torch.finfo(dtype).eps
    what = f"seed={rng.initial_seed()}"
    names = ["logits", "input gradient", "G's input gradient"] + [f"parameter {i}" for i in range(len(got[2]))]
    for name, a, b, bnd in zip(names, [got[0], got[1], got[3], *got[2]], [ref[0], ref[1], ref[3], *ref[2]],
                               [bound[0], bound[1], bound[3], *bound[2]]):
        assert a.dtype == dtype and a.shape == b.shape, name
        assert torch.isfinite(a).all(), f"{name} {what}"
        err = (a.double() - b).abs()
        assert (err <= n * eps * bnd + torch.finfo(dtype).tiny).all(), \
            f"{name} {what}: error {err.max():.3e}, bound {(n * eps * bnd).max():.3e}"


@pytest.mark.parametrize("penalized", [(), (0,), (2,), (0, 2), (1,), (0, 1, 2)], ids=str)
@pytest.mark.parametrize("lossless", [(), (1,), (0, 2)], ids=lambda s: f"nolossfor{s}")
@pytest.mark.parametrize("slope", [0.2, -0.5], ids=lambda s: f"slope{s}")
def test_batches_together_equal_each_alone(rng, penalized, lossless, slope):
    """Several batches in one pass: each batch's outputs and every gradient equal the batches'
    passes one at a time, whichever batches carry a penalty (the tangent runs on the smallest run
    of rows that holds them, a batch inside without one gets zeros) and whichever carry no loss."""
    ws, bs, _, _, _ = _case(rng, torch.float64, 2, slope)
    xs = [torch.randn(m, 3, generator=rng, dtype=torch.float64).requires_grad_(True) for m in (5, 1, 7)]
    ups = [[torch.randn(m, 1, generator=rng, dtype=torch.float64) for _ in range(2)] for m in (5, 1, 7)]
    params = [p for p in ws + bs if p is not None]

    def total(outs):
        terms = []
        for i, ((v_d, v_g, g), (c_d, c_g)) in enumerate(zip(outs, ups)):
            if i not in lossless:
                terms.append((v_d * c_d).sum())
            terms.append((v_g * c_g).sum())
            if i in penalized:
                terms.append(g.pow(2).sum() * (i + 1))
        return sum(terms)

    together = mlp_step(xs, ws, bs, slope)
    alone = [mlp_step([x], ws, bs, slope)[0] for x in xs]
    for a, b in zip(together, alone):
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-14)
    got = _grads(total(together), params + xs)
    want = _grads(total(alone), params + xs)
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=f"gradient {i}")


def test_each_output_carries_gradient_to_its_own_inputs(rng):
    """for_d to the weights only, for_g to the input only, grad to the weights (its derivative in
    x is zero wherever it exists): gradcheck of each in exactly those."""
    ws, bs, x, _, _ = _case(rng, torch.float64, 2, 0.2, m=6, d=2, width=5)
    params = ws + bs
    n = len(ws)

    def split(ps):
        return list(ps[:n]), list(ps[n:])

    assert torch.autograd.gradcheck(lambda *ps: mlp_step([x.detach()], *split(ps), 0.2)[0][0], params)
    assert torch.autograd.gradcheck(lambda *ps: mlp_step([x.detach()], *split(ps), 0.2)[0][2], params)
    assert torch.autograd.gradcheck(
        lambda x: mlp_step([x], [w.detach() for w in ws], [b.detach() for b in bs], 0.2)[0][1], (x,))
    ((v_d, v_g, g),) = mlp_step([x], ws, bs, 0.2)
    assert torch.autograd.grad(v_d.sum(), x, allow_unused=True, retain_graph=True)[0] is None
    assert all(t is None for t in torch.autograd.grad(v_g.sum(), params, allow_unused=True))


def test_the_model_offers_it_only_where_it_is_exact():
    d = models.MLPDiscriminator((2,), hidden=8, depth=2)
    assert d.closed_form_step
    assert not models.MLPDiscriminator((2,), hidden=8, num_classes=3).closed_form_step  # projection
    assert not models.MLPEncoder((2,), latent_dim=4, hidden=8).closed_form_step  # several outputs
    assert not models.MLPDiscriminator((2,), hidden=8, backend="cpu").closed_form_step  # a kernel asked for
    with pytest.raises(ValueError, match="step_forward needs one logit"):
        models.MLPEncoder((2,), latent_dim=4, hidden=8).step_forward(torch.randn(3, 2))
    with pytest.raises(ValueError, match="at least one batch"):
        d.step_forward()
    x, y = torch.randn(7, 1, 2), torch.randn(4, 2)
    ((v_d, v_g, g), (u_d, u_g, h)) = d.step_forward(x, y)
    torch.testing.assert_close(v_d, d(x))
    torch.testing.assert_close(u_g, d(y))
    assert g.shape == x.shape and h.shape == y.shape


# ---------------------------------------------------------------------------------------------
# The engine's steps with it
# ---------------------------------------------------------------------------------------------

def _pair(seed, hidden=8):
    torch.manual_seed(seed)
    g = models.MLPGenerator(latent_dim=3, out_shape=(2,), hidden=hidden, depth=2).double()
    d = models.MLPDiscriminator((2,), hidden=hidden, depth=2).double()
    return g, d


CONFIGS = [
    dict(loss="gan", penalty="r1"),
    dict(loss="relativistic", penalty=["r1", "r2"]),
    dict(loss="hinge"),
    dict(loss="wasserstein", penalty="wgan-gp", n_critic=2),
    dict(loss="gan", penalty=[pygan.GradientPenalty("r1", weight=0.3, lazy=2)]),
]


@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['loss']}-{c.get('penalty')}")
def test_the_steps_equal_the_steps_through_autograd(fused, config):
    """Three iterations with the closed form and with D's forward through autograd (a forward
    hook turns the closed form off): the same weights, statistics and penalty norms."""
    g, d = _pair(3)
    runs = []
    for closed in (True, False):
        gg, dd = copy.deepcopy(g), copy.deepcopy(d)
        if not closed:
            dd.register_forward_hook(lambda *_: None)
        kw = copy.deepcopy(config)
        n = kw.get("n_critic", 1)
        gan = pygan.GAN(gg, dd, fused=fused, seed=7, g_optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
                        d_optimizer=lambda p: torch.optim.SGD(p, lr=0.1), **kw)
        assert (gan._closed_form_d is not None) == closed
        stats = [gan.step(pygan.data.ring().sample(16 * n, torch.Generator().manual_seed(i)).double())
                 for i in range(3)]
        runs.append((gg, dd, stats, [p.last_norms for p in gan.penalties]))
    (g1, d1, s1, n1), (g2, d2, s2, n2) = runs
    for a, b in zip(list(g1.parameters()) + list(d1.parameters()), list(g2.parameters()) + list(d2.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(s1, s2):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-12, atol=1e-12, msg=k)
    for a, b in zip(n1, n2):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fused", [False, True], ids=["alternating", "fused"])
def test_one_pass_per_batch(monkeypatch, fused):
    """D's closed-form pass runs once per step's batches: real and fakes together in the D step
    (R1 from the real rows), the fakes once more in the alternating G step; D's forward never."""
    calls, forwards = [], []
    step_forward, forward = models.MLPDiscriminator.step_forward, models.MLPDiscriminator.forward
    monkeypatch.setattr(models.MLPDiscriminator, "step_forward",
                        lambda self, *xs: calls.append(len(xs)) or step_forward(self, *xs))
    monkeypatch.setattr(models.MLPDiscriminator, "forward", lambda self, *a: forwards.append(1) or forward(self, *a))
    g, d = _pair(0)
    gan = pygan.GAN(g, d, fused=fused, penalty="r1", seed=0)
    gan.step(pygan.data.ring().sample(16).double())
    assert calls == ([2] if fused else [2, 1]) and not forwards


def test_off_where_it_would_change_what_runs():
    """Augmentation, labels, AMP, BiGAN's pairs and a hooked D keep D's forward."""
    g, d = _pair(0)
    assert pygan.GAN(g, d)._closed_form_d is not None
    assert pygan.GAN(g, d, augment=pygan.augment.DiffAugment("translation"))._closed_form_d is None
    assert pygan.GAN(g, d, amp="bf16")._closed_form_d is None
    gan = pygan.GAN(g, d)
    handle = d.register_forward_pre_hook(lambda *_: None)
    assert gan._closed_form_d is None
    handle.remove()
    assert gan._closed_form_d is not None
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        assert gan._closed_form_d is None
    finally:
        handle.remove()
