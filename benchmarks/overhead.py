"""Host overhead of one small op call, forward + backward, against its floor and eager PyTorch.

At the logit counts of a training step (N = 8 to 512) an op's time is host work: argument checks,
dispatch, allocation and the autograd node. For every public loss entry point and loss name, the
penalty head and the fused activation, this times three things side by side:

- ``floor``: a bare one-node ``autograd.Function`` that allocates its output and the gradients of its
  inputs and saves its inputs (the least any fused op with a backward does);
- ``eager``: the plain PyTorch expression a training script writes for the same value;
- ``pygan``: the public call.

Each is run in blocks interleaved with the others (every impl once per block, ``--reps`` calls each);
the time is the least-disturbed block's mean, the right statistic on a shared machine. One thread by
default (``--threads``): at these sizes a second thread only adds noise.

    python benchmarks/overhead.py                        # every entry, N = 8 and 512, one thread
    python benchmarks/overhead.py --ops discriminator_loss --losses gan hinge
    python benchmarks/overhead.py --json rows.json       # rows in benchmarks/_timing.py's schema
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

import pygan
from pygan._ops.loss_terms import loss_spec

import _timing as timing
from _timing import device_name
from losses import eager_loss

SIZES = [8, 512]
OPS = ("discriminator_loss", "generator_loss", "minimax_losses", "divergence_estimate",
       "gradient_norm_penalty", "bias_leaky_relu")


def _empty_grads(ctx, grad):
    return tuple(torch.empty_like(x) for x in ctx.saved_tensors)


class Floor(torch.autograd.Function):
    """The least a fused op does: allocate its output (a scalar), save its inputs, allocate their
    gradients."""

    @staticmethod
    def forward(ctx, *xs):
        ctx.save_for_backward(*xs)
        return torch.empty((), dtype=xs[0].dtype, device=xs[0].device)

    backward = staticmethod(_empty_grads)


class ElementwiseFloor(torch.autograd.Function):
    """:class:`Floor` for an elementwise op: its output is shaped like the first input."""

    @staticmethod
    def forward(ctx, *xs):
        ctx.save_for_backward(*xs)
        return torch.empty_like(xs[0])

    backward = staticmethod(_empty_grads)


def _params(loss: str) -> dict:
    return {"alpha": 0.5} if loss == "alpha" else {}


def _backward(fn: Callable, inputs: tuple) -> Callable[[], None]:
    def go():
        for x in inputs:
            x.grad = None
        fn().backward()
    return go


def cases(op: str, loss: str, n: int, gen: torch.Generator) -> dict[str, Callable[[], None]]:
    """impl -> one call of ``op`` (forward + backward) at size ``n``."""
    params = _params(loss)
    if op in ("gradient_norm_penalty", "bias_leaky_relu"):
        # A batch of n/2 samples of 2 features: the gradient of a 2-D toy critic's input, or one
        # hidden layer's pre-activations.
        x = torch.randn(n // 2, 2, generator=gen).requires_grad_()
        if op == "gradient_norm_penalty":
            return {"floor": _backward(lambda: Floor.apply(x), (x,)),
                    "eager": _backward(lambda: ((x.norm(2, dim=1) - 1) ** 2).mean() * 10, (x,)),
                    "pygan": _backward(lambda: pygan.penalties.gradient_norm_penalty(x, weight=10.0), (x,))}
        b = torch.randn(2, generator=gen).requires_grad_()
        # Each impl sums its output to a scalar to call backward on, as a loss downstream would.
        return {"floor": _backward(lambda: ElementwiseFloor.apply(x, b).sum(), (x, b)),
                "eager": _backward(lambda: F.leaky_relu(x + b, 0.2).sum(), (x, b)),
                "pygan": _backward(lambda: pygan.nn.bias_leaky_relu(x, b, 0.2).sum(), (x, b))}
    real = (torch.randn(n // 2, generator=gen) * 2).requires_grad_()
    fake = (torch.randn(n - n // 2, generator=gen) * 2).requires_grad_()
    both = (real, fake)
    floor = _backward(lambda: Floor.apply(real, fake), both)
    if op == "discriminator_loss":
        return {"floor": floor, "eager": _backward(lambda: eager_loss(real, fake, loss, params), both),
                "pygan": _backward(lambda: pygan.discriminator_loss(real, fake, loss, **params), both)}
    if op == "divergence_estimate":
        return {"floor": floor, "eager": _backward(lambda: -eager_loss(real, fake, loss, params), both),
                "pygan": _backward(lambda: pygan.divergence_estimate(real, fake, loss, **params), both)}
    if op == "generator_loss":
        relativistic = loss.startswith("relativistic")
        g_inputs = both if relativistic else (fake,)
        return {"floor": _backward(lambda: Floor.apply(*g_inputs), g_inputs),
                "eager": _backward(lambda: eager_loss(real, fake, loss, params, "g"), g_inputs),
                "pygan": _backward(lambda: pygan.generator_loss(
                    fake, loss, real_logits=real if relativistic else None, **params), g_inputs)}
    if op == "minimax_losses":
        # Both players' losses and the gradients a simultaneous update backpropagates.
        def eager():
            r, f = real.detach().requires_grad_(), fake.detach().requires_grad_()
            d, g = eager_loss(r, f, loss, params), eager_loss(r, f, loss, params, "g")
            torch.autograd.grad(d, (r, f))
            torch.autograd.grad(g, (f,))
        return {"floor": floor, "eager": eager,
                "pygan": lambda: pygan.minimax_losses(real, fake, loss, **params)}
    raise ValueError(f"unknown op {op!r}")


def run(args):
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    rows = []
    header = f"{'op':>22} {'loss':>20} {'N':>5} {'floor us':>9} {'eager us':>9} {'pygan us':>9} " \
             f"{'/floor':>7} {'/eager':>7}"
    print(header, flush=True)
    for op in args.ops:
        losses = args.losses if op not in ("gradient_norm_penalty", "bias_leaky_relu") else ["-"]
        for loss in losses:
            if op == "divergence_estimate" and loss_spec(loss, _params(loss)).kind not in ("f", "ipm"):
                continue  # bounds no divergence
            for n in args.sizes:
                times = timing.interleaved(cases(op, loss, n, gen), device, args.blocks, args.reps,
                                           warmup=max(args.reps // 5, 3))
                for impl, ts in times.items():
                    rows.append(timing.row(op, impl, n, ts, device, loss=loss, threads=args.threads))
                best = {k: min(v) * 1e3 for k, v in times.items()}  # us
                print(f"{op:>22} {loss:>20} {n:>5} {best['floor']:>9.1f} {best['eager']:>9.1f} "
                      f"{best['pygan']:>9.1f} {best['pygan'] / best['floor']:>6.2f}x "
                      f"{best['pygan'] / best['eager']:>6.2f}x", flush=True)
    return {"device": device_name(device), "torch": torch.__version__, "rows": rows}


def main():
    p = timing.parser(__doc__, interleaved=(7, 200, 1))
    p.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    p.add_argument("--losses", nargs="+", default=list(pygan.LOSS_NAMES), choices=pygan.LOSS_NAMES)
    p.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("the host-overhead benchmark runs on the CPU (on a GPU the same host work bounds a step; "
                "scripts/gpu.sh times the ops there)")
    timing.main(args, "host-overhead benchmark", run)


if __name__ == "__main__":
    main()
