"""The multi-tensor updates (EMA of G's weights, weight clipping) against eager PyTorch, PyTorch's
foreach ops and torch.compile.

For the parameters of a model it times one in-place update of all of them:

- ``ema``: ``e += (1 - beta) (p - e)`` for each parameter pair. ``eager`` is the loop public GAN
  repositories write (``e.mul_(beta).add_(p, alpha=1 - beta)`` per tensor, beta a Python float);
  ``foreach`` is ``torch._foreach_lerp_``; ``compile`` is ``torch.compile`` of the eager loop;
  ``pygan`` is ``pygan.ema.EMA.update`` (the ramp-up counter and weight on the device, then one
  multi-tensor launch), the whole step as training runs it.
- ``clip``: every element clamped to [-c, c]. ``eager`` is ``p.clamp_(-c, c)`` per tensor,
  ``foreach`` ``torch._foreach_clamp_min_`` then ``_foreach_clamp_max_``, ``pygan``
  ``pygan.clip_weights_``.

GB/s counts the minimum traffic: EMA reads two tensors and writes one, clipping reads and writes one.

    python benchmarks/multi_tensor.py                 # CPU
    python benchmarks/multi_tensor.py --device cuda --json out.json
"""

from __future__ import annotations

import torch

import pygan
from pygan.ema import EMA

import _timing as timing
from _timing import device_name, format_table

COLS = ("model", "op", "impl", "tensors", "size", "ms", "GB/s", "vs_eager", "vs_foreach", "vs_compile")


def models(device):
    """(name, module) pairs: the ring MLP generator and the DCGAN-64 generator and critic."""
    g_ring, _ = pygan.models.build("mlp", (2,))
    g64, d64 = pygan.models.build("dcgan", (3, 64, 64))
    return [("ring MLP G", g_ring.to(device)), ("DCGAN-64 G", g64.to(device)), ("DCGAN-64 D", d64.to(device))]


def ema_impls(model, compile_):
    ema = EMA(model, 0.999)
    avg = [p.detach() for p in ema.module.parameters()]
    params = [p.detach() for p in model.parameters()]
    beta = 0.999

    def eager():
        for e, p in zip(avg, params):
            e.mul_(beta).add_(p, alpha=1 - beta)

    impls = {"eager": eager, "foreach": lambda: torch._foreach_lerp_(avg, params, 1 - beta)}
    if compile_:
        impls["compile"] = torch.compile(eager)
    impls["pygan"] = lambda: ema.update(model)
    return impls, 3


def clip_impls(model, compile_):
    params = [p.detach() for p in model.parameters()]
    c = 0.01

    def eager():
        for p in params:
            p.clamp_(-c, c)

    def foreach():
        torch._foreach_clamp_min_(params, -c)
        torch._foreach_clamp_max_(params, c)

    impls = {"eager": eager, "foreach": foreach}
    if compile_:
        impls["compile"] = torch.compile(eager)
    impls["pygan"] = lambda: pygan.clip_weights_(params, c)
    return impls, 2


def run(args):
    device = torch.device(args.device)
    rows = []
    for name, model in models(device):
        tensors = list(model.parameters())
        n = sum(p.numel() for p in tensors)
        for op, make in (("ema", ema_impls), ("clip", clip_impls)):
            impls, passes = make(model, not args.no_compile)
            times = timing.interleaved(impls, device, blocks=args.blocks, reps=args.reps)
            for row in timing.best_rows(op, n, times, device, model=name, tensors=len(tensors)):
                rows.append({**row, "GB/s": passes * n * 4 / (row["ms"] * 1e-3) / 1e9})
            print(format_table([r for r in rows if r["model"] == name and r["op"] == op],
                               header=not rows[:-len(times)], cols=COLS), flush=True)
    return {"device": device_name(device), "torch": torch.__version__, "rows": rows}


def main():
    args = timing.parser(__doc__, interleaved=(7, 20, None)).parse_args()
    timing.main(args, "multi-tensor benchmark", run)


if __name__ == "__main__":
    main()
