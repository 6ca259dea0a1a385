"""The fused bias + LeakyReLU with a bit-packed mask as registered PyTorch ops (kernels:
csrc/activation.h, csrc/cpu/activation.cpp, csrc/cuda/activation.cu, triton_kernels/activation.py).

``pygan::bias_leaky_relu(x, bias, slope)`` returns ``y = leaky(x + bias)`` (bias along dim 1) and a
uint8 mask with one bit per element. Its backward is ``pygan::leaky_relu_grad(g, mask, slope) =
g * (bit ? 1 : slope)`` plus the bias gradient (a sum over every dim but 1); that op is linear in
``g``, so its own backward is itself: double backprop through the activation keeps 1 bit per
element where PyTorch's LeakyReLU keeps the whole input, twice (for the first and second derivative).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from . import backend as _backend
from .launch import DTYPE_CODES, call_c, device_context, float32_pair, node_module, ptr, triton_acc, twin_call


def _layout(x: Tensor) -> tuple[int, int]:
    """(channels, inner): x as (outer, channels, inner) with channels on dim 1."""
    shape = x.shape
    if len(shape) < 3:
        return (shape[1], 1) if len(shape) == 2 else (1, 1)
    return shape[1], math.prod(shape[2:])


def _bias_leaky(x: Tensor, bias: Optional[Tensor], slope: float, backend: str,
                layout: Optional[tuple[int, int]] = None) -> tuple[Tensor, Tensor]:
    """(y, mask); ``layout``: x's :func:`_layout` where the caller has it."""
    n = x.numel()
    y = torch.empty_like(x)
    mask = x.new_empty((n + 7) // 8, dtype=torch.uint8)  # one bit per element
    channels, inner = layout or _layout(x)
    name = _backend.resolve(backend, x.device)
    if name in ("cpu", "cuda"):
        call_c(name, x.device, "bias_leaky_relu", x.data_ptr(), ptr(bias), DTYPE_CODES[x.dtype],
               n, channels, inner, slope, y.data_ptr(), mask.data_ptr())
    elif n:
        k, _ = _backend._load_triton("activation")
        with device_context(x.device):
            k.bias_leaky_kernel[(-(-n // k.BLOCK),)](
                x, bias if bias is not None else x, n, channels, inner, *float32_pair(slope), y, mask,
                HAS_BIAS=bias is not None, ACC=triton_acc(x.dtype), BLOCK=k.BLOCK)
    return y, mask


def _leaky_grad(g: Tensor, mask: Tensor, slope: float, backend: str) -> Tensor:
    if not g.is_contiguous():
        g = g.contiguous()
    out = torch.empty_like(g)
    n = g.numel()
    name = _backend.resolve(backend, g.device)
    if name in ("cpu", "cuda"):
        call_c(name, g.device, "leaky_relu_grad", g.data_ptr(), DTYPE_CODES[g.dtype], n,
               mask.data_ptr(), slope, out.data_ptr())
    elif n:
        k, _ = _backend._load_triton("activation")
        with device_context(g.device):
            k.leaky_grad_kernel[(-(-n // k.BLOCK),)](g, n, mask, *float32_pair(slope), out,
                                                     ACC=triton_acc(g.dtype), BLOCK=k.BLOCK)
    return out


@torch.library.custom_op("pygan::bias_leaky_relu", mutates_args=())
def bias_leaky_relu(x: Tensor, bias: Optional[Tensor], slope: float, backend: str) -> tuple[Tensor, Tensor]:
    """(leaky(x + bias along dim 1), bit mask of x + bias > 0); x and bias contiguous, one dtype."""
    return _bias_leaky(x, bias, slope, backend)


@bias_leaky_relu.register_fake
def _(x, bias, slope, backend):
    return torch.empty_like(x), x.new_empty((x.numel() + 7) // 8, dtype=torch.uint8)


@torch.library.custom_op("pygan::leaky_relu_grad", mutates_args=())
def leaky_relu_grad(g: Tensor, mask: Tensor, slope: float, backend: str) -> Tensor:
    """g * (bit ? 1 : slope), the derivative of bias_leaky_relu applied to g."""
    return _leaky_grad(g, mask, slope, backend)


@leaky_relu_grad.register_fake
def _(g, mask, slope, backend):
    return torch.empty_like(g)


def _bias_grad(gx: Tensor) -> Tensor:
    """The bias gradient: gx summed over every dim but the channel dim 1."""
    dims = [d for d in range(gx.dim()) if d != 1]
    return gx.sum(dim=dims) if dims else gx


def _grad_setup(ctx, inputs, output):
    _, mask, slope, backend = inputs
    ctx.slope, ctx.backend = slope, backend
    ctx.save_for_backward(mask)


def _grad_backward(ctx, gg, *, apply=None):
    (mask,) = ctx.saved_tensors
    # Linear in g: the backward is the same masked scaling.
    return (apply or leaky_relu_grad)(gg, mask, ctx.slope, ctx.backend), None, None, None


leaky_relu_grad.register_autograd(_grad_backward, setup_context=_grad_setup)


def _act_setup(ctx, inputs, output):
    x, bias, slope, backend = inputs
    ctx.slope, ctx.backend, ctx.has_bias = slope, backend, bias is not None
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1])


def _act_backward(ctx, gy, _gmask):
    if gy is None:
        return None, None, None, None
    (mask,) = ctx.saved_tensors
    return _act_grads(leaky_relu_grad, gy, mask, ctx.slope, ctx.backend,
                      ctx.has_bias and ctx.needs_input_grad[1])


def _act_grads(apply, gy: Tensor, mask: Tensor, slope: float, backend: str, bias_grad: bool) -> tuple:
    """The gradients of (x, bias, slope, backend): ``apply`` (the masked scaling) on ``gy``, and,
    where ``bias_grad``, its sum over every dim but 1 for the bias."""
    gx = apply(gy, mask, slope, backend)
    return gx, _bias_grad(gx) if bias_grad else None, None, None


bias_leaky_relu.register_autograd(_act_backward, setup_context=_act_setup)


class LeakyReLUGrad(torch.autograd.Function):
    """Eager twin of ``pygan::leaky_relu_grad`` (no custom-op dispatch); differentiable, so a
    ``create_graph`` backward records it and the second derivative runs the same kernel."""

    @staticmethod
    def forward(ctx, g, mask, slope, backend):
        _grad_setup(ctx, (g, mask, slope, backend), None)
        return _leaky_grad(g, mask, slope, backend)

    @staticmethod
    def backward(ctx, gg):
        return _grad_backward(ctx, gg, apply=LeakyReLUGrad.apply)


class BiasLeakyReLU(torch.autograd.Function):
    """Eager twin of ``pygan::bias_leaky_relu``: it returns ``y`` only and keeps the mask on its
    context (one output is the cheapest node autograd records); a plain backward runs the masked
    scaling directly, a ``create_graph`` one through :class:`LeakyReLUGrad` so that it is recorded."""

    @staticmethod
    def forward(ctx, x, bias, slope, backend):
        layout = _layout(x)
        y, mask = _bias_leaky(x, bias, slope, backend, layout)
        # One attribute (each costs a fifth of a microsecond); the bias itself, not a copy: its
        # gradient is allocated like it.
        ctx.state = (mask, slope, backend, bias, layout)
        return y

    @staticmethod
    def backward(ctx, gy):
        mask, slope, backend, bias, layout = ctx.state
        bias_grad = bias is not None and ctx.needs_input_grad[1]
        if torch.is_grad_enabled():  # create_graph: recorded, so that it can be differentiated again
            return _act_grads(LeakyReLUGrad.apply, gy, mask, slope, backend, bias_grad)
        if _backend.resolve(backend, gy.device) == "cpu":
            return _cpu_backward(gy, mask, slope, bias if bias_grad else None, layout)
        return _act_grads(_leaky_grad, gy, mask, slope, backend, bias_grad)


def _cpu_backward(gy: Tensor, mask: Tensor, slope: float, bias: Optional[Tensor],
                  layout: tuple[int, int]) -> tuple:
    """:func:`_act_grads` in one CPU kernel call: the masked scaling, with the gradient of ``bias``
    (None: not wanted) summed from its result while it is in cache. The upstream of a sum (one value
    expanded to every element) is read as that one value instead of being copied out first."""
    broadcast = 0
    if not gy.is_contiguous():
        if gy.numel() and not any(gy.stride()):
            broadcast = 1
        else:
            gy = gy.contiguous()
    gx = torch.empty_like(gy)  # contiguous, also for an expanded gy
    gb = torch.empty_like(bias) if bias is not None else None
    channels, inner = layout if bias is not None else (0, 0)
    call_c("cpu", gy.device, "bias_leaky_relu_backward", gy.data_ptr(), broadcast, DTYPE_CODES[gy.dtype],
           gy.numel(), channels, inner, mask.data_ptr(), slope, gx.data_ptr(), ptr(gb))
    return gx, gb, None, None


def _registered_bias_leaky_relu(x: Tensor, bias: Optional[Tensor], slope: float, backend: str) -> Tensor:
    """``pygan::bias_leaky_relu``'s ``y``."""
    return bias_leaky_relu(x, bias, slope, backend)[0]


# The op's one call: the registered op where torch.compile traces, else the eager twin.
def _node_recompute(gy: Tensor, mask: Tensor, slope: float, bias_grad: bool) -> tuple:
    """The create_graph backward of pygan._autograd's C++ node (CPU backend): (d/dx, d/dbias),
    recorded through :class:`LeakyReLUGrad`."""
    return _act_grads(LeakyReLUGrad.apply, gy, mask, slope, "cpu", bias_grad)[:2]


_nodes = node_module("activation", _node_recompute)
_PLAIN = (Tensor, torch.nn.Parameter)  # the types the C++ node takes as the bias


def _bias_leaky_relu_node(x: Tensor, bias: Optional[Tensor], slope: float, backend: str) -> Optional[Tensor]:
    """:class:`BiasLeakyReLU`'s ``y`` through pygan._autograd's C++ node, or None where that does
    not apply: another backend than the CPU's, or a tensor subclass (whose own dispatch must see
    the call; a parameter as the bias is fine)."""
    if (type(x) is Tensor and (bias is None or type(bias) in _PLAIN)
            and _backend.resolve(backend, x.device) == "cpu"):
        nodes = _nodes()
        if nodes is not None:
            return nodes.bias_leaky_relu(x, bias, slope)
    return None


call_bias_leaky_relu = twin_call(BiasLeakyReLU, _registered_bias_leaky_relu, "call_bias_leaky_relu",
                                 _bias_leaky_relu_node)
