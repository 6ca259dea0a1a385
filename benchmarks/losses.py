"""Forward + backward time of the fused adversarial losses against eager PyTorch and torch.compile.

For each size N (logits in all, half real and half fake) it times ``loss = D_loss(real, fake);
loss.backward()`` for every pygan backend that runs on the device (on the CPU, once per build of the
loops the CPU runs: ``cpu-avx2``, ``cpu-base``), for the same loss written in
eager PyTorch (pygan's reference terms, the way a training script composes them) and for
``torch.compile`` of that eager function. It prints median times, the speed-up over eager and over
torch.compile, and achieved bandwidth counted as the minimum traffic of forward + backward (read
each logit once, write each gradient once); on a GPU also the share of the device's copy bandwidth,
measured in the same run.

    python benchmarks/losses.py                       # CPU, gan, float32, every size
    python benchmarks/losses.py --device cuda --loss js --dtype bfloat16
    python benchmarks/losses.py --sizes 4096 1048576 --json out.json
    python benchmarks/losses.py --minimax             # both players' losses and gradients
    python benchmarks/losses.py --second-order        # gradients of gradients

``--second-order`` times double backward, a Hessian-vector product: ``g = autograd.grad(loss,
(real, fake), create_graph=True)``, then the backward of ``<g, v>`` (what a penalty on the loss's
gradient or an unrolled step costs); its traffic counts each logit and each v read once and each
result written once.

``--minimax`` times what a simultaneous update needs from one pair of logit tensors: D's loss and
G's loss with D's gradients for both tensors and G's for the fakes. ``eager`` (and ``compile``) is
each loss in PyTorch with ``autograd.grad``; ``pygan-2`` the two fused losses, one launch each
(pygan's path before the minimax kernel); ``pygan`` is ``pygan.minimax_losses``, one launch.
"""

from __future__ import annotations

import statistics

import torch

import pygan
from pygan._ops import backend as _backend
from pygan._ops.loss_terms import loss_spec, reference_term

import _timing as timing
from _timing import device_name, format_table, time_ms

SIZES = [256, 4096, 65536, 1 << 20, 1 << 24]


def eager_loss(real, fake, loss, params, player="d"):
    """The loss as a script writes it in PyTorch: the closed-form terms, then means; D's loss, or
    with ``player="g"`` G's non-saturating one (on the fakes; the relativistic ones on both sides)."""
    spec = loss_spec(loss, params)
    d = player == "d"
    if spec.kind == "relativistic":
        return reference_term(spec.real if d else spec.gen, real - fake if d else fake - real, spec.alpha).mean()
    if spec.kind == "relativistic_average":
        t_real, t_fake = (spec.real, spec.fake) if d else (spec.fake, spec.gen)
        return (reference_term(t_real, real - fake.mean(), spec.alpha).mean()
                + reference_term(t_fake, fake - real.mean(), spec.alpha).mean())
    if not d:
        return reference_term(spec.gen, fake, spec.alpha).mean()
    return reference_term(spec.real, real, spec.alpha).mean() + reference_term(spec.fake, fake, spec.alpha).mean()


def _two_players(d_fn, g_fn, real, fake):
    """Both losses and the gradients a simultaneous update backpropagates, by autograd."""
    r, f = real.detach().requires_grad_(), fake.detach().requires_grad_()
    d, g = d_fn(r, f), g_fn(f)
    d_r, d_f = torch.autograd.grad(d, (r, f), retain_graph=True)  # compile may share saved tensors
    (g_f,) = torch.autograd.grad(g, (f,))
    return d.detach(), g.detach(), d_r, d_f, g_f


def minimax_impls(loss, params, backends, compile_):
    """name -> fn(real, fake) for --minimax (non-relativistic losses)."""
    spec = loss_spec(loss, params)
    if spec.kind.startswith("relativistic"):
        raise SystemExit("--minimax times the non-relativistic losses")

    def eager(r, f):
        return _two_players(lambda a, b: eager_loss(a, b, loss, params),
                            lambda b: reference_term(spec.gen, b, spec.alpha).mean(), r, f)

    impls = {"eager": eager}
    if compile_:
        impls["compile"] = torch.compile(eager)
    for b in backends:
        impls[f"{b}-2"] = lambda r, f, b=b: _two_players(
            lambda x, y: pygan.discriminator_loss(x, y, loss, backend=b, **params),
            lambda y: pygan.generator_loss(y, loss, backend=b, **params), r, f)
        impls[b] = lambda r, f, b=b: pygan.minimax_losses(r, f, loss, backend=b, **params)
    return impls


def copy_bandwidth_gbs(device):
    """Device-to-device copy bandwidth, counting bytes read plus bytes written."""
    n = 1 << 28
    src = torch.empty(n, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device)
    return 2 * n / (ms * 1e-3) / 1e9


def _add_rows(rows, samples, op, n, bytes_min, copy_bw, device, **extra):
    """Rows of one size in _timing.row's schema, with the median time as ``ms`` and its bandwidth
    (minimum traffic ``bytes_min``: each logit read, each gradient written once) and ratios."""
    timings = {name: statistics.median(ts) for name, ts in samples.items()}
    for name, ms in timings.items():
        row = {**timing.row(op, name, n, samples[name], device, **extra), "ms": ms,
               "GB/s": bytes_min / (ms * 1e-3) / 1e9, "vs_eager": timings["eager"] / ms}
        if "compile" in timings:
            row["vs_compile"] = timings["compile"] / ms
        if copy_bw:
            row["of_copy_bw"] = row["GB/s"] / copy_bw
        rows.append(row)


def run(args):
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    params = {"alpha": args.alpha} if args.loss == "alpha" else {}
    backends = [b for b in _backend.PREFERENCE.get(device.type, ())
                if _backend.unavailable_reason(b, device) is None]
    if device.type == "cpu" and "triton" in backends:
        backends.remove("triton")  # the interpreter is a correctness tool, not a backend to time
    compiled = torch.compile(lambda r, f: eager_loss(r, f, args.loss, params)) if not args.no_compile else None
    copy_bw = copy_bandwidth_gbs(device) if device.type == "cuda" else None
    rows = []
    op = "minimax_losses" if args.minimax else "second_order" if args.second_order else "discriminator_loss"
    extra = {"loss": args.loss, "dtype": args.dtype, "threads": torch.get_num_threads()}
    gen = torch.Generator(device="cpu").manual_seed(0)
    for n in args.sizes:
        nr = n // 2
        real0 = (torch.randn(nr, generator=gen) * 2).to(dtype).to(device)
        fake0 = (torch.randn(n - nr, generator=gen) * 2).to(dtype).to(device)
        real = real0.clone().requires_grad_()
        fake = fake0.clone().requires_grad_()

        vs = [torch.randn(x.shape, generator=gen).to(dtype).to(device) for x in (real0, fake0)]

        def step(fn):
            def go():
                real.grad = None
                fake.grad = None
                out = fn(real, fake)
                if args.second_order:  # d/dx <d out/dx, v>
                    grads = torch.autograd.grad(out, (real, fake), create_graph=True)
                    out = (grads[0] * vs[0]).sum() + (grads[1] * vs[1]).sum()
                out.backward()
            return go

        if args.minimax:
            samples = {}
            for name, fn in minimax_impls(args.loss, params, backends, compiled is not None).items():
                samples[name] = time_ms(lambda fn=fn: fn(real0, fake0), device, samples=True)
            _add_rows(rows, samples, op, n, 2 * n * real0.element_size() + 3 * n * 4, copy_bw, device, **extra)
            print(format_table([r for r in rows if r["size"] == n], header=n == args.sizes[0]), flush=True)
            continue
        samples = {"eager": time_ms(step(lambda r, f: eager_loss(r, f, args.loss, params)), device, samples=True)}
        if compiled is not None:
            try:
                samples["compile"] = time_ms(step(compiled), device, samples=True)
            except Exception as e:  # compile unsupported here: say so in the table
                print(f"torch.compile failed at N={n}: {type(e).__name__}: {e}")
        for b in backends:
            fn = step(lambda r, f, b=b: pygan.discriminator_loss(r, f, args.loss, backend=b, **params))
            if b == "cpu":  # every build of the CPU loops this CPU runs, best first
                for isa in reversed(_backend.cpu_isas()):
                    with _backend.cpu_isa(isa):
                        samples[f"cpu-{isa}"] = time_ms(fn, device, samples=True)
            else:
                samples[b] = time_ms(fn, device, samples=True)
        _add_rows(rows, samples, op, n, (3 if args.second_order else 2) * n * real0.element_size(), copy_bw,
                  device, **extra)
        print(format_table([r for r in rows if r["size"] == n], header=n == args.sizes[0]), flush=True)
    return {"device": device_name(device), "minimax": args.minimax, "second_order": args.second_order,
            "loss": args.loss, "dtype": args.dtype,
            "torch": torch.__version__, "copy_GB/s": copy_bw, "rows": rows}


def main():
    p = timing.parser(__doc__)
    p.add_argument("--loss", default="gan", choices=pygan.LOSS_NAMES)
    p.add_argument("--alpha", type=float, default=0.5, help="parameter of loss 'alpha'")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    p.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    p.add_argument("--minimax", action="store_true", help="time both players' losses and gradients")
    p.add_argument("--second-order", action="store_true", help="time a Hessian-vector product (double backward)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    args = p.parse_args()
    if args.minimax and args.second_order:
        p.error("--minimax and --second-order time different things: pass one")
    kind = "minimax" if args.minimax else "second-order" if args.second_order else "losses"
    timing.main(args, f"{kind} benchmark: loss={args.loss} dtype={args.dtype}", run)


if __name__ == "__main__":
    main()
