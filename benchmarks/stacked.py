"""Stacked MNIST over seeds: ``python -m pygan train --data stacked-mnist --seed S`` for each of
--seeds, each scored by R3GAN's Table 3 protocol as the run itself scores it (26,000 samples, each
channel labelled by the digit classifier; modes reached of 1,000 and KL(mode histogram || uniform),
split exactly into the channels' digit imbalance and their dependence), tabled per seed and as
mean +- standard error beside R3GAN's row and the data's own floor at the same sample count.

Each seed is one run into runs/stacked/seed-S/ (or --runs; its metrics.json holds the scores), on
one thread, --jobs of them at once, so a run's minutes are one thread's while another run shares
the machine.

    python benchmarks/stacked.py                     # seeds 0, 1, 2, two at once: about 100 minutes on 2 cores
    python benchmarks/stacked.py --update README.md   # the table between numbers:stacked-seeds markers
    python benchmarks/stacked.py --reuse --update README.md   # the runs under runs/stacked/, no training
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from _seeds import ROOT, add_options, mean_se, report, train

sys.path.insert(0, str(ROOT))
from pygan import cli  # noqa: E402  (the command line's own settings, to check reused runs against)

RUNS = ROOT / "runs" / "stacked"
R3GAN_KL = 0.029  # R3GAN, Table 3: 1,000 modes, KL 0.029 (best published)


def _args(seed: int, extra: list[str]) -> list[str]:
    return ["--data", "stacked-mnist", "--seed", str(seed), *extra]


def _record(seed: int, m: dict) -> dict:
    """One seed's row from its metrics.json: KL = digit imbalance (the channels' KLs summed) + dependence."""
    g, d = m["stacked_mnist"], m["stacked_mnist_data"]
    return {"seed": seed, "steps": m["steps"], "seconds": m["seconds"], "modes": g["modes"], "kl": g["kl_uniform"],
            "imbalance": sum(g["channel_kl"]), "dependence": g["dependence"], "data_modes": d["modes"],
            "data_kl": d["kl_uniform"], "data_imbalance": sum(d["channel_kl"]), "data_dependence": d["dependence"],
            "classifier_accuracy": g["classifier_accuracy"]}


def _reused(runs: Path, seed: int, extra: list[str]) -> dict:
    """A run already under ``runs``, refused unless it ran with the settings the same command
    would run with now (a run of older defaults must not be tabled as the current ones)."""
    path = runs / f"seed-{seed}" / "metrics.json"
    if not path.exists():
        raise SystemExit(f"--reuse: {path} does not exist; run without --reuse first")
    m = json.loads(path.read_text())
    args = cli._parser().parse_args(["train", *_args(seed, extra), "--out", str(path.parent)])
    want = cli._settings(args)
    steps = want.pop("steps")  # metrics.json keeps the steps apart from the other settings
    stale = sorted(k for k in want if m["settings"].get(k) != want[k])
    if stale or m["steps"] != steps:
        diff = ", ".join(f"{k} {m['settings'].get(k)!r} (now {want[k]!r})" for k in stale) or "steps"
        raise SystemExit(f"--reuse: {path} ran with other settings than the command would now: {diff}")
    return _record(seed, m)


def _run(runs: Path, seed: int, extra: list[str]) -> dict:
    r = _record(seed, train(_args(seed, extra), runs / f"seed-{seed}"))
    print(f"  seed {seed}: {r['modes']}/1000 modes, KL {r['kl']:.4f} (digit imbalance {r['imbalance']:.4f}, "
          f"dependence {r['dependence']:.4f}), {r['seconds'] / 60:.0f} min", flush=True)
    return r


def _table(runs: list[dict], jobs: Optional[int]) -> str:
    """The per-seed rows, their mean +- s.e., R3GAN's row and the data's floor; ``jobs`` is how many
    ran at once, None for reused runs (what shared the machine with them is not on record)."""

    def cells(kl: float, imb: float, dep: float) -> str:
        return f"{kl:.3f} | {imb:.3f} | {dep:.3f}"

    rows = ["| generator | steps | minutes per run | modes (of 1,000) | KL(modes ‖ uniform) | digit imbalance | "
            "dependence |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        rows.append(f"| pygan, seed {r['seed']} | {r['steps']:,} | {r['seconds'] / 60:.0f} | {r['modes']} | "
                    f"{cells(r['kl'], r['imbalance'], r['dependence'])} |")
    n = len(runs)
    modes, kl, imb, dep = (mean_se([r[k] for r in runs]) for k in ("modes", "kl", "imbalance", "dependence"))
    if n > 1:
        rows.append(f"| **pygan, {n} seeds (mean ± s.e.)** | | | {modes[0]:.0f} ± {modes[1]:.0f} | "
                    f"**{kl[0]:.3f} ± {kl[1]:.3f}** | {imb[0]:.3f} ± {imb[1]:.3f} | {dep[0]:.3f} ± {dep[1]:.3f} |")
    rows.append(f"| R3GAN (its Table 3, best published) | | | 1000 | {R3GAN_KL} | | |")
    data = (mean_se([r[k] for r in runs])[0] for k in ("data_kl", "data_imbalance", "data_dependence"))
    rows.append(f"| the data itself, 26,000 samples (mean over the seeds' draws) | | | "
                f"{min(r['data_modes'] for r in runs)} | {cells(*data)} |")
    acc = mean_se([r["classifier_accuracy"] for r in runs])[0]
    at_once = f"{jobs} at once on this machine" if jobs else "their minutes depend on what shared the machine"
    return "\n".join(rows) + (f"\n\nOne thread per run, {at_once}; digit classifier "
                              f"{100 * acc:.1f}% on the 1,250 held-out MNIST digits.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the seeds to run (default 0 1 2)")
    parser.add_argument("--reuse", action="store_true",
                        help="table the runs already under runs/stacked/ (refused if their settings are not the "
                             "command's current ones) instead of training")
    parser.add_argument("--runs", type=Path, default=RUNS, help="the runs' folder (default runs/stacked/)")
    add_options(parser, "stacked-seeds")
    args = parser.parse_args()
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct seeds >= 0, got {args.seeds}")
    if args.saved:
        runs = json.loads(args.saved.read_text())
    elif args.reuse:
        runs = [_reused(args.runs, s, args.extra) for s in args.seeds]
    else:
        print(f"stacked-mnist: seeds {args.seeds}, {args.jobs} at once", flush=True)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            runs = list(pool.map(lambda s: _run(args.runs, s, args.extra), args.seeds))
    report(args, runs, _table(runs, None if args.reuse or args.saved else args.jobs), "stacked-seeds")


if __name__ == "__main__":
    main()
