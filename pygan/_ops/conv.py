"""The convolution whose derivatives of every order are convolutions: a composite op with no kernel
of its own (``pygan.nn.conv2d``, ``FusedConv2d``'s convolution).

A gradient penalty differentiates a convolution's input gradient again. PyTorch's own double
backward takes the weight's part of that second derivative as a convolution of the transposed
(channels <-> batch) tensors, copied out of their layout first: on the CPU, Stacked MNIST's critic
spent about a quarter of a penalty step's extra time there. Every derivative of a convolution is
one of three bilinear maps, each the others' adjoint, and aten's ``convolution_backward`` computes
each one natively:

    conv(x, w)           the convolution itself,
    input_grad(g, w)     its gradient in x for an upstream g:     <input_grad(g, w), u> = <g, conv(u, w)>,
    weight_grad(x, g)    its gradient in w for an upstream g:     <weight_grad(x, g), U> = <g, conv(x, U)>,

so the backward of each is two of the three, to any order. A plain backward is one
``convolution_backward`` call, as PyTorch's own node makes (the same bits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _wanted(ctx, i: int) -> bool:
    """Whether this backward pass wants the gradient of input ``i`` (it may need it only for other
    inputs: a penalty's inner gradient in x alone leaves the weights' out)."""
    if not ctx.needs_input_grad[i]:
        return False
    node = ctx.next_functions[i][0]
    try:
        return node is None or torch._C._will_engine_execute_node(node)
    except RuntimeError:  # a leaf's node in autograd.grad, which the engine cannot answer for
        return True


# The input gradient of a convolution from an image (3 channels) is a transposed convolution to 3
# channels, which the CPU's convolution library runs at a fifth of its forward rate (Stacked MNIST's
# critic, batch 64, two threads: 1.85 ms against 0.4 ms for the forward); a DCGAN generator's last
# layer is that same map. As one matrix product to every kernel tap's contribution, summed into the
# image by blocks of taps, it takes 0.8 ms.
FEW_CHANNELS = 4  # images: an input of at most this many channels takes _few_channel_input_grad


def few_channel_path(x: Tensor, channels: int, w: Tensor, args: tuple) -> bool:
    """Whether the input gradient of conv(., w) to ``channels`` channels, with the upstream ``x``,
    takes :func:`_few_channel_input_grad`."""
    stride, _, dilation, groups = args
    return (x.device.type == "cpu" and x.dim() == 4 and channels <= FEW_CHANNELS and groups == 1
            and dilation == (1, 1) and x.dtype in (torch.float32, torch.float64)
            and w.shape[2] % stride[0] == 0 and w.shape[3] % stride[1] == 0)


def _few_channel_input_grad(g: Tensor, w: Tensor, like: Tensor, args: tuple) -> Tensor:
    r"""The input gradient of conv(x, w) for the upstream g, x shaped and laid out like ``like``:

    .. math:: x'_{n,c,i s - p + a, j s - p + b} \mathrel{+}= \sum_o g_{n,o,i,j}\, w_{o,c,a,b}.

    With the kernel a multiple m of the stride s, tap a = s t + r lands in row s (i + t) + r - p:
    for each of the m x m blocks (t, t'), the products of all input positions shifted by (t, t')
    add onto the image's s x s cells at once."""
    (sh, sw), (ph, pw) = args[0], args[1]
    n, o, gh, gw = g.shape
    c, kh, kw = w.shape[1:]
    mh, mw = kh // sh, kw // sw
    taps = w.view(o, c, mh, sh, mw, sw).permute(0, 2, 4, 3, 5, 1).reshape(o, mh * mw * sh * sw * c)
    rows = g.permute(0, 2, 3, 1).reshape(n * gh * gw, o)  # a view of a channels-last g
    cols = (rows @ taps).view(n, gh, gw, mh, mw, sh * sw * c)
    qh, qw = gh + mh - 1, gw + mw - 1
    cells = g.new_zeros(n, qh, qw, sh * sw * c)
    for t in range(mh):
        for u in range(mw):
            cells[:, t:t + gh, u:u + gw] += cols[:, :, :, t, u]
    image = cells.view(n, qh, qw, sh, sw, c).permute(0, 1, 3, 2, 4, 5).reshape(n, qh * sh, qw * sw, c)
    h, wd = like.shape[2], like.shape[3]
    if ph + h > qh * sh or pw + wd > qw * sw:  # rows and columns no tap reaches
        image = F.pad(image, (0, 0, 0, max(0, pw + wd - qw * sw), 0, max(0, ph + h - qh * sh)))
    out = image[:, ph:ph + h, pw:pw + wd].permute(0, 3, 1, 2)
    return out.contiguous(memory_format=torch.channels_last if stored_channels_last(like) else torch.contiguous_format)


def _conv_backward(g: Tensor, x: Tensor, w: Tensor, args: tuple, want_x: bool, want_w: bool) -> tuple:
    """(input gradient, weight gradient) of conv(x, w) for the upstream ``g``, each where wanted."""
    stride, padding, dilation, groups = args
    gx = None
    if want_x and few_channel_path(g, x.shape[1], w, args):
        gx, want_x = _few_channel_input_grad(g, w, x, args), False
        if not want_w:
            return gx, None
    gx_, gw = torch.ops.aten.convolution_backward(g, x, w, None, stride, padding, dilation, False, (0, 0), groups,
                                                  (want_x, want_w, False))[:2]
    return (gx if gx is not None else gx_), gw


class _Conv2d(torch.autograd.Function):
    """conv(x, w), no bias."""

    @staticmethod
    def forward(ctx, x, w, args):
        ctx.save_for_backward(x, w)
        ctx.args = args
        stride, padding, dilation, groups = args
        return F.conv2d(x, w, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        want_x, want_w = _wanted(ctx, 0), _wanted(ctx, 1)
        if not torch.is_grad_enabled():
            gx, gw = _conv_backward(g, x, w, ctx.args, want_x, want_w)
            return gx, gw, None
        return (_ConvGrad.apply(g, w, x, ctx.args, "input") if want_x else None,
                _ConvGrad.apply(x, g, w, ctx.args, "weight") if want_w else None, None)


class _ConvGrad(torch.autograd.Function):
    """One of the convolution's gradients, of the same shape and layout as ``like``:
    ``input_grad(g, w)`` (``which`` "input", inputs (g, w), like x) or ``weight_grad(x, g)``
    ("weight", inputs (x, g), like w)."""

    @staticmethod
    def forward(ctx, a, b, like, args, which):
        ctx.save_for_backward(a, b, like)
        ctx.args, ctx.which = args, which
        if which == "input":
            return _conv_backward(a, like, b, args, True, False)[0]
        return _conv_backward(b, a, like, args, False, True)[1]

    @staticmethod
    def backward(ctx, u):
        a, b, _ = ctx.saved_tensors
        args, grads = ctx.args, [None] * 5
        if ctx.which == "input":  # <input_grad(g, w), u> = <g, conv(u, w)>
            g, w = a, b
            if _wanted(ctx, 0):
                grads[0] = _Conv2d.apply(u, w, args)
            if _wanted(ctx, 1):
                grads[1] = _ConvGrad.apply(u, g, w, args, "weight")
        else:  # <weight_grad(x, g), u> = <g, conv(x, u)>
            x, g = a, b
            if _wanted(ctx, 0):
                grads[0] = _ConvGrad.apply(g, u, x, args, "input")
            if _wanted(ctx, 1):
                grads[1] = _Conv2d.apply(x, u, args)
        return tuple(grads)


def _through_view(w: Tensor) -> Tensor:
    """A parameter seen through a view, whose node the engine can say it runs or not in
    autograd.grad too (a penalty's inner gradient, which wants x's alone)."""
    return w.view_as(w) if w.requires_grad and w.grad_fn is None else w


def stored_channels_last(t: Tensor) -> bool:
    """Whether the 4-d ``t`` is stored channels-last (and only so: a 1 x 1 map is both layouts)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def conv2d(x: Tensor, w: Tensor, args: tuple) -> Tensor:
    """conv(x, w) with ``args`` = (stride, padding, dilation, groups), strides, padding and dilation
    as pairs. Under torch.compile: PyTorch's own convolution, which it traces and differentiates;
    under autocast too (it casts the operands of each derivative as PyTorch's own node expects)."""
    if torch.compiler.is_compiling() or torch.is_autocast_enabled(x.device.type):
        return F.conv2d(x, w, None, *args)
    return _Conv2d.apply(x, _through_view(w), args)


def conv_transpose2d(x: Tensor, w: Tensor, size: tuple, args: tuple, layout: torch.memory_format) -> Tensor:
    """conv_transpose(x, w) (no bias) to an output of ``size`` in ``layout``: the input gradient of
    conv(., w), so that its derivatives are the family's too."""
    like = x.new_empty(size).contiguous(memory_format=layout)
    return _ConvGrad.apply(x, _through_view(w), like, args, "input")
