"""Discriminator layers with fused, mask-saving activations for cheap gradient penalties.

A gradient penalty backpropagates through the discriminator twice. PyTorch's LeakyReLU saves its
whole input for the first derivative, and the double-backward graph saves it again; these layers
save one bit per element instead (whether the pre-activation was positive), from which both
derivatives follow: LeakyReLU is piecewise linear, so its derivative is a masked scale and its
second derivative is zero. The bias add is fused into the same kernel.

    y = leaky_relu(x + b, slope) = x + b         where x + b > 0
                                   slope (x + b) otherwise

``FusedLinear`` and ``FusedConv2d`` are ``nn.Linear`` and ``nn.Conv2d`` (same parameters, same
state_dict) whose bias and activation run as that kernel; ``LeakyReLU`` is the drop-in activation.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._ops import backend as _backend
from ._ops.activation import call_bias_leaky_relu

__all__ = ["FusedConv2d", "FusedLinear", "LeakyReLU", "bias_leaky_relu"]



def bias_leaky_relu(x: Tensor, bias: Optional[Tensor] = None, slope: float = 0.2, *,
                    backend: Optional[str] = None) -> Tensor:
    """``leaky_relu(x + bias, slope)`` with ``bias`` along dim 1 (channels), in one kernel that
    saves a 1-bit mask for both derivatives. Differentiable twice (and more: every derivative is the
    same masked scale). A channels-last ``x`` stays channels-last (so do ``y`` and its gradient)."""
    if not isinstance(x, Tensor) or x.dtype not in _backend.FLOAT_DTYPES:
        raise TypeError(f"x must be a float32, float64, float16 or bfloat16 tensor, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if type(slope) is not float:
        slope = float(slope)
    if not math.isfinite(slope):
        raise ValueError(f"slope must be finite, got {slope}")
    if bias is not None:
        if x.dim() < 2 or bias.shape != (x.shape[1],):
            raise ValueError(f"bias must have shape (channels,) = ({x.shape[1] if x.dim() > 1 else '?'},) "
                             f"for x of shape {tuple(x.shape)} (channels on dim 1), got {tuple(bias.shape)}")
        if bias.device != x.device:
            raise ValueError(f"bias is on {bias.device} and x on {x.device}; they must share a device")
        if bias.dtype != x.dtype:  # autocast: a float32 bias meets float16 activations
            bias = bias.to(x.dtype)
        if not bias.is_contiguous():
            bias = bias.contiguous()
    if backend is not None:
        backend = _backend.check_backend(backend)
    if not x.is_contiguous():
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            return _channels_last(x, bias, slope, backend or "")
        x = x.contiguous()
    return call_bias_leaky_relu(x, bias, slope, backend or "")


def _channels_last(x: Tensor, bias: Optional[Tensor], slope: float, backend: str) -> Tensor:
    """The op on a channels-last (N, C, H, W) tensor, in its layout: its memory is the contiguous
    (N*H*W, C) matrix, channels on dim 1, which the kernels take as it is (no copy out and back).
    The bias gradient still sums each channel in memory order, which visits (n, h, w) in the order a
    contiguous tensor's does: the same bits in both layouts."""
    n, c, h, w = x.shape
    y = call_bias_leaky_relu(x.permute(0, 2, 3, 1).reshape(n * h * w, c), bias, slope, backend)
    return y.view(n, h, w, c).permute(0, 3, 1, 2)


class LeakyReLU(nn.Module):
    """``nn.LeakyReLU`` that saves a 1-bit mask instead of its input (see the module docs)."""

    def __init__(self, negative_slope: float = 0.2, *, backend: Optional[str] = None) -> None:
        super().__init__()
        self.negative_slope, self.backend = negative_slope, backend

    def forward(self, x: Tensor) -> Tensor:
        return bias_leaky_relu(x, None, self.negative_slope, backend=self.backend)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class FusedLinear(nn.Linear):
    """``nn.Linear`` followed by LeakyReLU(``slope``), bias and activation in one mask-saving kernel;
    ``slope=None`` leaves the activation out (a plain linear layer)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 slope: Optional[float] = 0.2, backend: Optional[str] = None, **kw) -> None:
        super().__init__(in_features, out_features, bias, **kw)
        self.slope, self.backend = slope, backend

    def forward(self, x: Tensor) -> Tensor:
        if self.slope is None:
            return F.linear(x, self.weight, self.bias)
        y = F.linear(x, self.weight)
        if y.dim() == 2:  # (batch, features): channels already on dim 1
            return bias_leaky_relu(y, self.bias, self.slope, backend=self.backend)
        flat = y.reshape(-1, self.out_features)
        return bias_leaky_relu(flat, self.bias, self.slope, backend=self.backend).view(y.shape)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", slope={self.slope}"


class FusedConv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by LeakyReLU(``slope``), bias and activation in one mask-saving
    kernel; ``slope=None`` leaves the activation out."""

    def __init__(self, *args, slope: Optional[float] = 0.2, backend: Optional[str] = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.slope, self.backend = slope, backend

    def forward(self, x: Tensor) -> Tensor:
        if self.slope is None:
            return super().forward(x)
        y = self._conv_forward(x, self.weight, None)
        return bias_leaky_relu(y, self.bias, self.slope, backend=self.backend)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", slope={self.slope}"
