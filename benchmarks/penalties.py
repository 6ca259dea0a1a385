"""Time and memory of a critic step with a gradient penalty: pygan against plain double backprop.

The step is what a WGAN-GP critic iteration computes before its optimizer step: D on real and on
fake samples, the Wasserstein loss, the penalty at per-sample interpolates, and one backward. The
baseline is written the way public GAN repositories write it (``autograd.grad(create_graph=True)``,
``gradients.norm(2, dim=1)``, ``((norm - 1) ** 2).mean() * 10``); pygan's step calls
``pygan.discriminator_loss`` and ``pygan.gradient_penalty`` (exact double backprop with the fused
penalty head), on the same critic (``pygan``) and on the critic built from pygan.nn's fused
bias + LeakyReLU layers, which save a 1-bit mask instead of each pre-activation (``pygan-fused``).
``torch.compile`` of the baseline is tried too (it has no double backward: the output says so). The
impls run in interleaved blocks; each one's least-disturbed block counts. Memory is the peak
allocated by the step on a GPU, and on the CPU the bytes of tensors autograd saves for backward
(the activations both graphs keep; counted once per storage).

``--step r1`` times the R1 critic step instead: the non-saturating loss on real and fake samples
and R1 (gamma 10) on the real ones, one backward. The baseline takes R1 from the loss's own forward
of the real batch (``autograd.grad(create_graph=True)``, ``grad.pow(2).sum(1).mean()``);
``pygan`` and ``pygan-fused`` call ``pygan.discriminator_loss`` and ``pygan.penalties.r1`` on those outputs
(exact double backprop); ``pygan-closed`` (MLP only) runs the fused critic's layers through
``pygan._ops.mlp_step``, the closed-form step the engine uses for its MLP critic, and the penalty
head on the input gradient it returns.

    python benchmarks/penalties.py                         # CPU: MLP on 2-D data and DCGAN-64, batch 64 and 256
    python benchmarks/penalties.py --device cuda --json out.json
    python benchmarks/penalties.py --models mlp --batches 256
    python benchmarks/penalties.py --step r1 --models mlp --batches 64 512
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import pygan
from pygan import nn as pnn
from pygan._ops.mlp_step import mlp_step
from pygan.penalties import gradient_norm_penalty, r1

import _timing as timing
from _timing import format_table, sync


def mlp_critic(fused: bool = False) -> nn.Module:
    """The toy critic for 2-D data: three hidden layers of 512, LeakyReLU(0.2); with ``fused``,
    from pygan.nn's layers (same parameters)."""
    if fused:
        return nn.Sequential(pnn.FusedLinear(2, 512), pnn.FusedLinear(512, 512), pnn.FusedLinear(512, 512),
                             pnn.FusedLinear(512, 1, slope=None))
    return nn.Sequential(nn.Linear(2, 512), nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.LeakyReLU(0.2),
                         nn.Linear(512, 512), nn.LeakyReLU(0.2), nn.Linear(512, 1))


def dcgan_critic(fused: bool = False) -> nn.Module:
    """DCGAN's 64x64 discriminator without batch norm (WGAN-GP forbids it): 4x4 stride-2 convs
    3 -> 64 -> 128 -> 256 -> 512, LeakyReLU(0.2), then a 4x4 conv to one logit."""
    layers: list[nn.Module] = []
    for a, b in zip([3, 64, 128, 256], [64, 128, 256, 512]):
        layers += [pnn.FusedConv2d(a, b, 4, 2, 1)] if fused else [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(512, 1, 4, 1, 0), nn.Flatten())


MODELS = {"mlp": (mlp_critic, (2,)), "dcgan64": (dcgan_critic, (3, 64, 64))}


def baseline_step(D, real, fake):
    """A WGAN-GP critic step as public repositories write it."""
    alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    d_interpolates = D(interpolates)
    gradients = torch.autograd.grad(outputs=d_interpolates, inputs=interpolates,
                                    grad_outputs=torch.ones_like(d_interpolates),
                                    create_graph=True, retain_graph=True)[0]
    gradients = gradients.view(gradients.size(0), -1)
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * 10
    d_loss = D(fake).mean() - D(real).mean() + gradient_penalty
    d_loss.backward()


def pygan_step(D, real, fake):
    loss = pygan.discriminator_loss(D(real), D(fake), "wasserstein")
    (loss + pygan.gradient_penalty(D, real, fake, kind="wgan-gp")).backward()


def r1_baseline_step(D, real, fake):
    """The non-saturating loss with R1 from the loss's forward, as public repositories write it."""
    x = real.detach().requires_grad_(True)
    out_r, out_f = D(x), D(fake)
    loss = F.softplus(-out_r).mean() + F.softplus(out_f).mean()
    (grad,) = torch.autograd.grad(out_r.sum(), x, create_graph=True)
    (loss + 10 / 2 * grad.pow(2).sum(1).mean()).backward()


def r1_pygan_step(D, real, fake):
    x = real.detach().requires_grad_(True)
    out_r = D(x)
    loss = pygan.discriminator_loss(out_r, D(fake), "gan")
    (loss + r1(out_r, x, weight=10.0)).backward()


def r1_closed_step(D, real, fake):
    """The closed form on the fused critic's layers: logits and input gradient from one pass over
    both batches, the penalty head on the gradient."""
    weights, biases = [m.weight for m in D], [m.bias for m in D]
    (out_r, _, grad), (out_f, _, _) = mlp_step([real, fake], weights, biases, 0.2)
    loss = pygan.discriminator_loss(out_r, out_f, "gan")
    (loss + gradient_norm_penalty(grad, head="squared", weight=10.0 / 2)).backward()


STEPS = {"wgan-gp": {"baseline": (baseline_step, False), "pygan": (pygan_step, False),
                     "pygan-fused": (pygan_step, True)},
         "r1": {"baseline": (r1_baseline_step, False), "pygan": (r1_pygan_step, False),
                "pygan-fused": (r1_pygan_step, True), "pygan-closed": (r1_closed_step, True)}}


def peak_mb(step, device) -> float:
    """Peak memory of one step: allocated on a GPU, saved-for-backward bytes on the CPU."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values()) / 2**20


def run(args):
    device = torch.device(args.device)
    rows = []
    first = True
    for model in args.models:
        make, shape = MODELS[model]
        torch.manual_seed(0)
        D = make().to(device)
        torch.manual_seed(0)
        D_fused = make(fused=True).to(device)
        for batch in args.batches:
            real = torch.randn(batch, *shape, device=device)
            fake = torch.randn(batch, *shape, device=device)

            def timed(fn, model=D):
                def go():
                    model.zero_grad(set_to_none=True)
                    fn(model, real, fake)
                return go

            impls = {name: timed(fn, D_fused if fused else D) for name, (fn, fused) in STEPS[args.step].items()
                     if not (name == "pygan-closed" and model != "mlp")}
            if not args.no_compile:
                impls["compile"] = timed(torch.compile(STEPS[args.step]["baseline"][0]))
            # Interleaved blocks: a burst of load on the shared machine lands on every impl alike.
            timings = timing.interleaved(impls, device, blocks=args.blocks, reps=args.reps, min_time=args.min_time)
            memory = {name: peak_mb(impls[name], device) for name in timings}
            made = {name: timing.row(f"{args.step} critic step", name, batch, times, device, memory[name], model=model,
                                     threads=torch.get_num_threads())
                    for name, times in timings.items()}
            rows += made.values()
            base = made["baseline"]
            shown = [{"model": model, "batch": batch, "impl": name, "ms": r["ms_min"], "MB": r["peak_mb"],
                      "vs_base": base["ms_min"] / r["ms_min"], "mem_ratio": r["peak_mb"] / base["peak_mb"]}
                     for name, r in made.items()]
            print(format_table(shown, first, cols=("model", "batch", "impl", "ms", "MB", "vs_base", "mem_ratio")),
                  flush=True)
            first = False
    return {"rows": rows}


def main():
    p = timing.parser(__doc__, interleaved=(5, 2, None))
    p.add_argument("--step", default="wgan-gp", choices=list(STEPS), help="the critic step (see above)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--min-time", type=float, default=0.0, help="run the interleaved blocks at least this long (s)")
    args = p.parse_args()
    timing.main(args, f"penalties benchmark ({args.step} critic step)", run)


if __name__ == "__main__":
    main()
