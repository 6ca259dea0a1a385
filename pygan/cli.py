"""``python -m pygan``: train a GAN and evaluate it from the command line.

    python -m pygan train --data ring --loss gan --steps 2000 --out runs/ring
    python -m pygan train --model bigan --data digits --out runs/bigan-digits
    python -m pygan train --model cyclegan --data digits2mnist --out runs/cyclegan
    python -m pygan eval --run runs/ring              # writes runs/ring/eval.json
    python -m pygan eval --x fake.pt --y real.npy --out eval.json

writes, under ``--out``: ``samples.png`` (a scatter over the true modes, or an image grid),
``losses.png``, ``metrics.json`` (final statistics, speed, and mode coverage on the toy mixtures),
``log.jsonl`` and ``checkpoint.pt``. A folder holds one run: ``--resume`` continues it from its
checkpoint with the run's own options (an option given that differs is an error; ``--steps`` may
grow), ``--overwrite`` starts a new one, and neither is an error when the folder holds a run. A BiGAN
(``--model bigan`` or ``bigan-dcgan``) also writes ``reconstructions.png`` (x beside G(E(x))) and
puts :func:`pygan.evaluate.evaluate_inference`'s report in ``metrics.json`` under ``inference``; on
digits it trains on the training split and scores its features on the held-out split. A
class-conditional GAN (``--conditional``, labelled data: digits) trains on the training split too,
draws one row per class, and puts :func:`pygan.evaluate.evaluate_conditional`'s report (class
accuracy by a classifier of the real data, per-class coverage) under ``conditional``. A CycleGAN
(``--model cyclegan`` on the unpaired ``digits2mnist``) trains on both domains' training splits,
writes ``translations.png`` (held-out sources, their translations and round trips, per direction)
and puts :func:`pygan.evaluate.evaluate_translation`'s report (label preservation beside the
identity mapping, cycle error, KID) under ``translation``. Options left
out take the data set's defaults (:data:`DEFAULTS`), which train every data set here to all its modes.
``eval`` compares a run's generator (its EMA weights when it has them) with fresh data, or two
sample files, with every statistic of :func:`pygan.evaluate.evaluate`, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from . import data as pdata
from . import metrics, models, plots
from .bigan import BiGAN
from .cyclegan import CycleGAN
from .evaluate import evaluate, evaluate_conditional, evaluate_inference, evaluate_translation, load_samples
from .gan import GAN, adam, adam_defaults
from .losses import LOSS_NAMES
from .penalties import KINDS as PENALTY_KINDS
from .penalties import GradientPenalty
from .schedule import Anneal
from .augment import OPERATIONS, AdaptiveAugment, DiffAugment, parse_policy

CYCLEGAN_STEPS = 3000
# Fewer steps do not buy the 30-minute budget: annealed over 21,000 instead, seeds 0-2 ended at KL
# 0.030-0.031, above R3GAN's 0.029 (README, "Results").
STACKED_STEPS = 25000
MNIST_CONV_BIGAN_STEPS = 1000
# Per data set: settings that train it well with the default model (see README, "Results").
_TOY = dict(model="mlp", width=128, loss="gan", penalty="r1", penalty_weight=0.1, batch_size=512,
            steps=3000, lr=1e-3, ema=0.995)
DEFAULTS: dict[str, dict] = {
    # The ring's samples sharpen onto the modes with training long after every mode is covered
    # (seed 1, share within 3 std: 84% at 3,000 steps, 94% at 6,000, 97% at 10,000 and 15,000; 98%
    # at 20,000 with EMA 0.999). Over seeds 1-10 (2026-12-04): 98.1% +- 0.1 at 20,000 steps, the
    # same with the rate annealed to 1e-4, and 98.7% +- 0.1 at 30,000 (every seed 98.0% or more).
    # A smaller or larger R1 weight (0.01, 0.03, 0.3) did not help. The
    # samples that miss lie between modes, where G's continuous map crosses from one mode's latent
    # region to the next; a 2-d latent (the data's own dimension) leaves less mass there than 16 or
    # 64 dimensions (seeds 2 and 7 at 20,000 steps: 97.9% and 98.1% against 97.2% and 97.1% with 16,
    # 96.7% and 96.6% with 64). A learning rate of 2e-3 lost a mode on one of two seeds.
    "ring": {**_TOY, "steps": 30000, "ema": 0.999, "latent_dim": 2},
    # The grid anneals (README, "Results"). With R1 held at 0.1, 2 of 10 seeds stalled with G a few
    # std off some modes (48%, 63% high quality); held at 0.03, 2 of 8 lost modes. Annealed from 0.1
    # to 0.03, the weight is strong while G spreads over the modes and weak once D must place them
    # finely; the learning rate annealed to 1e-4 lets G settle onto them.
    "grid": {**_TOY, "steps": 20000, "ema": 0.999, "latent_dim": 2, "penalty_weight_end": 0.03, "lr_end": 1e-4},
    "swiss_roll": _TOY,
    "mixture_1d": _TOY,
    "digits": dict(model="mlp", width=256, loss="gan", penalty="r1", penalty_weight=1.0, batch_size=128,
                   steps=3000, lr=5e-4, ema=0.995),
    "mnist": dict(model="mlp", width=512, loss="gan", penalty="r1", penalty_weight=1.0, batch_size=128,
                  steps=3000, lr=5e-4, ema=0.995),
    # Stacked MNIST (3 x 32 x 32, 1,000 modes): a DCGAN at half width with R3GAN's objective
    # (relativistic pairing loss, R1 + R2, Adam betas (0, 0.99), EMA). The non-saturating loss with
    # R1 alone collapsed to one mode here, at widths 32 and 64. The KL keeps falling with training
    # (README, "Results"), so the 30-minute budget goes to steps: the fused step with R1 + R2 on
    # every 4th D step takes 0.6 of the time of the alternating step with R1 + R2 on each, at about
    # the same KL per step (0.068 at 18,000 steps; alternating with lazy R1 + R2, 0.064). What was
    # left of the KL was digit imbalance, G drawing some digits more often than others; D's
    # minibatch std layer, which lets D see how a batch is spread, cut it from 0.019 to 0.008 (seed 0).
    # Its groups of 16 with the rate annealed to 1e-4 over the run halved it again on seeds 1 and 2
    # (0.007 and 0.004, KL 0.027 and 0.025, against 0.034 and 0.031 with groups of 4 at a fixed rate),
    # and moved seed 0 less (0.006, KL 0.027, against 0.008 and 0.028). Channels-last networks: the
    # CPU's convolutions run NHWC natively, and the step ran 13.5 against 11.8 steps/s (2 threads,
    # interleaved pairs of 600 steps). pygan.nn's convolution layers (whole-map head and first layer,
    # few-channel last layer and input gradient, the penalty's double backward without transposed
    # copies) then took the step 1.06-1.10x faster: 25,000 steps alone went from 33 minutes (12.6
    # steps/s) to 30 (13.9; 29.5 at 14.1 in a later hour) on 2026-12-04 (README, "Stacked MNIST").
    "stacked-mnist": dict(model="dcgan", width=32, loss="relativistic", penalty="r1+r2", penalty_weight=0.1,
                          batch_size=64, steps=STACKED_STEPS, lr=6e-4, lr_end=1e-4, betas=[0.0, 0.99],
                          ema=0.999, lazy=4, fused=True, minibatch_std=16, channels_last=True),
    # CycleGAN as Zhu et al.: least squares, Adam 2e-4 (0.5, 0.999), lambda 10, identity 0.5, pool 50.
    "digits2mnist": dict(model="cyclegan", width=16, loss="least_squares", penalty=None, penalty_weight=None,
                         batch_size=16, steps=CYCLEGAN_STEPS, lr=2e-4, ema=None),
}
UNPAIRED = ("digits2mnist",)  # the data sets of translation (CycleGAN), and only those
# BiGAN, by (data set, model), on top of the data set's settings (see README, "BiGAN").
BIGAN_DEFAULTS: dict[tuple[str, str], dict] = {
    ("digits", "bigan"): dict(latent_dim=16),
    ("digits", "bigan-dcgan"): dict(width=32, latent_dim=32, lr=2e-4),
    # On MNIST the EMA encoder's features trailed the trained weights' own (linear probe 81% against
    # 85% at 3,000 steps, 75% against 85% at 6,000): the code drifts as G and E co-adapt, and an
    # average of encoders along the drift is a worse encoder. No EMA here.
    ("mnist", "bigan"): dict(latent_dim=32, ema=None),
    ("mnist", "bigan-dcgan"): dict(width=32, latent_dim=32, lr=2e-4, steps=MNIST_CONV_BIGAN_STEPS, ema=None),
}
MODELS = ("mlp", "dcgan", "resnet", "bigan", "bigan-dcgan", "cyclegan")
TRANSLATIONS_SHOWN = 12  # held-out images per row of translations.png
SAMPLES_SHOWN = 2000
CLASS_ROW = 10  # samples per class in a conditional GAN's picture
# Options that define a run: on --resume they come from the checkpoint, and a different value is an
# error (--steps, the logging options, --device and --quiet may change).
RUN_OPTIONS = ("model", "width", "latent_dim", "loss", "alpha", "penalty", "penalty_weight", "penalty_weight_end",
               "lazy", "augment", "minibatch_std", "channels_last",
               "ada", "clip", "conditional",
               "batch_size", "n_critic", "lr", "lr_end", "betas", "saturating", "fused", "capture", "amp", "ema",
               "backend", "seed")


def _number(kind: type, low: float, *, low_open: bool = False, high: float = math.inf, high_open: bool = True):
    """An argparse type: a finite ``kind`` in the interval, else argparse's usage error naming it."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high \
                or (high_open and value == high):
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"{text} is outside {lo}{low:g}, {high:g}{hi}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT, COUNT = _number(int, 1), _number(int, 0)
POSITIVE, NON_NEGATIVE, FINITE = _number(float, 0, low_open=True), _number(float, 0), _number(float, -math.inf)


def _penalties(text: str) -> str:
    """An argparse type: "none", a penalty kind, or kinds joined by "+" ("r1+r2")."""
    if text == "none":
        return text
    kinds = text.split("+")
    bad = [k for k in kinds if k not in PENALTY_KINDS]
    if bad or len(set(kinds)) != len(kinds):
        why = f"unknown kind {bad[0]!r}" if bad else "a kind repeats"
        raise argparse.ArgumentTypeError(f"{text!r}: {why}; give one of {', '.join(PENALTY_KINDS)}, several "
                                         "joined by '+' (r1+r2), or none")
    return text


def _augment_policy(text: str) -> str:
    """An argparse type: "none", or DiffAugment operations joined by commas."""
    if text != "none":
        try:
            parse_policy(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: give operations of {', '.join(OPERATIONS)} joined by "
                                             "commas (color,translation,cutout), or none") from None
    return text


def _defaults_table() -> str:
    rows = ["defaults per data set (an option given on the command line wins):"]

    def shown(v) -> str:
        return "none" if v is None else " ".join(map(str, v)) if isinstance(v, list) else str(v)

    def settings(d: dict) -> str:
        return ", ".join(f"{k.replace('_', '-')} {shown(v)}" for k, v in d.items())

    for name, d in DEFAULTS.items():
        rows.append(f"  {name:13s} " + settings(d))
    rows.append("BiGAN, on top of its data set's:")
    for (name, model), d in BIGAN_DEFAULTS.items():
        rows.append(f"  {name} --model {model}: " + settings(d))
    return "\n".join(rows)


TRAIN_EXAMPLES = """examples:
  python -m pygan train --data ring --out runs/ring
  python -m pygan train --data ring --out runs/ring-annealed --lr-end 1e-4 --penalty-weight-end 0.03
  python -m pygan train --data ring --loss wasserstein --penalty wgan-gp --n-critic 5 --out runs/wgan
  python -m pygan train --data ring --out runs/ring --steps 6000 --resume
  python -m pygan train --model bigan --data digits --out runs/bigan
  python -m pygan train --model cyclegan --data digits2mnist --out runs/cyclegan
  python -m pygan train --data stacked-mnist --out runs/stacked-mnist
"""


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="python -m pygan", description="pygan: adversarial training")
    p.add_argument("--version", action="version", version=f"pygan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a GAN and write samples, plots, metrics and a checkpoint",
                       description="Train a GAN (or a BiGAN) on a built-in data set and write samples.png, "
                                   "losses.png, metrics.json, log.jsonl and checkpoint.pt under --out.",
                       epilog=_defaults_table() + "\n\n" + TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data", required=True, choices=sorted(pdata.DATASETS), help="the data set")
    t.add_argument("--out", required=True, type=Path, help="output directory")
    t.add_argument("--loss", choices=LOSS_NAMES, help="adversarial loss")
    t.add_argument("--alpha", type=FINITE, help="parameter of --loss alpha (not 0 or 1)")
    t.add_argument("--penalty", type=_penalties, metavar="KIND[+KIND...]",
                   help=f"gradient penalties, summed: {', '.join(PENALTY_KINDS)}, several joined by '+' "
                        "(r1+r2, as R3GAN), or none")
    t.add_argument("--penalty-weight", type=NON_NEGATIVE,
                   help="the weight of each penalty (lambda, or gamma for r1/r2)")
    t.add_argument("--penalty-weight-end", type=NON_NEGATIVE, metavar="WEIGHT",
                   help="anneal the penalty weight along a cosine to WEIGHT at the last step")
    t.add_argument("--lazy", type=POSITIVE_INT, help="apply the penalties every LAZY D steps (default 1)")
    t.add_argument("--augment", type=_augment_policy, metavar="OPS",
                   help="differentiable augmentation of every batch D sees, image data only: operations of "
                        f"{', '.join(OPERATIONS)} joined by commas, or none (default)")
    t.add_argument("--ada", type=_number(float, 0, high=1), metavar="TARGET",
                   help="adapt the augmentation's probability by ADA's heuristic toward r_t = TARGET (e.g. 0.6)")
    t.add_argument("--clip", type=POSITIVE, help="clamp D's weights to [-CLIP, CLIP] (original WGAN)")
    t.add_argument("--model", choices=MODELS,
                   help="network family (resnet: R3GAN's, scaled down); bigan and bigan-dcgan train an encoder too")
    t.add_argument("--latent-dim", type=POSITIVE_INT, help="dimension of the noise (and of BiGAN's codes)")
    t.add_argument("--width", type=POSITIVE_INT, help="hidden width (mlp) or base channels (dcgan)")
    t.add_argument("--minibatch-std", type=COUNT, metavar="GROUP",
                   help="a minibatch standard deviation layer in the dcgan discriminator, over groups of GROUP "
                        "samples (0 for none, the default)")
    t.add_argument("--steps", type=COUNT, help="total training iterations")
    t.add_argument("--batch-size", type=POSITIVE_INT, help="samples per D step")
    t.add_argument("--n-critic", type=POSITIVE_INT, help="D steps per G step (default 1)")
    t.add_argument("--lr", type=POSITIVE, help="Adam learning rate of both players")
    t.add_argument("--lr-end", type=POSITIVE, metavar="LR",
                   help="anneal both learning rates along a cosine to LR at the last step")
    t.add_argument("--betas", type=_number(float, 0, high=1), nargs=2,
                   help="Adam betas (default 0.5 0.999; 0 0.9 for wasserstein)")
    t.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional GAN on labelled data (digits): class embeddings in G, projection D")
    t.add_argument("--saturating", action="store_true", default=None, help="minimax (saturating) generator loss")
    t.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="fused simultaneous D/G step (--no-fused: alternating steps, where a data set's "
                        "defaults fuse them)")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="convolutional networks in channels-last memory (NHWC: faster convolutions on CPU)")
    t.add_argument("--capture", action="store_true", default=None, help="CUDA-graph capture of the step (CUDA only)")
    t.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision")
    t.add_argument("--ema", type=_number(float, 0, high=1), help="EMA decay of G's weights in [0, 1) (0 for none)")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    t.add_argument("--backend", choices=("auto", "cpu", "cuda", "triton"),
                   help="kernel backend for losses, penalties, EMA and D's fused layers (default auto)")
    t.add_argument("--seed", type=COUNT, help="seed of the weights, noise and batches (default 0)")
    t.add_argument("--log-every", type=POSITIVE_INT, default=100, help="steps per line of log.jsonl")
    t.add_argument("--sample-every", type=COUNT, default=0, help="also draw samples-STEP.png every N steps")
    t.add_argument("--checkpoint-every", type=POSITIVE_INT, default=1000, help="steps between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="start a new run in an OUT that holds one")
    t.add_argument("--quiet", action="store_true", help="no progress line")

    e = sub.add_parser("eval", help="two-sample statistics of a run's samples against its data, or of two sample files")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a training output directory (with checkpoint.pt and metrics.json)")
    src.add_argument("--x", type=Path, help="first sample file (.pt, .npy, .csv, .txt); needs --y")
    e.add_argument("--y", type=Path, help="second sample file")
    e.add_argument("--data", choices=sorted(pdata.DATASETS), help="the run's data set (default: from its metrics.json)")
    e.add_argument("--samples", type=POSITIVE_INT, default=5000, help="samples drawn from the generator and from the data")
    e.add_argument("--permutations", type=POSITIVE_INT, default=200, help="permutations for the p-values")
    e.add_argument("--fdiv", default="js", help="comma-separated divergences to estimate with a critic ('' for none)")
    e.add_argument("--out", type=Path, help="output JSON (default: RUN/eval.json, or standard output)")
    e.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when a GPU is visible)")
    e.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda", "triton"), help="kernel backend")
    e.add_argument("--seed", type=COUNT, default=0, help="seed of the samples and permutations")
    e.add_argument("--ema-batch-norm", type=COUNT, default=0, metavar="BATCHES",
                   help="re-estimate the EMA generator's batch-norm statistics for its own weights over BATCHES "
                        "batches of 64 before sampling (0: the statistics it was trained with, the default)")
    return p


def _device(name: Optional[str]) -> torch.device:
    """--device as a device this machine has."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device name (cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA GPU is visible to torch here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise UsageError(f"--device {name}: pygan trains on cpu or cuda")
    return device


class UsageError(ValueError):
    """A command-line mistake: printed as one line, never a traceback."""


def _is_bigan(model: str) -> bool:
    return model.startswith("bigan")


def _settings(args: argparse.Namespace) -> dict:
    s = {"latent_dim": None, "penalty_weight_end": None, "lr_end": None, **DEFAULTS[args.data]}
    model = args.model or s["model"]
    if model != s["model"]:
        s["latent_dim"] = None  # the data set's latent size is its own model's
        s.pop("minibatch_std", None)  # and so is the layer in its D
        s.pop("channels_last", None)  # and the memory layout measured for its networks
        if model.endswith(("dcgan", "resnet")):
            s["width"] = None  # the data set's width is another model's; conv channels default to the model's own
    s.update(BIGAN_DEFAULTS.get((args.data, model), {}))
    for key in ("model", "width", "latent_dim", "loss", "penalty", "penalty_weight", "penalty_weight_end",
                "batch_size", "steps", "lr", "lr_end", "ema"):
        value = getattr(args, key)
        if value is not None:
            s[key] = value
    if args.penalty is not None and args.penalty_weight is None and args.penalty != DEFAULTS[args.data]["penalty"]:
        s["penalty_weight"] = None  # the new kind's own default weight
        if args.penalty_weight_end is None:
            s["penalty_weight_end"] = None  # and no annealing tuned for another kind
    if args.betas:
        s["betas"] = list(args.betas)
    elif "betas" in s and args.loss is None and args.penalty is None:
        s["betas"] = list(s["betas"])  # the data set's own, tuned with its loss and penalty
    else:
        s["betas"] = list(adam_defaults(s["loss"], s["penalty"])[1])
    for key, default in (("alpha", None), ("lazy", 1), ("augment", "none"), ("minibatch_std", 0), ("channels_last", False),
                         ("ada", None),
                         ("clip", None), ("n_critic", 1), ("conditional", False), ("saturating", False),
                         ("fused", False), ("capture", False), ("amp", None), ("backend", "auto"), ("seed", 0)):
        value = getattr(args, key)
        s[key] = s.get(key, default) if value is None else value  # the data set's own default first
    return s


def _conflicts(args: argparse.Namespace, run: dict) -> list[str]:
    """The options given on the command line that differ from the resumed run's."""
    s = _settings(args)
    out = []
    for key in RUN_OPTIONS:
        given = getattr(args, key, None)
        if given is None or key not in run:
            continue
        if s[key] != run[key]:
            out.append(f"--{key.replace('_', '-')} {given if not isinstance(given, list) else ' '.join(map(str, given))}"
                       f" (the run has {run[key]})")
    return out


def _draw(gan: GAN, sampler: pdata.Sampler, path: Path, title: str) -> None:
    if isinstance(gan, CycleGAN):
        _draw_translations(gan, sampler, path, title)
        return
    gen = torch.Generator(device=gan.device).manual_seed(0)  # the same noise in every picture
    if gan.num_classes is not None:  # one row per class
        per = CLASS_ROW
        labels = torch.arange(gan.num_classes, device=gan.device).repeat_interleave(per)
        fake = gan.generate(gan.prior(labels.shape[0], gan.device, gen), labels=labels)
        plots.save_samples(fake, path, title=title + " (a row per class)", per_row=per)
        return
    fake = gan.sample(64 if sampler.is_image else SAMPLES_SHOWN, generator=gen)
    real = None if sampler.is_image else sampler.sample(SAMPLES_SHOWN, gen)
    plots.save_samples(fake, path, real=real, centers=getattr(sampler, "centers", None), title=title)


def _draw_translations(gan: CycleGAN, sampler: pdata.UnpairedSampler, path: Path, title: str) -> None:
    """Rows of held-out sources of each domain, their translations and their round trips."""
    a, b = (x[:TRANSLATIONS_SHOWN] for x in (sampler.a.data, sampler.b.data))
    name_a, name_b = sampler.names
    rows = [(f"{name_a} (A)", a), (f"G(a): to {name_b}", gan.translate_ab(a)), ("F(G(a)): back", gan.reconstruct(a, "a")),
            (f"{name_b} (B)", b), (f"F(b): to {name_a}", gan.translate_ba(b)), ("G(F(b)): back", gan.reconstruct(b, "b"))]
    plots.save_translations(rows, path, title=title)


def _data(name: str, held_out: bool, device: torch.device) -> tuple[pdata.Sampler, Optional[pdata.Sampler]]:
    """The training sampler, and for a BiGAN, a conditional GAN on labelled data or a CycleGAN
    (``held_out``) the held-out split it is scored on (the training sampler is then the training
    split only)."""
    source = pdata.DATASETS.get(name)
    if held_out and source is not None and "split" in inspect.signature(source).parameters:
        return source(device, split="train"), source(device, split="test")
    return pdata.as_sampler(name, device), None


def _build(s: dict, args: argparse.Namespace, sampler: pdata.Sampler, device: torch.device, **options) -> GAN:
    shape = sampler.shape
    # Channels-last: oneDNN's convolutions, forward and backward, skip the reorders into and out of
    # their blocked layout; pygan's fused activation takes the layout as it is.
    layout = {"memory_format": torch.channels_last} if s.get("channels_last") else {}

    def place(*nets: torch.nn.Module) -> list[torch.nn.Module]:
        return [m.to(device, **layout) for m in nets]

    if s["model"] == "cyclegan":
        return CycleGAN(*place(*models.build_cyclegan(shape[1:], width=s["width"], backend=s["backend"])), **options)
    if _is_bigan(s["model"]):
        family = "dcgan" if s["model"] == "bigan-dcgan" else "mlp"
        return BiGAN(*place(*models.build_bigan(family, shape, latent_dim=s["latent_dim"], width=s["width"],
                                                backend=s["backend"])), **options)
    classes = sampler.num_classes if s["conditional"] else None
    return GAN(*place(*models.build(s["model"], shape, latent_dim=s["latent_dim"], width=s["width"],
                                    backend=s["backend"], num_classes=classes,
                                    minibatch_std=s["minibatch_std"])), **options)


def _augmentation(s: dict, sampler: pdata.Sampler, bigan: bool):
    """--augment and --ada as the GAN's augment= (None without them)."""
    if s["augment"] == "none":
        if s["ada"] is not None:
            raise UsageError("--ada adapts the augmentation's probability: pass --augment OPS too")
        return None
    if not (sampler.is_image or isinstance(sampler, pdata.UnpairedSampler)) or bigan:
        what = "BiGAN's D compares (sample, code) pairs" if bigan else \
            f"the samples have shape {tuple(sampler.shape)}"
        raise UsageError(f"--augment {s['augment']} augments images (N, C, H, W) and {what}: leave it out")
    pipeline = DiffAugment(s["augment"])
    return pipeline if s["ada"] is None else AdaptiveAugment(pipeline, target=s["ada"])


def _draw_reconstructions(gan: BiGAN, sampler: pdata.Sampler, path: Path, title: str) -> None:
    gen = torch.Generator(device=gan.device).manual_seed(0)
    x = sampler.sample(32 if sampler.is_image else 300, gen)
    plots.save_reconstructions(x, gan.reconstruct(x), path, title=title)


def train(args: argparse.Namespace) -> dict:
    device = _device(args.device)
    ckpt = args.out / "checkpoint.pt"
    held = [name for name in ("checkpoint.pt", "log.jsonl") if (args.out / name).exists()]
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    if held and not (args.resume or args.overwrite):
        raise UsageError(f"{args.out} already holds a run ({', '.join(held)}): pass --resume to continue it, "
                         "or --overwrite to start a new run there")
    gan = GAN.load(ckpt, map_location=device, resume=True) if args.resume and ckpt.exists() else None
    if gan is not None:
        run = gan.extra.get("cli")
        if run is None:  # a checkpoint written through the Python API: its options are its own
            s = _settings(args)
        else:
            if run["data"] != args.data:
                raise UsageError(f"--data {args.data}: the run in {args.out} trains on {run['data']}")
            bad = _conflicts(args, run["settings"])
            if bad:
                raise UsageError("--resume continues the run with its own settings, and these options differ: "
                                 + "; ".join(bad) + ". Leave them out, or start a new run with --overwrite")
            s = dict(run["settings"], steps=args.steps if args.steps is not None else run["settings"]["steps"])
        print(f"resuming from {ckpt} at step {gan.steps}", file=sys.stderr)
    else:
        if args.resume:
            print(f"no checkpoint in {args.out}: starting a new run", file=sys.stderr)
        s = _settings(args)
        for name in held:  # --overwrite: nothing of the old run may mix with the new one
            (args.out / name).unlink()
    bigan = isinstance(gan, BiGAN) if gan else _is_bigan(s["model"])
    cycle = s["model"] == "cyclegan"
    if cycle != (args.data in UNPAIRED):
        raise UsageError(f"--model cyclegan translates between the domains of {', '.join(UNPAIRED)}, and those "
                         f"data sets need it: --model {s['model']} with --data {args.data} does not fit")
    if cycle and s["conditional"]:
        raise UsageError("--conditional: CycleGAN is not class-conditional")
    if s.get("channels_last") and s["model"] in ("mlp", "bigan"):
        raise UsageError(f"--channels-last lays out the feature maps of convolutional networks, and --model "
                         f"{s['model']} has none")
    if s.get("minibatch_std") and s["model"] != "dcgan":
        raise UsageError(f"--minibatch-std: only the dcgan discriminator has a minibatch std layer, "
                         f"not --model {s['model']}")
    sampler, held_out = _data(args.data, bigan or s["conditional"] or cycle, device)
    if gan is None:
        torch.manual_seed(s["seed"])
        penalty = None
        if s["penalty"] not in (None, "none"):
            kw = {} if s["penalty_weight"] is None else {"weight": s["penalty_weight"]}
            penalty = [GradientPenalty(k, lazy=s["lazy"], backend=s["backend"], **kw) for k in s["penalty"].split("+")]
        augment = _augmentation(s, sampler, _is_bigan(s["model"]))
        if s["conditional"] and (bigan or sampler.num_classes is None):
            raise UsageError("--conditional trains on labelled data with a GAN: " + (
                "BiGAN is not class-conditional" if bigan else f"{args.data} has no labels (digits has)"))
        if s["penalty_weight_end"] is not None and penalty is None:
            raise UsageError(f"--penalty-weight-end anneals the gradient penalty, and this run has none "
                             f"(--penalty {s['penalty']}): leave it out, or choose a --penalty")
        opt = lambda ps: adam(ps, s["lr"], tuple(s["betas"]), s["capture"])  # noqa: E731
        anneal = None
        if s["lr_end"] is not None or s["penalty_weight_end"] is not None:  # over the run's length
            anneal = Anneal(max(s["steps"], 1), lr=s["lr_end"], penalty_weight=s["penalty_weight_end"])
        params = {"alpha": s["alpha"]} if s["alpha"] is not None else {}
        gan = _build(s, args, sampler, device, loss=s["loss"], penalty=penalty, n_critic=s["n_critic"],
                     g_optimizer=opt, d_optimizer=opt, fused=s["fused"], capture=s["capture"], amp=s["amp"],
                     ema=s["ema"] or None, saturating=s["saturating"], clip=s["clip"], seed=s["seed"],
                     backend=s["backend"], augment=augment, anneal=anneal, **params)
    gan.extra["cli"] = {"data": args.data, "settings": s}  # what --resume continues with
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    steps_before = gan.steps
    # A CycleGAN's picture translates held-out images.
    picture, shown = ("translations", held_out) if cycle else ("samples", sampler)
    on_sample = None
    if args.sample_every:
        on_sample = lambda gan_, step, out: _draw(gan_, shown, out / f"{picture}-{step:06d}.png", f"step {step}")  # noqa: E731
    gan.fit(sampler, s["steps"], batch_size=s["batch_size"], out=args.out, log_every=args.log_every,
            sample_every=args.sample_every or None, checkpoint_every=args.checkpoint_every,
            progress=not args.quiet, on_sample=on_sample)
    elapsed = time.perf_counter() - start

    log = args.out / "log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    title = f"{args.data}: {s['loss']}" + (f" + {s['penalty']}" if s["penalty"] not in (None, "none") else "") \
        + f", {gan.steps} steps"
    _draw(gan, shown, args.out / f"{picture}.png", title)
    if records:
        plots.save_losses(records, args.out / "losses.png")
    trained = gan.steps - steps_before
    result = {"data": args.data, "device": str(device), "steps": gan.steps, "steps_this_run": trained,
              "settings": {k: v for k, v in s.items() if k != "steps"},
              "seconds": elapsed, "steps_per_s": trained / elapsed if elapsed > 0 and trained else None,
              "final": records[-1] if records else {}}
    if hasattr(sampler, "centers"):
        gen = torch.Generator(device=device).manual_seed(1)
        result["mode_coverage"] = metrics.mode_coverage(  # the protocol's 2,500 samples
            gan.sample(metrics.PROTOCOL_SAMPLES, generator=gen).flatten(1), sampler.centers, sampler.std).as_dict()
    if args.data == "stacked-mnist":  # the generator, beside the data itself at the same sample count
        result["stacked_mnist"] = _stacked_modes(gan, s["seed"])
        result["stacked_mnist_data"] = _stacked_modes(sampler, s["seed"])
    if isinstance(gan, CycleGAN):
        result["translation"] = evaluate_translation(gan, sampler, held_out, seed=s["seed"])
    if gan.num_classes is not None and held_out is not None:
        result["conditional"] = evaluate_conditional(gan, sampler.data, sampler.labels, held_out.data,
                                                     held_out.labels, seed=s["seed"])
    if isinstance(gan, BiGAN):
        _draw_reconstructions(gan, held_out or sampler, args.out / "reconstructions.png", f"BiGAN, {title}")
        if held_out is not None:
            result["inference"] = evaluate_inference(gan, sampler.data, labels=sampler.labels,
                                                     test_x=held_out.data, test_labels=held_out.labels,
                                                     seed=s["seed"])
        else:
            x = sampler.sample(5000, torch.Generator(device=device).manual_seed(2))
            result["inference"] = evaluate_inference(gan, x, seed=s["seed"])
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _stacked_modes(source, seed: int, chunk: int = 2000) -> dict:
    """Stacked MNIST's protocol on a GAN (or, as the baseline, on a sampler of the data): 26,000
    samples, each channel labelled by the digit classifier; modes reached and KL from uniform
    (metrics.stacked_mnist_modes), without the counts."""
    n = metrics.STACKED_SAMPLES
    if isinstance(source, GAN):
        gen = torch.Generator(device=source.device).manual_seed(seed + 1)
        samples = torch.cat([source.sample(min(chunk, n - i), generator=gen).cpu() for i in range(0, n, chunk)])
    else:
        samples = source.sample(n, torch.Generator(device=source.device).manual_seed(seed + 1)).cpu()
    report = metrics.stacked_mnist_modes(samples).as_dict()
    report.pop("counts")
    return report


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
        device = _device(args.device)
        gan = GAN.load(ckpt, map_location=device)
        if isinstance(gan, CycleGAN):  # translations of the held-out split, as train reports them
            train_split, test_split = _data(name, True, device)
            result = {"run": str(args.run), "data": name, "steps": gan.steps,
                      "translation": evaluate_translation(gan, train_split, test_split, seed=args.seed)}
            return _write_eval(result, args)
        if args.ema_batch_norm:
            if gan.ema is None:
                raise SystemExit("pygan eval: --ema-batch-norm needs a run with an EMA generator")
            layers = gan.recompute_ema_batch_norm(args.ema_batch_norm, seed=args.seed)
            print(f"EMA generator: the statistics of {layers} batch-norm layer{'' if layers == 1 else 's'} "
                  f"re-estimated over {args.ema_batch_norm} batches of 64", file=sys.stderr)
        sampler = pdata.as_sampler(name, device)
        gen = torch.Generator(device=device).manual_seed(args.seed + 1)
        with torch.no_grad():
            fake = gan.sample(args.samples, generator=gen)
        real = sampler.sample(args.samples, gen)
        result = {"run": str(args.run), "data": name, "steps": gan.steps,
                  **({"ema_batch_norm_batches": args.ema_batch_norm} if args.ema_batch_norm else {}),
                  **evaluate(fake, real, centers=getattr(sampler, "centers", None),
                             std=getattr(sampler, "std", None), **options)}
        if name == "stacked-mnist":
            result["stacked_mnist"] = _stacked_modes(gan, args.seed)
    return _write_eval(result, args)


def _write_eval(result: dict, args: argparse.Namespace) -> dict:
    text = json.dumps(result, indent=2) + "\n"
    out = args.out or (args.run / "eval.json" if args.run is not None else None)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        print(f"metrics: {out}", file=sys.stderr)
    return result


def _eval_summary(result: dict) -> str:
    """The report of ``eval`` in a few lines (the JSON file has everything)."""
    if "translation" in result:
        return _translation_text(result["translation"]).lstrip("; ")
    lines = [f"{result['n_fake']} generated against {result['n_real']} real samples ({result['dims']} dims); "
             "p-values near 0 say the two differ"]
    for key, label in (("mean_difference", "mean test"), ("variance", "variance test")):
        if key in result:
            lines.append(f"  {label}: p = {result[key]['p_value']:.3f}")
    mmd = result.get("mmd2_gaussian")
    if mmd:
        lines.append("  MMD^2 (gaussian): " + ", ".join(
            f"{v:.2e} at bandwidth {b:.3g} (p = {p:.3f})" for v, b, p in zip(mmd["mmd2"], mmd["bandwidths"], mmd["p_value"])))
    if "kid" in result:
        lines.append(f"  KID: {result['kid']['kid']:.2e} +- {result['kid']['kid_std']:.1e}")
    if "c2st" in result:
        lines.append(f"  C2ST: held-out accuracy {result['c2st']['accuracy']:.3f} (p = {result['c2st']['p_value']:.3f}; "
                     "0.5 means indistinguishable)")
    for key, value in result.items():
        if key.startswith("fdiv_"):
            lines.append(f"  {value['divergence']} divergence, critic's lower bound: {value['estimate']:.4f}")
    cov = result.get("mode_coverage")
    if cov:
        lines.append(f"  modes covered {cov['modes']}/{cov['n_modes']}, {100 * cov['high_quality']:.1f}% of samples "
                     "within 3 std of a mode")
    if result.get("stacked_mnist"):
        lines.append("  " + _stacked_text(result["stacked_mnist"]))
    return "\n".join(lines)


def _translation_text(translation: dict) -> str:
    text = ""
    for key, arrow in (("a_to_b", "->"), ("b_to_a", "<-")):
        t = translation[key]
        text += (f"; {translation['domains'][0]} {arrow} {translation['domains'][1]}: labels kept "
                 f"{100 * t['label_accuracy']:.1f}% (identity {100 * t['identity_label_accuracy']:.1f}%), "
                 f"cycle error {t['cycle_error']:.3f}, KID {t['kid']:.3f} (identity {t['identity_kid']:.3f})")
    return text


def _stacked_text(m: dict) -> str:
    return (f"Stacked MNIST: {m['modes']}/{m['n_modes']} modes in {m['samples']:,} samples, KL from uniform "
            f"{m['kl_uniform']:.3f} (digit classifier {100 * m['classifier_accuracy']:.1f}% on held-out MNIST)")


def _train_summary(result: dict, out: Path) -> str:
    cov = result.get("mode_coverage")
    resumed = result["steps_this_run"] != result["steps"]
    summary = f"{result['steps']} steps" + (f" ({result['steps_this_run']} in this run)" if resumed else "")
    summary += f" in {result['seconds']:.1f} s ({result['steps_per_s'] or 0:.1f} steps/s)"
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
    stacked = result.get("stacked_mnist")
    if stacked:
        summary += f"; {_stacked_text(stacked)}"
    if result.get("translation"):
        summary += _translation_text(result["translation"])
    files = [out / name for name in ("samples.png", "translations.png", "reconstructions.png", "losses.png", "metrics.json",
                                     "log.jsonl", "checkpoint.pt")]
    return summary + "\nwrote: " + ", ".join(str(f) for f in files if f.exists())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "eval":
            result = evaluate_command(args)
            print(_eval_summary(result))
        elif args.command == "train":
            print(_train_summary(train(args), args.out))
    except (UsageError, ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        # A mistake in the options or the files, or a run that diverged: one line that says what is
        # wrong. PYGAN_DEBUG=1 shows the traceback.
        if os.environ.get("PYGAN_DEBUG"):
            raise
        print(f"python -m pygan {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
