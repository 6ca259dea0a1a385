"""pygan.nn: the fused bias + LeakyReLU with a 1-bit mask against float64 PyTorch on every backend
and dtype, its first and second derivatives, and discriminators built from the fused layers giving
the plain layers' penalty gradients while saving less for backward; the convolution whose
derivatives are convolutions, and the whole-map convolutions run as matrix products."""

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


def test_vectorized_bias_sums_keep_the_scalar_bits(rng):
    """Each CPU build's float32 bias sums of a channels-last activation (lanes of 4 channels, up to
    16 a block) add each channel in the order the scalar loop of a contiguous one does: the same
    bits for every count of channels around the lane and block widths."""
    from pygan._ops import backend as _backend

    for isa in _backend.cpu_isas():
        with _backend.cpu_isa(isa):
            for channels in (1, 3, 4, 5, 8, 12, 15, 16, 17, 20, 35):
                x = torch.randn(6, channels, 5, 7, generator=rng) * 3
                up = torch.randn(x.shape, generator=rng) * 10
                b = torch.randn(channels, generator=rng).requires_grad_(True)
                grads = []
                for fmt in (torch.contiguous_format, torch.channels_last):
                    y = pnn.bias_leaky_relu(x.contiguous(memory_format=fmt), b, 0.2, backend="cpu")
                    grads.append(torch.autograd.grad(y, b, up.contiguous(memory_format=fmt))[0])
                assert torch.equal(grads[0], grads[1]), f"{isa} {channels} seed={rng.initial_seed()}"


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


# (stride, padding, dilation, groups, channels in, channels out, kernel). Inputs of at most 4
# channels with a kernel a multiple of the stride take the few-channel input gradient (the first
# two and the last); the others aten's.
CONV_CASES = [(2, 1, 1, 1, 4, 6, 4), (1, 1, 1, 1, 3, 5, 3), (1, 0, 2, 1, 4, 6, 3), (2, 1, 1, 2, 4, 6, 3),
              (3, 2, 1, 1, 2, 3, 5), (2, 1, 1, 1, 5, 4, 4), (3, 2, 1, 1, 2, 3, 6)]


def conv_args(args):
    """(stride, padding, dilation, groups) as pygan._ops.conv takes them (pairs)."""
    stride, padding, dilation, groups = args
    return (nn.modules.utils._pair(stride), nn.modules.utils._pair(padding), nn.modules.utils._pair(dilation), groups)


def _conv_inputs(case, layout, rng, dtype=torch.float64, size=(3, 9, 8)):
    stride, padding, dilation, groups, ci, co, k = case
    x = torch.randn(size[0], ci, *size[1:], generator=rng, dtype=dtype).contiguous(memory_format=layout).requires_grad_(True)
    w = torch.randn(co, ci // groups, k, k, generator=rng, dtype=dtype).contiguous(memory_format=layout)
    return x, w.requires_grad_(True), (stride, padding, dilation, groups)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_derivatives_to_third_order(case, layout, rng):
    """pygan.nn.conv2d is F.conv2d; its first, second and third derivatives (a penalty's gradient,
    and that differentiated again) pass gradcheck in float64 for strides, padding, dilation and
    groups in both layouts."""
    x, w, args = _conv_inputs(case, layout, rng, size=(1, 6, 5))  # small: the checks are numerical
    f = lambda x, w: pnn.conv2d(x, w, *args)  # noqa: E731
    assert torch.equal(f(x, w), F.conv2d(x, w, None, *args))
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))

    def inner_gradient(x, w):
        return torch.autograd.grad(f(x, w).tanh().sum(), (x, w), create_graph=True)

    assert torch.autograd.gradgradcheck(inner_gradient, (x, w))


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_penalty_gradients_match_pytorch(case, rng):
    """float32: a plain backward gives PyTorch's own bits (the same convolution_backward call), but
    for the few-channel input gradient, which agrees to float32 rounding; a penalty's gradient (the
    inner gradient's norm differentiated in x and w) agrees with float64 double backward to float32
    rounding of the terms' magnitudes."""
    from pygan._ops import conv

    eps = torch.finfo(torch.float32).eps
    for layout in (torch.contiguous_format, torch.channels_last):
        x, w, args = _conv_inputs(case, layout, rng, torch.float32)
        up = torch.randn(F.conv2d(x, w, None, *args).shape, generator=rng)
        ours = torch.autograd.grad(pnn.conv2d(x, w, *args), (x, w), up)
        theirs = torch.autograd.grad(F.conv2d(x, w, None, *args), (x, w), up)
        assert torch.equal(ours[1], theirs[1])
        assert ours[0].is_contiguous(memory_format=layout)
        if conv.few_channel_path(up, x.shape[1], w, conv_args(args)):
            scale = (up.abs().amax() * w.abs().amax() * w.shape[0] * w.shape[2] * w.shape[3]).item()
            assert (ours[0] - theirs[0]).abs().max().item() <= 8 * eps * scale
        else:
            assert torch.equal(ours[0], theirs[0])

        def penalty(conv):
            gx, = torch.autograd.grad(conv(x, w).tanh().sum(), x, create_graph=True)
            return torch.autograd.grad(gx.square().sum(), (x, w))

        ours = penalty(lambda x, w: pnn.conv2d(x, w, *args))
        with torch.no_grad():
            x64, w64 = x.double().requires_grad_(True), w.double().requires_grad_(True)
        with torch.enable_grad():
            gx, = torch.autograd.grad(F.conv2d(x64, w64, None, *args).tanh().sum(), x64, create_graph=True)
            exact = torch.autograd.grad(gx.square().sum(), (x64, w64))
        for a, e in zip(ours, exact):
            scale = e.abs().max().item() * x.numel()
            assert (a.double() - e).abs().max().item() <= 8 * eps * scale


def test_conv2d_computes_only_the_wanted_gradients(rng, monkeypatch):
    """A penalty's inner gradient in x alone takes no weight gradient, and D's backward into its
    weights alone no input gradient of the first layer (the engine says which inputs it wants)."""
    from pygan._ops import conv

    calls = []
    real = conv._conv_backward

    def spy(g, x, w, args, want_x, want_w):
        calls.append((want_x, want_w))
        return real(g, x, w, args, want_x, want_w)

    monkeypatch.setattr(conv, "_conv_backward", spy)
    x, w, args = _conv_inputs(CONV_CASES[0], torch.contiguous_format, rng)
    y = pnn.conv2d(x, w, *args)
    torch.autograd.grad(y.sum(), x, create_graph=True)
    assert calls == [(True, False)]
    calls.clear()
    torch.autograd.backward(pnn.conv2d(x, w, *args).sum(), inputs=[w])
    assert calls == [(False, True)]
    calls.clear()
    pnn.conv2d(x, w, *args).sum().backward()
    assert calls == [(True, True)]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_whole_map_convolutions_are_the_convolutions(bias, rng):
    """WholeMapConv2d and WholeMapConvTranspose2d give nn.Conv2d's and nn.ConvTranspose2d's values
    and gradients (float64, both layouts; the output in the weight's layout), share their
    state_dict, pass gradgradcheck, and take the plain path for any other input."""
    for layout in (torch.contiguous_format, torch.channels_last):
        head = pnn.WholeMapConv2d(5, 2, 4, bias=bias).double()
        plain = nn.Conv2d(5, 2, 4, bias=bias).double()
        first = pnn.WholeMapConvTranspose2d(6, 5, 4, bias=bias).double()
        plain_t = nn.ConvTranspose2d(6, 5, 4, bias=bias).double()
        plain.load_state_dict(head.state_dict())
        plain_t.load_state_dict(first.state_dict())
        for m in (head, plain, first, plain_t):
            m.to(memory_format=layout)
        x = torch.randn(3, 5, 4, 4, generator=rng, dtype=torch.float64).contiguous(memory_format=layout)
        z = torch.randn(3, 6, 1, 1, generator=rng, dtype=torch.float64)
        for ours, theirs, inp in ((head, plain, x), (first, plain_t, z)):
            inp = inp.clone().requires_grad_(True)
            a, b = ours(inp), theirs(inp)
            assert a.shape == b.shape and (a - b).abs().max() < 1e-12
            assert a.is_contiguous(memory_format=layout)
            up = torch.randn(a.shape, generator=rng, dtype=torch.float64)
            ga = torch.autograd.grad(a, (inp, *ours.parameters()), up)
            gb = torch.autograd.grad(b, (inp, *theirs.parameters()), up)
            assert all((u - v).abs().max() < 1e-12 for u, v in zip(ga, gb))
            assert torch.autograd.gradgradcheck(lambda t, m=ours: m(t).square(), (inp,))
    # Inputs the kernel does not cover whole: nn.Conv2d's own path.
    big = torch.randn(2, 5, 6, 6, generator=rng, dtype=torch.float64)
    assert torch.equal(head(big), F.conv2d(big, head.weight, head.bias))
    wide = torch.randn(2, 6, 2, 2, generator=rng, dtype=torch.float64)
    assert torch.equal(first(wide), F.conv_transpose2d(wide, first.weight, first.bias))


@pytest.mark.parametrize("case", [(32, 3, 4, 2, 1, 0), (5, 2, 6, 3, 2, 1), (4, 3, 3, 1, 1, 0), (4, 3, 3, 2, 1, 1)],
                         ids=str)
def test_few_channel_transposed_convolution(case, rng):
    """FewChannelConvTranspose2d gives nn.ConvTranspose2d's values and gradients (float64, both
    layouts, with output padding; the last case, a kernel that is no multiple of the stride, takes
    the plain path), shares its state_dict, keeps the weight's layout and passes gradgradcheck; in
    float32 it agrees to the products' rounding."""
    ci, co, k, s, p, op = case
    for layout in (torch.contiguous_format, torch.channels_last):
        ours = pnn.FewChannelConvTranspose2d(ci, co, k, s, p, output_padding=op).double().to(memory_format=layout)
        theirs = nn.ConvTranspose2d(ci, co, k, s, p, output_padding=op).double().to(memory_format=layout)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(2, ci, 5, 6, generator=rng, dtype=torch.float64).contiguous(memory_format=layout)
        x.requires_grad_(True)
        a, b = ours(x), theirs(x)
        assert a.shape == b.shape and (a - b).abs().max() < 1e-12 and a.is_contiguous(memory_format=layout)
        up = torch.randn(a.shape, generator=rng, dtype=torch.float64)
        ga = torch.autograd.grad(a, (x, *ours.parameters()), up)
        gb = torch.autograd.grad(b, (x, *theirs.parameters()), up)
        assert all((u - v).abs().max() < 1e-12 for u, v in zip(ga, gb))
        assert torch.autograd.gradgradcheck(lambda t: ours(t).square(), (x,))
        ours32, x32 = ours.float(), x.detach().float()
        exact = theirs(x.detach())
        scale = (x.detach().abs().amax() * theirs.weight.abs().amax() * ci * k * k).item()
        assert (ours32(x32).double() - exact).abs().max().item() <= 8 * torch.finfo(torch.float32).eps * scale


def test_conv2d_under_autocast_is_pytorchs(rng):
    """Under CPU bfloat16 autocast conv2d is F.conv2d (autocast casts each derivative's operands as
    PyTorch's own node expects): the same values and gradients."""
    x, w, args = _conv_inputs(CONV_CASES[0], torch.channels_last, rng, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = pnn.conv2d(x, w, *args), F.conv2d(x, w, None, *args)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, theirs)
    assert all(torch.equal(a, b) for a, b in zip(torch.autograd.grad(ours.float().sum(), (x, w)),
                                                 torch.autograd.grad(theirs.float().sum(), (x, w))))
