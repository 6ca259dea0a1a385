"""``python -m pygan``: train a GAN and evaluate it from the command line.

    python -m pygan train --data ring --loss gan --steps 2000 --out runs/ring
    python -m pygan train --model bigan --data digits --out runs/bigan-digits
    python -m pygan eval --run runs/ring              # writes runs/ring/eval.json
    python -m pygan eval --x fake.pt --y real.npy --out eval.json

writes, under ``--out``: ``samples.png`` (a scatter over the true modes, or an image grid),
``losses.png``, ``metrics.json`` (final statistics, speed, and mode coverage on the toy mixtures),
``log.jsonl`` and ``checkpoint.pt``; ``--resume`` continues from the checkpoint there. A BiGAN
(``--model bigan`` or ``bigan-dcgan``) also writes ``reconstructions.png`` (x beside G(E(x))) and
puts :func:`pygan.evaluate.evaluate_inference`'s report in ``metrics.json`` under ``inference``; on
digits it trains on the training split and scores its features on the held-out split. Options left
out take the data set's defaults (:data:`DEFAULTS`), which train every data set here to all its modes.
``eval`` compares a run's generator (its EMA weights when it has them) with fresh data, or two
sample files, with every statistic of :func:`pygan.evaluate.evaluate`, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from . import data as pdata
from . import metrics, models, plots
from .bigan import BiGAN
from .evaluate import evaluate, evaluate_inference, load_samples
from .gan import GAN
from .losses import LOSS_NAMES
from .penalties import KINDS as PENALTY_KINDS
from .penalties import GradientPenalty

# Per data set: settings that train it well with the default model (see README, "Results").
_TOY = dict(model="mlp", width=128, loss="gan", penalty="r1", penalty_weight=0.1, batch_size=512,
            steps=3000, lr=1e-3, ema=0.995)
DEFAULTS: dict[str, dict] = {
    "ring": _TOY,
    "grid": {**_TOY, "steps": 10000, "ema": 0.999},
    "swissroll": _TOY,
    "mixture1d": _TOY,
    "digits": dict(model="mlp", width=256, loss="gan", penalty="r1", penalty_weight=1.0, batch_size=128,
                   steps=3000, lr=5e-4, ema=0.995),
}
# BiGAN, by (data set, model), on top of the data set's settings (see README, "BiGAN").
BIGAN_DEFAULTS: dict[tuple[str, str], dict] = {
    ("digits", "bigan"): dict(latent_dim=16),
    ("digits", "bigan-dcgan"): dict(width=32, latent_dim=32, lr=2e-4),
}
MODELS = ("mlp", "dcgan", "bigan", "bigan-dcgan")
SAMPLES_SHOWN = 2000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pygan", description="pygan: adversarial training")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a GAN and write samples, plots, metrics and a checkpoint")
    t.add_argument("--data", required=True, choices=sorted(pdata.DATASETS), help="the data set")
    t.add_argument("--out", required=True, type=Path, help="output directory")
    t.add_argument("--loss", choices=LOSS_NAMES, help="adversarial loss")
    t.add_argument("--alpha", type=float, help="parameter of --loss alpha")
    t.add_argument("--penalty", choices=PENALTY_KINDS + ("none",), help="gradient penalty")
    t.add_argument("--penalty-weight", type=float, help="its weight (lambda, or gamma for r1/r2)")
    t.add_argument("--lazy", type=int, default=1, help="apply the penalty every LAZY D steps")
    t.add_argument("--clip", type=float, help="clamp D's weights to [-CLIP, CLIP] (original WGAN)")
    t.add_argument("--model", choices=MODELS, help="network family; bigan and bigan-dcgan train an encoder too")
    t.add_argument("--latent-dim", type=int, help="dimension of the noise (and of BiGAN's codes)")
    t.add_argument("--width", type=int, help="hidden width (mlp) or base channels (dcgan)")
    t.add_argument("--steps", type=int, help="total training iterations")
    t.add_argument("--batch-size", type=int, help="samples per D step")
    t.add_argument("--n-critic", type=int, default=1, help="D steps per G step")
    t.add_argument("--lr", type=float, help="Adam learning rate of both players")
    t.add_argument("--betas", type=float, nargs=2, help="Adam betas (default 0.5 0.999; 0 0.9 for wasserstein)")
    t.add_argument("--saturating", action="store_true", help="minimax (saturating) generator loss")
    t.add_argument("--fused", action="store_true", help="fused simultaneous D/G step")
    t.add_argument("--capture", action="store_true", help="CUDA-graph capture of the step (CUDA only)")
    t.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision")
    t.add_argument("--ema", type=float, help="EMA decay of G's weights (0 for none)")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda", "triton"))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=100)
    t.add_argument("--sample-every", type=int, default=0, help="also draw samples-STEP.png every N steps")
    t.add_argument("--checkpoint-every", type=int, default=1000)
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--quiet", action="store_true", help="no progress line")

    e = sub.add_parser("eval", help="two-sample statistics of a run's samples against its data, or of two sample files")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a training output directory (with checkpoint.pt and metrics.json)")
    src.add_argument("--x", type=Path, help="first sample file (.pt, .npy, .csv, .txt); needs --y")
    e.add_argument("--y", type=Path, help="second sample file")
    e.add_argument("--data", choices=sorted(pdata.DATASETS), help="the run's data set (default: from its metrics.json)")
    e.add_argument("--samples", type=int, default=5000, help="samples drawn from the generator and from the data")
    e.add_argument("--permutations", type=int, default=200, help="permutations for the p-values")
    e.add_argument("--fdiv", default="js", help="comma-separated divergences to estimate with a critic ('' for none)")
    e.add_argument("--out", type=Path, help="output JSON (default: RUN/eval.json, or standard output)")
    e.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    e.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda", "triton"))
    e.add_argument("--seed", type=int, default=0)
    return p


def _is_bigan(model: str) -> bool:
    return model.startswith("bigan")


def _settings(args: argparse.Namespace) -> dict:
    s = dict(DEFAULTS[args.data], latent_dim=None)
    model = args.model or s["model"]
    if model.endswith("dcgan"):
        s["width"] = None  # the data set's width is an MLP's; DCGAN's channels default to the model's own
    s.update(BIGAN_DEFAULTS.get((args.data, model), {}))
    for key in ("model", "width", "latent_dim", "loss", "penalty", "penalty_weight", "batch_size", "steps", "lr",
                "ema"):
        value = getattr(args, key)
        if value is not None:
            s[key] = value
    if args.penalty is not None and args.penalty_weight is None and args.penalty != DEFAULTS[args.data]["penalty"]:
        s["penalty_weight"] = None  # the new kind's own default weight
    wasserstein = s["loss"] == "wasserstein" or s["penalty"] in ("wgan-gp", "one-sided")
    s["betas"] = tuple(args.betas) if args.betas else ((0.0, 0.9) if wasserstein else (0.5, 0.999))
    return s


def _draw(gan: GAN, sampler: pdata.Sampler, path: Path, title: str) -> None:
    gen = torch.Generator(device=gan.device).manual_seed(0)  # the same noise in every picture
    fake = gan.sample(64 if sampler.is_image else SAMPLES_SHOWN, generator=gen)
    real = None if sampler.is_image else sampler.sample(SAMPLES_SHOWN, gen)
    plots.save_samples(fake, path, real=real, centers=getattr(sampler, "centers", None), title=title)


def _data(name: str, bigan: bool, device: torch.device) -> tuple[pdata.Sampler, Optional[pdata.Sampler]]:
    """The training sampler, and for a BiGAN on labelled data the held-out split its features are
    scored on (the training sampler is then the training split only)."""
    if bigan and name == "digits":
        return pdata.digits(device, split="train"), pdata.digits(device, split="test")
    return pdata.as_sampler(name, device), None


def _build(s: dict, args: argparse.Namespace, shape: tuple, device: torch.device, **options) -> GAN:
    if _is_bigan(s["model"]):
        family = "dcgan" if s["model"] == "bigan-dcgan" else "mlp"
        g, e, d = models.build_bigan(family, shape, latent_dim=s["latent_dim"], width=s["width"])
        return BiGAN(g.to(device), e.to(device), d.to(device), **options)
    g, d = models.build(s["model"], shape, latent_dim=s["latent_dim"], width=s["width"])
    return GAN(g.to(device), d.to(device), **options)


def _draw_reconstructions(gan: BiGAN, sampler: pdata.Sampler, path: Path, title: str) -> None:
    gen = torch.Generator(device=gan.device).manual_seed(0)
    x = sampler.sample(32 if sampler.is_image else 300, gen)
    plots.save_reconstructions(x, gan.reconstruct(x), path, title=title)


def train(args: argparse.Namespace) -> dict:
    s = _settings(args)
    device = torch.device(args.device)
    ckpt = args.out / "checkpoint.pt"
    params = {"alpha": args.alpha} if args.alpha is not None else {}
    gan = GAN.load(ckpt, map_location=device) if args.resume and ckpt.exists() else None
    sampler, held_out = _data(args.data, isinstance(gan, BiGAN) if gan else _is_bigan(s["model"]), device)
    if gan is not None:
        print(f"resuming from {ckpt} at step {gan.steps}", file=sys.stderr)
    else:
        torch.manual_seed(args.seed)
        penalty = None
        if s["penalty"] not in (None, "none"):
            kw = {} if s["penalty_weight"] is None else {"weight": s["penalty_weight"]}
            penalty = GradientPenalty(s["penalty"], lazy=args.lazy, backend=args.backend, **kw)
        opt = lambda ps: torch.optim.Adam(ps, lr=s["lr"], betas=s["betas"], capturable=args.capture)  # noqa: E731
        gan = _build(s, args, sampler.shape, device, loss=s["loss"], penalty=penalty, n_critic=args.n_critic,
                     g_optimizer=opt, d_optimizer=opt, fused=args.fused, capture=args.capture, amp=args.amp,
                     ema=s["ema"] or None, saturating=args.saturating, clip=args.clip, seed=args.seed,
                     backend=args.backend, **params)
    args.out.mkdir(parents=True, exist_ok=True)
    if gan.steps == 0 and (args.out / "log.jsonl").exists():
        (args.out / "log.jsonl").unlink()  # a fresh run starts a fresh log
    start = time.perf_counter()
    steps_before = gan.steps
    on_sample = None
    if args.sample_every:
        on_sample = lambda gan_, step, out: _draw(gan_, sampler, out / f"samples-{step:06d}.png", f"step {step}")  # noqa: E731
    gan.fit(sampler, s["steps"], batch_size=s["batch_size"], out=args.out, log_every=args.log_every,
            sample_every=args.sample_every or None, checkpoint_every=args.checkpoint_every,
            progress=not args.quiet, on_sample=on_sample)
    elapsed = time.perf_counter() - start

    records = [json.loads(line) for line in (args.out / "log.jsonl").read_text().splitlines() if line.strip()]
    title = f"{args.data}: {s['loss']}" + (f" + {s['penalty']}" if s["penalty"] not in (None, "none") else "") \
        + f", {gan.steps} steps"
    _draw(gan, sampler, args.out / "samples.png", title)
    if records:
        plots.save_losses(records, args.out / "losses.png")
    result = {"data": args.data, "device": str(device), "steps": gan.steps,
              "settings": {k: v for k, v in s.items() if k != "steps"},
              "seconds": elapsed, "steps_per_s": (gan.steps - steps_before) / elapsed if elapsed > 0 else None,
              "final": records[-1] if records else {}}
    if hasattr(sampler, "centers"):
        gen = torch.Generator(device=device).manual_seed(1)
        result["mode_coverage"] = metrics.mode_coverage(
            gan.sample(10_000, generator=gen).flatten(1), sampler.centers, sampler.std).as_dict()
    if isinstance(gan, BiGAN):
        _draw_reconstructions(gan, held_out or sampler, args.out / "reconstructions.png", f"BiGAN, {title}")
        if held_out is not None:
            result["inference"] = evaluate_inference(gan, sampler.data, labels=sampler.labels,
                                                     test_x=held_out.data, test_labels=held_out.labels,
                                                     seed=args.seed)
        else:
            x = sampler.sample(5000, torch.Generator(device=device).manual_seed(2))
            result["inference"] = evaluate_inference(gan, x, seed=args.seed)
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def evaluate_command(args: argparse.Namespace) -> dict:
    fdiv = [name for name in args.fdiv.split(",") if name]
    options = dict(permutations=args.permutations, fdiv=fdiv, seed=args.seed, backend=args.backend)
    if args.x is not None:
        if args.y is None:
            raise SystemExit("pygan eval: --x needs --y")
        result = {"x": str(args.x), "y": str(args.y),
                  **evaluate(load_samples(args.x), load_samples(args.y), **options)}
    else:
        ckpt = args.run / "checkpoint.pt"
        if not ckpt.exists():
            raise SystemExit(f"pygan eval: no checkpoint at {ckpt}")
        name = args.data
        if name is None:
            info = args.run / "metrics.json"
            if not info.exists():
                raise SystemExit(f"pygan eval: {info} is missing; pass --data")
            name = json.loads(info.read_text())["data"]
        device = torch.device(args.device)
        gan = GAN.load(ckpt, map_location=device)
        sampler = pdata.as_sampler(name, device)
        gen = torch.Generator(device=device).manual_seed(args.seed + 1)
        with torch.no_grad():
            fake = gan.sample(args.samples, generator=gen)
        real = sampler.sample(args.samples, gen)
        result = {"run": str(args.run), "data": name, "steps": gan.steps,
                  **evaluate(fake, real, centers=getattr(sampler, "centers", None),
                             std=getattr(sampler, "std", None), **options)}
    text = json.dumps(result, indent=2) + "\n"
    out = args.out or (args.run / "eval.json" if args.run is not None else None)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        print(f"metrics: {out}", file=sys.stderr)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "eval":
        evaluate_command(args)
        return 0
    if args.command == "train":
        result = train(args)
        cov = result.get("mode_coverage")
        summary = f"{result['steps']} steps in {result['seconds']:.1f} s ({result['steps_per_s'] or 0:.1f} steps/s)"
        if cov:
            summary += (f"; modes covered {cov['modes']}/{cov['n_modes']}, "
                        f"{100 * cov['high_quality']:.1f}% of samples within 3 std of a mode")
        inference = result.get("inference")
        if inference:
            summary += (f"; latent recovery corr {inference['latent_recovery']['correlation']:.3f}, "
                        f"reconstruction error {inference['reconstruction']['relative']:.3f} of the variance")
            for name, probe in inference.get("features", {}).items():
                summary += (f"; {name} features: linear {100 * probe['linear']:.1f}%, "
                            f"1-NN {100 * probe['nearest_neighbor']:.1f}%")
        print(summary)
        print(f"pictures: {args.out / 'samples.png'} and {args.out / 'losses.png'}; "
              f"metrics: {args.out / 'metrics.json'}; checkpoint: {args.out / 'checkpoint.pt'}")
    return 0
