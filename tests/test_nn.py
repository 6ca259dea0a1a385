"""pygan.nn: the fused bias + LeakyReLU with a 1-bit mask against float64 PyTorch on every backend
and dtype, its first and second derivatives, and discriminators built from the fused layers giving
the plain layers' penalty gradients while saving less for backward."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pygan
from pygan import nn as pnn
from pygan._ops.activation import bias_leaky_relu, leaky_relu_grad

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# One rounding of x + b and one of the product: a few units in the last place of each dtype.
RTOL = {torch.float32: 3e-7, torch.float64: 1e-15, torch.bfloat16: 1e-2, torch.float16: 2e-3}
SHAPES = [(5,), (1, 3), (7, 9), (3, 5, 4, 3), (2, 4, 65, 1)]
# The CPU loops' cases: rows of 8k channels, rows crossing 8-lane vectors, runs of one channel
# shorter and longer than a vector, several threading chunks (16,384 elements) and a ragged end.
ISA_SHAPES = [(40, 24), (13, 11), (3, 130, 2), (2, 7, 9, 3), (300, 130), (4, 19, 23, 23)]


def _reference(x, bias, slope):
    v = x.double() + (bias.double().view(1, -1, *[1] * (x.dim() - 2)) if bias is not None else 0)
    return F.leaky_relu(v, slope)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matches_float64_reference(backend, dtype, rng):
    name, device = backend
    for shape in SHAPES:
        x = (torch.randn(shape, generator=rng, dtype=torch.float64) * 3).to(dtype).to(device)
        x.requires_grad_(True)
        bias = None
        if len(shape) > 1:
            bias = torch.randn(shape[1], generator=rng, dtype=torch.float64).to(dtype).to(device)
            bias.requires_grad_(True)
        slope = 0.2
        y = pnn.bias_leaky_relu(x, bias, slope, backend=name)
        assert y.dtype == dtype and y.shape == x.shape
        x64 = x.detach().double().cpu().requires_grad_(True)
        b64 = bias.detach().double().cpu().requires_grad_(True) if bias is not None else None
        expect = _reference(x64, b64, slope)
        what = f"{dtype} {shape} seed={rng.initial_seed()}"
        scale = expect.abs().max().item()
        err = (y.double().cpu() - expect).abs().max().item()
        assert err <= 4 * RTOL[dtype] * scale, f"{what} value: {err:.3e}"
        up = torch.randn(shape, generator=rng, dtype=torch.float64)
        (y.double().cpu() * up).sum().backward()
        (expect * up).sum().backward()
        assert x.grad.dtype == dtype
        assert (x.grad.double().cpu() - x64.grad).abs().max() <= 4 * RTOL[dtype] * x64.grad.abs().max(), what
        if bias is not None:
            tol = 4 * RTOL[dtype] * x64.grad.abs().sum().item()
            assert (bias.grad.double().cpu() - b64.grad).abs().max() <= tol, what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_cpu_build_and_slope(dtype, rng):
    """Each build of the CPU loops (8-lane float32 steps, scalar other dtypes) against float64, for
    positive, zero and negative slopes: values, the mask-driven gradient and the bias gradient."""
    from pygan._ops import backend as _backend

    for isa in _backend.cpu_isas():
        with _backend.cpu_isa(isa):
            for shape in ISA_SHAPES:
                for slope in (0.2, 0.0, -0.5):
                    x = (torch.randn(shape, generator=rng, dtype=torch.float64) * 3).to(dtype).requires_grad_(True)
                    bias = torch.randn(shape[1], generator=rng, dtype=torch.float64).to(dtype).requires_grad_(True)
                    y = pnn.bias_leaky_relu(x, bias, slope, backend="cpu")
                    x64 = x.detach().double().requires_grad_(True)
                    b64 = bias.detach().double().requires_grad_(True)
                    expect = _reference(x64, b64, slope)
                    what = f"{isa} {dtype} {shape} slope={slope} seed={rng.initial_seed()}"
                    scale = expect.abs().max().item()
                    assert (y.double() - expect).abs().max().item() <= 4 * RTOL[dtype] * scale, what
                    up = torch.randn(shape, generator=rng, dtype=torch.float64)
                    (y.double() * up).sum().backward()
                    (expect * up).sum().backward()
                    tol = 4 * RTOL[dtype] * x64.grad.abs().max()
                    assert (x.grad.double() - x64.grad).abs().max() <= tol, what
                    tol = 4 * RTOL[dtype] * x64.grad.abs().sum().item()
                    assert (bias.grad.double() - b64.grad).abs().max() <= tol, what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_upstream_layouts(backend, dtype, rng):
    """The gradients for upstreams of every layout: one value expanded to every element (a sum), a
    row expanded down the batch, a transposed one and a dense one; with more than one CPU thread's
    worth of elements and more channels than one block of the bias sums."""
    name, device = backend
    shape = (600, 300) if name == "cpu" else (40, 70)
    x = (torch.randn(shape, generator=rng, dtype=torch.float64) * 3).to(dtype).to(device).requires_grad_(True)
    bias = torch.randn(shape[1], generator=rng, dtype=torch.float64).to(dtype).to(device).requires_grad_(True)
    x64 = x.detach().double().cpu().requires_grad_(True)
    b64 = bias.detach().double().cpu().requires_grad_(True)
    weights = torch.randn(shape[::-1], generator=rng, dtype=torch.float64)
    heads = {"sum": lambda y: y.sum() * 0.75, "rows": lambda y: (y.sum(dim=0) * weights[:, 0].to(y)).sum(),
             "transposed": lambda y: (y.t() * weights.to(y)).sum(), "dense": lambda y: (y * weights.t().to(y)).sum()}
    for label, head in heads.items():
        x.grad = bias.grad = x64.grad = b64.grad = None
        head(pnn.bias_leaky_relu(x, bias, 0.2, backend=name)).backward()
        head(_reference(x64, b64, 0.2)).backward()
        what = f"{label} {dtype} seed={rng.initial_seed()}"
        assert x.grad.dtype == dtype and bias.grad.dtype == dtype, what
        tol = 4 * RTOL[dtype] * x64.grad.abs().max()
        assert (x.grad.double().cpu() - x64.grad).abs().max() <= tol, what
        tol = 4 * RTOL[dtype] * x64.grad.abs().sum(dim=0).max().item()
        assert (bias.grad.double().cpu() - b64.grad).abs().max() <= tol, what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bias_gradient_bits_do_not_depend_on_threads(dtype, rng):
    """The CPU bias sums add each channel's values in one order whatever the thread count: the same
    bits on one thread and on two, for an activation large enough to be split (three blocks of
    channels, one ragged) in a conv layout and a (batch, features) one."""
    threads = torch.get_num_threads()
    for shape in ((8, 21, 32, 32), (2048, 100)):
        x = (torch.randn(shape, generator=rng, dtype=torch.float64) * 3).to(dtype)
        bias = torch.randn(shape[1], generator=rng, dtype=torch.float64).to(dtype)
        up = (torch.randn(shape, generator=rng, dtype=torch.float64) * 10).to(dtype)
        grads = []
        try:
            for n in (1, 2):
                torch.set_num_threads(n)
                b = bias.clone().requires_grad_(True)
                pnn.bias_leaky_relu(x, b, 0.2, backend="cpu").backward(up)
                grads.append(b.grad)
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(grads[0], grads[1]), f"{dtype} {shape} seed={rng.initial_seed()}"


def test_channels_last_input_keeps_its_layout(backend, rng):
    """A channels-last activation runs in its layout (no copy to contiguous and back): y and the
    input gradient come out channels-last, with the elements a contiguous input gives. The CPU
    kernel's bias sums add each channel in memory order, which visits (n, h, w) in the same order in
    both layouts: the same bits (for 21 channels, a full block of 16 and a ragged one); other paths
    sum with torch, to float64 rounding of the float32 values' magnitudes. Twice differentiable."""
    name, device = backend
    for dtype in (torch.float32, torch.float64):
        x = (torch.randn(5, 21, 7, 9, generator=rng, dtype=torch.float64) * 3).to(device, dtype)
        bias = torch.randn(21, generator=rng, dtype=torch.float64).to(device, dtype)
        up = torch.randn(x.shape, generator=rng, dtype=torch.float64).to(device, dtype)
        out = []
        for fmt in (torch.contiguous_format, torch.channels_last):
            xi = x.contiguous(memory_format=fmt).requires_grad_(True)
            b = bias.clone().requires_grad_(True)
            y = pnn.bias_leaky_relu(xi, b, 0.2, backend=name)
            gx, gb = torch.autograd.grad(y, (xi, b), up.contiguous(memory_format=fmt))
            out.append((y, gx, gb))
        (y0, gx0, gb0), (y1, gx1, gb1) = out
        assert y1.is_contiguous(memory_format=torch.channels_last) and not y1.is_contiguous()
        assert gx1.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(y0, y1) and torch.equal(gx0, gx1)
        if name == "cpu":
            assert torch.equal(gb0, gb1), f"{dtype} seed={rng.initial_seed()}"
        else:
            scale = gx0.abs().sum(dim=(0, 2, 3)).double()
            assert ((gb0.double() - gb1.double()).abs() <= 8 * torch.finfo(dtype).eps * scale).all()
    xl = torch.randn(2, 3, 2, 3, generator=rng, dtype=torch.float64).to(device)
    xl = xl.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    b = torch.randn(3, generator=rng, dtype=torch.float64).to(device).requires_grad_(True)
    op = lambda x, b: pnn.bias_leaky_relu(x, b, 0.3, backend=name)  # noqa: E731
    assert torch.autograd.gradcheck(op, (xl, b))
    assert torch.autograd.gradgradcheck(op, (xl, b))


def test_gradcheck_and_gradgradcheck(backend, rng):
    name, device = backend
    x = torch.randn(3, 5, 2, 3, generator=rng, dtype=torch.float64).to(device).requires_grad_(True)
    b = torch.randn(5, generator=rng, dtype=torch.float64).to(device).requires_grad_(True)
    for op in (lambda x, b: pnn.bias_leaky_relu(x, b, 0.3, backend=name),
               lambda x, b: bias_leaky_relu(x, b, 0.3, name)[0]):
        assert torch.autograd.gradcheck(op, (x, b))
        assert torch.autograd.gradgradcheck(op, (x, b))


def test_extremes(backend):
    name, device = backend
    from pygan._ops import backend as _backend

    # Three rows of the extremes and a ragged end: the CPU loops meet them inside their 8-element
    # steps and in the scalar tail, in every build.
    row = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e4, -1e4]
    for isa in _backend.cpu_isas() if name == "cpu" else [None]:
        with _backend.cpu_isa(isa) if isa else contextlib.nullcontext():
            x = torch.tensor([row * 3 + row[:3]], device=device).requires_grad_(True)
            y = pnn.bias_leaky_relu(x, None, 0.1, backend=name)
            expect = F.leaky_relu(x.detach(), 0.1)
            assert torch.equal(y.isnan(), expect.isnan()), isa
            assert torch.equal(y.nan_to_num(), expect.nan_to_num()), isa
            y.sum().backward()
            # At zero the derivative is the slope, as in PyTorch's LeakyReLU.
            grads = x.grad.tolist()[0]
            assert [grads[k] for k in (0, 1, 7, 8, 21, 22)] == pytest.approx([0.1] * 6), isa


def test_empty_batch(backend):
    # As in PyTorch: an empty batch gives an empty result (not an indexing error).
    name, device = backend
    x = torch.empty(0, 3, 4, device=device, requires_grad=True)
    y = pnn.bias_leaky_relu(x, torch.zeros(3, device=device), backend=name)
    assert y.shape == (0, 3, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 4)


def test_ops_pass_opcheck(rng):
    x = torch.randn(4, 3, 5, generator=rng).requires_grad_(True)
    b = torch.randn(3, generator=rng).requires_grad_(True)
    torch.library.opcheck(bias_leaky_relu, (x, b, 0.2, "cpu"))
    mask = bias_leaky_relu(x.detach(), b.detach(), 0.2, "cpu")[1]
    torch.library.opcheck(leaky_relu_grad, (torch.randn(4, 3, 5, requires_grad=True), mask, 0.2, "cpu"))
    assert mask.dtype == torch.uint8 and mask.numel() == (60 + 7) // 8


def _plain_and_fused(rng, size=7):
    """The same conv discriminator for size x size images, from torch's layers and from pygan's."""
    torch.manual_seed(rng.initial_seed())
    side = -(-(-(-size // 2)) // 2)
    plain = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(6, 8, 3, 2, 1),
                          nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * side * side, 16), nn.LeakyReLU(0.2),
                          nn.Linear(16, 1)).double()
    fused = nn.Sequential(pnn.FusedConv2d(3, 6, 3, 2, 1), pnn.FusedConv2d(6, 8, 3, 2, 1), nn.Flatten(),
                          pnn.FusedLinear(8 * side * side, 16), pnn.FusedLinear(16, 1, slope=None)).double()
    names = {"0": "0", "2": "1", "5": "3", "7": "4"}
    fused.load_state_dict({k.replace(k.split(".")[0], names[k.split(".")[0]], 1): v
                           for k, v in plain.state_dict().items()})
    return plain, fused


@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
def test_fused_discriminator_gives_the_plain_penalty_gradients(kind, rng):
    plain, fused = _plain_and_fused(rng)
    real = torch.randn(5, 3, 7, 7, generator=rng, dtype=torch.float64)
    fake = torch.randn(5, 3, 7, 7, generator=rng, dtype=torch.float64)
    grads = []
    for model in (plain, fused):
        loss = pygan.discriminator_loss(model(real), model(fake), "wasserstein")
        loss = loss + pygan.gradient_penalty(model, real, fake if kind == "wgan-gp" else None, kind=kind,
                                             generator=torch.Generator().manual_seed(5))
        loss.backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def _saved_bytes(fn):
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_fused_layers_save_less_for_the_penalty(rng):
    plain, fused = _plain_and_fused(rng, size=32)
    real = torch.randn(16, 3, 32, 32, generator=rng, dtype=torch.float64)
    sizes = [_saved_bytes(lambda m=m: pygan.gradient_penalty(m, real, kind="r1").backward())
             for m in (plain, fused)]
    # The pre-activations are gone (one bit each instead); the activations and the gradients the
    # double-backward graph needs stay.
    assert sizes[1] < 0.9 * sizes[0], sizes


def test_modules_and_errors():
    layer = pnn.FusedLinear(3, 4)
    assert "slope=0.2" in repr(layer) and isinstance(layer, nn.Linear)
    assert pnn.LeakyReLU(0.1)(torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([-0.1, 2.0])
    assert pnn.FusedLinear(3, 4)(torch.randn(2, 5, 3)).shape == (2, 5, 4)
    with pytest.raises(ValueError, match=r"bias must have shape \(channels,\) = \(3,\)"):
        pnn.bias_leaky_relu(torch.randn(2, 3), torch.randn(4))
    with pytest.raises(TypeError, match="x must be a float32, float64, float16 or bfloat16 tensor, got torch.int64"):
        pnn.bias_leaky_relu(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="slope must be finite"):
        pnn.bias_leaky_relu(torch.randn(2, 3), slope=float("nan"))
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        pnn.bias_leaky_relu(torch.randn(2, 3), backend="gpu")
