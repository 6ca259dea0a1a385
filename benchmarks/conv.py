"""pygan.nn's convolution layers at the Stacked MNIST DCGAN's sizes (batch 64, width 32,
channels-last, as the data set's defaults train) against PyTorch's own layers, eager and compiled.

Each case times one forward and one backward (the gradients of the input and the parameters for a
fixed upstream), or for the penalty the R1 critic step's double backward:

- ``head``: the critic's 129 x 4 x 4 map to one logit, ``WholeMapConv2d`` against ``nn.Conv2d``;
- ``first``: the generator's code (100) to its first 4 x 4 x 128 map, ``WholeMapConvTranspose2d``
  against ``nn.ConvTranspose2d``;
- ``last``: the generator's 16 x 16 x 32 map to the 32 x 32 x 3 image,
  ``FewChannelConvTranspose2d`` against ``nn.ConvTranspose2d``;
- ``critic layer 1``: the critic's first convolution from the image, ``pygan.nn.conv2d`` against
  ``F.conv2d``, with the input gradient (what G's gradient and a penalty take through it);
- ``R1 critic``: R1 on the critic's three fused stages (``FusedConv2d``, whose convolution is
  ``pygan.nn.conv2d``) and the head, the inner gradient and its norm's backward into the weights,
  against the same stages on ``F.conv2d`` (PyTorch's double backward).

``torch.compile`` of PyTorch's layer is the third column where it applies (it has no double
backward: the penalty row says so).

    python benchmarks/conv.py                    # two threads, the CPU
    python benchmarks/conv.py --threads 1 --json out.json
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pygan import nn as pnn
from pygan.models import DCGANDiscriminator

import _timing as timing
from _timing import device_name, format_table

COLS = ("case", "impl", "ms", "vs_eager", "vs_compile")
BATCH = 64
LAST = torch.channels_last


def layer_case(ours: nn.Module, theirs: nn.Module, shape: tuple, device, compile_: bool) -> dict:
    """Forward + backward of two layers with the same parameters on one channels-last input."""
    theirs.load_state_dict(ours.state_dict())
    ours, theirs = ours.to(device, memory_format=LAST), theirs.to(device, memory_format=LAST)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=gen, device=device).contiguous(memory_format=LAST).requires_grad_(True)
    up = torch.randn(theirs(x).shape, generator=gen, device=device)

    def call(module, forward):
        params = tuple(module.parameters())
        return lambda: torch.autograd.grad(forward(x), (x, *params), up)

    out = {"eager": call(theirs, theirs)}
    if compile_:
        out["compile"] = call(theirs, torch.compile(theirs))
    out["pygan"] = call(ours, ours)
    return out


def conv_case(device, compile_: bool) -> dict:
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32, generator=gen, device=device).contiguous(memory_format=LAST).requires_grad_(True)
    w = torch.randn(32, 3, 4, 4, generator=gen, device=device).contiguous(memory_format=LAST).requires_grad_(True)
    up = torch.randn(BATCH, 32, 16, 16, generator=gen, device=device).contiguous(memory_format=LAST)

    def eager(x, w):
        return F.conv2d(x, w, None, 2, 1)

    out = {"eager": lambda: torch.autograd.grad(eager(x, w), (x, w), up)}
    if compile_:
        compiled = torch.compile(eager)
        out["compile"] = lambda: torch.autograd.grad(compiled(x, w), (x, w), up)
    out["pygan"] = lambda: torch.autograd.grad(pnn.conv2d(x, w, 2, 1), (x, w), up)
    return out


class _PlainConvStage(pnn.FusedConv2d):
    """FusedConv2d with PyTorch's convolution (its double backward) and the same fused activation."""

    def forward(self, x):
        return pnn.bias_leaky_relu(self._conv_forward(x, self.weight, None), self.bias, self.slope)


def penalty_case(device, compile_: bool) -> dict:
    torch.manual_seed(0)
    ours = DCGANDiscriminator(3, 32, 32, minibatch_std=16).to(device, memory_format=LAST)
    theirs = DCGANDiscriminator(3, 32, 32, minibatch_std=16).to(device, memory_format=LAST)
    for i, stage in enumerate(theirs.body):
        plain = _PlainConvStage(stage.in_channels, stage.out_channels, 4, 2, 1).to(device, memory_format=LAST)
        theirs.body[i] = plain
    theirs.load_state_dict(ours.state_dict())
    gen = torch.Generator(device=device).manual_seed(0)
    real = torch.randn(BATCH, 3, 32, 32, generator=gen, device=device).contiguous(memory_format=LAST)

    def step(D):
        params = tuple(D.parameters())

        def run():
            x = real.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            torch.autograd.backward(g.square().sum(), inputs=params)
        return run

    out = {"eager": step(theirs)}
    if compile_:
        out["compile"] = step(torch.compile(theirs))
    out["pygan"] = step(ours)
    return out


def run(args):
    device = torch.device(args.device)
    compile_ = not args.no_compile
    cases = {
        "head": lambda: layer_case(pnn.WholeMapConv2d(129, 1, 4), nn.Conv2d(129, 1, 4), (BATCH, 129, 4, 4), device,
                                   compile_),
        "first": lambda: layer_case(pnn.WholeMapConvTranspose2d(100, 128, 4, bias=False),
                                    nn.ConvTranspose2d(100, 128, 4, bias=False), (BATCH, 100, 1, 1), device, compile_),
        "last": lambda: layer_case(pnn.FewChannelConvTranspose2d(32, 3, 4, 2, 1), nn.ConvTranspose2d(32, 3, 4, 2, 1),
                                   (BATCH, 32, 16, 16), device, compile_),
        "critic layer 1": lambda: conv_case(device, compile_),
        "R1 critic": lambda: penalty_case(device, compile_),
    }
    rows = []
    for case, make in cases.items():
        times = timing.interleaved(make(), device, blocks=args.blocks, reps=args.reps)
        rows += timing.best_rows("conv", case, times, device, threads=torch.get_num_threads(), case=case)
        print(format_table(rows[-len(times):], header=len(rows) == len(times), cols=COLS), flush=True)
    return {"device": device_name(device), "torch": torch.__version__, "rows": rows}


def main():
    args = timing.parser(__doc__, interleaved=(7, 10, 2)).parse_args()
    timing.main(args, "convolution layers benchmark", run)


if __name__ == "__main__":
    main()
