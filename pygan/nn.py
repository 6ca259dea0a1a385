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

``WholeMapConv2d`` and ``WholeMapConvTranspose2d`` are the convolutions at the ends of a DCGAN, whose
kernel is a whole feature map (a discriminator's map to its logit, a generator's code to its first
map), run as the one matrix product they are. ``conv2d`` is a convolution whose derivatives of every
order are convolutions again, for penalties' double backward; ``FewChannelConvTranspose2d`` is a
generator's last layer to an image, run as a matrix product and a sum over the kernel's taps.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._ops import backend as _backend
from ._ops import conv as _conv
from ._ops.activation import call_bias_leaky_relu

__all__ = ["FewChannelConvTranspose2d", "FusedConv2d", "FusedLinear", "LeakyReLU", "WholeMapConv2d",
           "WholeMapConvTranspose2d", "bias_leaky_relu", "conv2d"]



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


def conv2d(x: Tensor, weight: Tensor, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    r"""``F.conv2d(x, weight)`` (no bias, zero padding),

    .. math:: y_{n,o} = \sum_{c} (W_{o,c} \star x_{n,c}),

    whose derivatives of every order run as native convolutions and convolution gradients
    (pygan/_ops/conv.py): a gradient penalty's double backward through a convolutional critic takes
    no transposed copies. A plain backward is PyTorch's own (the same bits); ``FusedConv2d`` runs
    its convolution here."""
    pair = nn.modules.utils._pair
    return _conv.conv2d(x, weight, (pair(stride), pair(padding), pair(dilation), groups))


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
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            y = self._conv_forward(x, self.weight, None)
        else:
            y = conv2d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        return bias_leaky_relu(y, self.bias, self.slope, backend=self.backend)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", slope={self.slope}"


# A convolution whose kernel is a whole map has one output position (or, transposed, one input
# position): a matrix product with a batch-sized dimension and a map-sized one. The CPU's
# convolution library runs that shape far below its rate (Stacked MNIST's critic head, 129 x 4 x 4
# to one logit at batch 64: 0.75 ms a backward pass, where the product takes microseconds), and its
# double backward for a penalty goes through transposed convolutions. F.linear runs it as the
# product, and autograd differentiates that product to any order with more products.


def _plain_kernel(conv: nn.modules.conv._ConvNd) -> bool:
    """No padding, dilation or groups: the kernel's positions meet the map's one to one."""
    return (conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1) and conv.groups == 1
            and tuple(getattr(conv, "output_padding", (0, 0))) == (0, 0))


class WholeMapConv2d(nn.Conv2d):
    r"""``nn.Conv2d`` (same parameters, same state_dict) that runs as a matrix product where its
    kernel covers the whole input map (input size = ``kernel_size``, no padding, dilation or
    groups), as at a DCGAN discriminator's head:

    .. math:: y_{n,o,0,0} = b_o + \sum_{c,h,w} W_{o,c,h,w}\, x_{n,c,h,w}.

    The map is flattened in the weight's layout (channels-last weights: (h, w, c) order, a view of
    channels-last inputs). Any other input takes ``nn.Conv2d``'s path."""

    def forward(self, x: Tensor) -> Tensor:
        if not (x.dim() == 4 and tuple(x.shape[2:]) == self.kernel_size and x.shape[1] == self.in_channels
                and _plain_kernel(self)):
            return super().forward(x)
        w = self.weight
        if _conv.stored_channels_last(w):
            w, x = w.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)
        return F.linear(x.reshape(x.shape[0], -1), w.reshape(w.shape[0], -1), self.bias)[:, :, None, None]


class WholeMapConvTranspose2d(nn.ConvTranspose2d):
    r"""``nn.ConvTranspose2d`` (same parameters, same state_dict) that runs as a matrix product on a
    1 x 1 input (no padding, dilation or groups), whose output map is then the kernel's, as at a
    DCGAN generator's first layer:

    .. math:: y_{n,o,h,w} = b_o + \sum_i z_{n,i}\, W_{i,o,h,w}.

    The output takes the weight's layout (channels-last weights give a channels-last map, as the
    convolution would). Any other input takes ``nn.ConvTranspose2d``'s path."""

    def forward(self, x: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        if not (output_size is None and x.dim() == 4 and tuple(x.shape[2:]) == (1, 1)
                and x.shape[1] == self.in_channels and _plain_kernel(self)):
            return super().forward(x, output_size)
        n, (i, o, kh, kw) = x.shape[0], self.weight.shape
        z = x.reshape(n, i)
        if _conv.stored_channels_last(self.weight):
            y = (z @ self.weight.permute(0, 2, 3, 1).reshape(i, kh * kw * o)).view(n, kh, kw, o)
            if self.bias is not None:
                y = y + self.bias
            return y.permute(0, 3, 1, 2)
        y = (z @ self.weight.reshape(i, o * kh * kw)).view(n, o, kh, kw)
        return y if self.bias is None else y + self.bias[:, None, None]


class FewChannelConvTranspose2d(nn.ConvTranspose2d):
    r"""``nn.ConvTranspose2d`` (same parameters, same state_dict) to an image of few channels (at most
    4), as at a DCGAN generator's last layer: on the CPU, in float32 or float64, with a kernel a
    multiple of the stride (no dilation or groups), it runs as one matrix product to every kernel
    tap's contribution and their sum into the image,

    .. math:: y_{n,c,i s - p + a, j s - p + b} \mathrel{+}= \sum_o x_{n,o,i,j}\, W_{o,c,a,b} \;(+\, b_c),

    where the CPU's convolution library runs at a fifth of its forward rate; its derivatives are
    those of :func:`conv2d`'s family. The output takes the weight's layout. Any other input takes
    ``nn.ConvTranspose2d``'s path."""

    def forward(self, x: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        args = (self.stride, self.padding, self.dilation, self.groups)
        if not (output_size is None and x.dim() == 4 and x.shape[0] and x.shape[1] == self.in_channels
                and self.padding_mode == "zeros" and x.dtype == self.weight.dtype
                and _conv.few_channel_path(x, self.out_channels, self.weight, args)):
            return super().forward(x, output_size)
        size = (x.shape[0], self.out_channels, *((x.shape[2 + d] - 1) * self.stride[d] - 2 * self.padding[d]
                                                 + self.kernel_size[d] + self.output_padding[d] for d in (0, 1)))
        layout = torch.channels_last if _conv.stored_channels_last(self.weight) else torch.contiguous_format
        y = _conv.conv_transpose2d(x, self.weight, size, args, layout)
        return y if self.bias is None else y + self.bias[:, None, None]
