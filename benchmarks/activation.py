"""The fused bias + LeakyReLU (``pygan.nn.bias_leaky_relu``) at a discriminator's activation sizes
against eager PyTorch and torch.compile.

For each activation of the DCGAN critics pygan trains (Stacked MNIST's at width 32 and DCGAN-64's),
batch 64, it times one forward and one backward, ``y = leaky(x + b)`` then the gradients of ``x``
and ``b`` for an upstream ``g``:

- ``eager``: ``F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2)``, what a training script writes;
- ``compile``: ``torch.compile`` of that function;
- ``pygan``: ``pygan.nn.bias_leaky_relu`` (one pass forward, saving a 1-bit mask; one pass backward,
  the bias gradient summed by channel).

GB/s counts the minimum traffic of both passes: x read and y written forward, g read and the input
gradient written backward (the 1-bit mask and the bias are left out).

    python benchmarks/activation.py                    # one thread, the CPU
    python benchmarks/activation.py --threads 2
    python benchmarks/activation.py --device cuda --json out.json
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import pygan

import _timing as timing
from _timing import device_name, format_table

COLS = ("model", "size", "impl", "ms", "GB/s", "vs_eager", "vs_compile")
# (model, (channels, size)) for each activation of the two critics, batch 64.
SHAPES = [("Stacked MNIST D", (32, 16)), ("Stacked MNIST D", (64, 8)), ("Stacked MNIST D", (128, 4)),
          ("DCGAN-64 D", (64, 32)), ("DCGAN-64 D", (128, 16)), ("DCGAN-64 D", (256, 8))]
BATCH = 64


def impls(x: torch.Tensor, b: torch.Tensor, g: torch.Tensor, compile_: bool) -> dict:
    def eager_forward(x, b):
        return F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2)

    def call(forward):
        def run():
            torch.autograd.grad(forward(x, b), (x, b), g)
        return run

    out = {"eager": call(eager_forward)}
    if compile_:
        out["compile"] = call(torch.compile(eager_forward))
    out["pygan"] = call(lambda x, b: pygan.nn.bias_leaky_relu(x, b, 0.2))
    return out


def run(args):
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = []
    for model, (channels, size) in SHAPES:
        shape = (BATCH, channels, size, size)
        x = torch.randn(shape, generator=gen, device=device).requires_grad_()
        b = torch.randn(channels, generator=gen, device=device).requires_grad_()
        g = torch.randn(shape, generator=gen, device=device)
        times = timing.interleaved(impls(x, b, g, not args.no_compile), device, blocks=args.blocks, reps=args.reps)
        label = "x".join(map(str, shape))
        for row in timing.best_rows("bias_leaky_relu", label, times, device, model=model,
                                    threads=torch.get_num_threads()):
            rows.append({**row, "GB/s": 4 * x.numel() * x.element_size() / (row["ms"] * 1e-3) / 1e9})
        print(format_table(rows[-len(times):], header=len(rows) == len(times), cols=COLS), flush=True)
    return {"device": device_name(device), "torch": torch.__version__, "rows": rows}


def main():
    args = timing.parser(__doc__, interleaved=(7, 20, 1)).parse_args()
    timing.main(args, "fused activation benchmark", run)


if __name__ == "__main__":
    main()
