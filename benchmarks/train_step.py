"""Training steps per second: a plain eager PyTorch loop against pygan.GAN, side by side.

Three cases:

- ``demo``: the README's demo run (``python -m pygan train --data ring``, its settings read from
  the command line's defaults): MLP width 128, 2-d latent, batch 512, non-saturating GAN loss with
  R1 (weight 0.1) on every D step, EMA of G (0.999), Adam 1e-3 (0.5, 0.999). Its eager loop takes
  R1 from the loss's own forward of the real batch (``autograd.grad(create_graph=True)``) and
  updates the EMA in a Python loop over the parameters.
- ``ring``: the ring of 8 Gaussians, MLP generator and discriminator (3 hidden layers of 256),
  batch 512, non-saturating GAN loss, n_critic 1.
- ``dcgan64``: DCGAN-64 generator and discriminator (no batch norm in the critic), batch 64,
  WGAN-GP (weight 10), n_critic 5.

The eager loop is written the way public GAN repositories write it: ``BCEWithLogitsLoss`` against
ones and zeros, ``fake.detach()`` for D, fresh noise and a full backward (D's weight gradients
included) for G; for WGAN-GP ``autograd.grad(create_graph=True)`` and ``norm(2, dim=1)``. Rows:
``eager`` (``torch.optim.Adam(params, lr, betas)`` as users write it); ``eager-fused-adam`` (the same
loop with ``fused=True``: how much of pygan's gain an eager loop gets from the optimizer alone);
``compile`` (the loop with ``torch.compile``d networks, where it runs: it has no double backward for
the penalty); ``pygan`` (``GAN(...)``, alternating steps, with the Adam pygan builds,
``pygan.gan.adam``); ``pygan-fused`` (``fused=True``); ``pygan-captured`` (``capture=True``, CUDA
only). Each row trains its own copy of the networks with the case's Adam settings, from the same
initial weights.

Columns: ms per step (each impl's least-disturbed block), ``vs_eager``, and ``GFLOP``, the matrix
products' and convolutions' floating-point work in one step (counted at torch's dispatcher, double
backward included); ``flop_bound`` = eager's GFLOP / the row's is the most a row can gain where its
products run at eager's speed (a step that does less work than that ratio implies is overhead).

    python benchmarks/train_step.py                              # CPU: every case, small DCGAN batch
    python benchmarks/train_step.py --device cuda --json out.json
    python benchmarks/train_step.py --cases ring --dcgan-batch 64
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

import pygan
from pygan import models
from pygan.cli import DEFAULTS
from pygan.gan import adam as pygan_adam, adam_defaults

import _timing as timing
from _timing import format_table

DEMO = DEFAULTS["ring"]  # what `python -m pygan train --data ring` runs


def plain_mlp_discriminator(width: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(2, width), nn.LeakyReLU(0.2), nn.Linear(width, width),
                         nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Linear(width, 1))


def plain_dcgan_discriminator() -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip([3, 64, 128, 256], [64, 128, 256, 512]):
        layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(512, 1, 4, 1, 0), nn.Flatten())


def eager_gan_step(g, d, opt_g, opt_d, latent, r1_weight=0.0, ema_decay=None):
    """The non-saturating GAN loop; with ``r1_weight`` R1 taken from the loss's own forward of the
    real batch, with ``ema_decay`` an EMA of G updated in a Python loop (the demo case)."""
    bce = nn.BCEWithLogitsLoss()
    ema_params = list(zip(copy.deepcopy(g).parameters(), g.parameters())) if ema_decay else []

    def step(real):
        m = real.shape[0]
        fake = g(torch.randn(m, latent, device=real.device))
        x = real.detach().requires_grad_(True) if r1_weight else real
        out_r, out_f = d(x), d(fake.detach())
        loss_d = bce(out_r, torch.ones_like(out_r)) + bce(out_f, torch.zeros_like(out_f))
        if r1_weight:
            (grad,) = torch.autograd.grad(out_r.sum(), x, create_graph=True)
            loss_d = loss_d + r1_weight / 2 * grad.pow(2).sum(1).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out = d(g(torch.randn(m, latent, device=real.device)))
        loss_g = bce(out, torch.ones_like(out))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for p_ema, p in ema_params:
                p_ema.lerp_(p, 1 - ema_decay)
    return step


def eager_wgan_gp_step(g, d, opt_g, opt_d, latent, n_critic=5, weight=10.0):
    def step(real):
        m = real.shape[0] // n_critic
        for x in real.split(m):
            fake = g(torch.randn(m, latent, device=x.device)).detach()
            loss_d = d(fake).mean() - d(x).mean()
            eps = torch.rand(m, 1, 1, 1, device=x.device)
            xhat = (eps * x + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(d(xhat).sum(), xhat, create_graph=True)
            gp = weight * ((grad.view(m, -1).norm(2, dim=1) - 1) ** 2).mean()
            opt_d.zero_grad()
            (loss_d + gp).backward()
            opt_d.step()
        loss_g = -d(g(torch.randn(m, latent, device=real.device))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return step


def case(name: str, device: torch.device, dcgan_batch: int):
    """(generator, pygan discriminator, plain discriminator, data, gan kwargs, eager step factory, batch)."""
    torch.manual_seed(0)
    if name == "demo":  # the demo's settings, read from the command line's defaults
        g, d = models.build("mlp", (2,), width=DEMO["width"], latent_dim=DEMO.get("latent_dim"))
        plain = plain_mlp_discriminator(DEMO["width"])
        real = pygan.data.ring(device=device).sample(DEMO["batch_size"])
        gamma, decay = DEMO["penalty_weight"], DEMO["ema"]
        kw = dict(loss=DEMO["loss"], penalty=pygan.GradientPenalty(DEMO["penalty"], weight=gamma), ema=decay)
        return g, d, plain, real, kw, functools.partial(eager_gan_step, r1_weight=gamma, ema_decay=decay), 1
    if name == "ring":
        g, d = models.build("mlp", (2,), width=256)
        plain = plain_mlp_discriminator(256)
        real = pygan.data.ring(device=device).sample(512)
        return g, d, plain, real, dict(loss="gan"), eager_gan_step, 1
    g, d = models.build("dcgan", (3, 64, 64))
    plain = plain_dcgan_discriminator()
    real = torch.rand(dcgan_batch * 5, 3, 64, 64, device=device) * 2 - 1
    return g, d, plain, real, dict(loss="wasserstein", penalty="wgan-gp", n_critic=5), eager_wgan_gp_step, 5


def hyper(case_name):
    """Adam's (lr, betas) of a case; the demo's as the command line picks them for its loss and penalty."""
    demo = (DEMO["lr"], adam_defaults(DEMO["loss"], DEMO["penalty"])[1])
    return {"dcgan64": (1e-4, (0.0, 0.9)), "demo": demo}.get(case_name, (2e-4, (0.5, 0.999)))


def adam(params, case_name, fused=False):
    """The eager loop's optimizer: ``torch.optim.Adam(params, lr, betas)`` as users write it (on the
    CPU torch's per-parameter loop), or with ``fused=True``."""
    lr, betas = hyper(case_name)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def run(args) -> list[dict]:
    device = torch.device(args.device)
    rows = []
    for name in args.cases:
        g0, d0, plain0, real, gan_kw, eager_factory, n_critic = case(name, device, args.dcgan_batch)
        latent = g0.latent_dim
        results = {}

        def eager_like(compiled: bool, fused_adam: bool = False):
            g, d = copy.deepcopy(g0).to(device), copy.deepcopy(plain0).to(device)
            opt_g, opt_d = adam(g.parameters(), name, fused_adam), adam(d.parameters(), name, fused_adam)
            if compiled:
                g, d = torch.compile(g), torch.compile(d)
            return eager_factory(g, d, opt_g, opt_d, latent)

        impls = [("eager", lambda: eager_like(False)), ("eager-fused-adam", lambda: eager_like(False, True))]
        if not args.no_compile:
            impls.append(("compile", lambda: eager_like(True)))
        for label, kw in (("pygan", {}), ("pygan-fused", {"fused": True}),
                          ("pygan-captured", {"capture": True})):
            if kw.get("capture") and device.type != "cuda":
                continue

            def make(kw=kw):
                g, d = copy.deepcopy(g0).to(device), copy.deepcopy(d0).to(device)
                # pygan's own Adam (pygan.gan.adam, what its engine and command line build): the
                # case's lr and betas on torch's fused kernel.
                opt = functools.partial(pygan_adam, lr=hyper(name)[0], betas=hyper(name)[1],
                                        capture=kw.get("capture", False))
                gan = pygan.GAN(g, d, g_optimizer=opt, d_optimizer=opt, seed=0, **copy.deepcopy(gan_kw), **kw)
                return gan.step
            impls.append((label, make))

        # Build every impl, then time them in interleaved blocks (each impl a few steps per block):
        # the least-disturbed block of each is its time, so a burst of load on a shared machine
        # cannot land on one impl only.
        steps = {}
        for label, make in impls:
            try:
                step = make()
                steps[label] = lambda step=step: step(real)
            except Exception as e:  # say so in the table
                rows.append({"op": name, "impl": label, "size": real.shape[0] // n_critic, "ms": "fails",
                             "error": f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"})
        blocks = timing.interleaved(steps, device, blocks=args.blocks, reps=args.reps,
                                    min_time=args.min_time * len(steps), warmup=2)
        flops = {label: timing.matmul_flops(steps[label]) for label in blocks}
        for label in steps:
            if label not in blocks:  # its warm-up raised (torch.compile has no double backward)
                rows.append({"op": name, "impl": label, "size": real.shape[0] // n_critic, "ms": "fails",
                             "error": "failed at its first steps (printed above)"})
        for label, ts in blocks.items():
            results[label] = ms = min(ts)
            rows.append({**timing.row(name, label, real.shape[0] // n_critic, ts, device,
                                      threads=torch.get_num_threads()), "ms": ms, "steps/s": 1e3 / ms,
                         "GFLOP": flops[label] / 1e9})
        for r in rows:
            if r["op"] == name and isinstance(r["ms"], float):
                r["vs_eager"] = results["eager"] / r["ms"]
                r["flop_bound"] = flops["eager"] / flops[r["impl"]]
                if "compile" in results:
                    r["vs_compile"] = results["compile"] / r["ms"]
        print(format_table([r for r in rows if r["op"] == name], header=True,
                           cols=("op", "impl", "size", "ms", "steps/s", "vs_eager", "vs_compile", "GFLOP",
                                 "flop_bound")), flush=True)
        for r in rows:
            if r["op"] == name and "error" in r:
                print(f"  {r['impl']}: {r['error']}")
    return rows


def main() -> None:
    p = timing.parser(__doc__, interleaved=(5, 5, None))
    p.add_argument("--cases", nargs="+", default=["demo", "ring", "dcgan64"], choices=["demo", "ring", "dcgan64"])
    p.add_argument("--dcgan-batch", type=int, default=None,
                   help="DCGAN batch per D step (default 64 on a GPU, 8 on the CPU)")
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timed steps per impl (at least)")
    args = p.parse_args()
    if args.dcgan_batch is None:
        args.dcgan_batch = 64 if args.device.startswith("cuda") else 8
    timing.main(args, "training steps", run)


if __name__ == "__main__":
    main()
