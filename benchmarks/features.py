"""BiGAN's learned features against the same encoder at its random initialization, over seeds: the
BiGAN paper's comparison (Donahue et al. 2017), on MNIST at 28x28.

For each encoder (``--model bigan``: MLP; ``bigan-dcgan``: conv) and seed S, two runs of the command
line with the data set's defaults: ``python -m pygan train --model M --data mnist --seed S`` and the
same with ``--steps 0`` (the networks as seed S initializes them). Each run's metrics.json holds the
held-out probes of its encoder's code E(x) (``inference.features.encoder``): multinomial logistic
regression and 1-nearest-neighbour, fitted on the 3,750 training digits and scored on the other
1,250 (:func:`pygan.metrics.feature_probes`), beside the same probes of the raw pixels. The table
shows mean +- standard error over seeds, and the gain of training with the standard error of the
per-seed (paired) differences.

    python benchmarks/features.py                    # 5 seeds of both encoders: about 35 minutes on 2 cores
    python benchmarks/features.py --model bigan --seeds 3
    python benchmarks/features.py --update README.md # the table between <!-- numbers:features --> markers,
                                                     # and docs/bigan-mnist-reconstructions.png
    python benchmarks/features.py --from runs.json --update README.md   # the table of saved results
"""

from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

from _seeds import ROOT, add_options, mean_se, report, train

RUNS = ROOT / "runs" / "features"
MODELS = {"bigan": "MLP", "bigan-dcgan": "conv"}
# the README's picture: the conv model's x beside G(E(x)) on held-out digits, seed 0
PICTURE = (RUNS / "bigan-dcgan-0" / "reconstructions.png", ROOT / "docs" / "bigan-mnist-reconstructions.png")


def _run(model: str, seed: int, init: bool, extra: list[str]) -> dict:
    args = ["--model", model, "--data", "mnist", "--seed", str(seed), *extra] + (["--steps", "0"] if init else [])
    m = train(args, RUNS / f"{model}-{seed}{'-init' if init else ''}")
    feats = m["inference"]["features"]
    enc, pix = feats["encoder"], feats["pixels"]
    print(f"  {model} seed {seed} {'random init' if init else 'trained'}: linear {100 * enc['linear']:.1f}%, "
          f"1-NN {100 * enc['nearest_neighbor']:.1f}% ({enc['features']}-d), {m['seconds']:.0f} s", flush=True)
    return {"seed": seed, "steps": m["steps"], "seconds": m["seconds"], "linear": enc["linear"],
            "nearest_neighbor": enc["nearest_neighbor"], "features": enc["features"], "pixels": pix}


def _cell(values: list[float]) -> str:
    mean, se = mean_se([100 * v for v in values])
    return f"{mean:.1f}% ± {se:.1f}"


def _table(results: dict[str, dict[str, list[dict]]]) -> str:
    rows = ["| encoder | weights | steps | minutes per run | linear probe | 1-NN |", "|---|---|---:|---:|---:|---:|"]
    pixels = None
    for model, runs in results.items():
        init, trained = runs["init"], runs["trained"]
        n, dims = len(trained), trained[0]["features"]
        name = f"{MODELS[model]}, E(x) ({dims}-d)"
        rows.append(f"| {name} | random init, {n} seeds | 0 | 0 | {_cell([r['linear'] for r in init])} | "
                    f"{_cell([r['nearest_neighbor'] for r in init])} |")
        rows.append(f"| {name} | BiGAN, {n} seeds | {trained[0]['steps']:,} | "
                    f"{sum(r['seconds'] for r in trained) / n / 60:.1f} | {_cell([r['linear'] for r in trained])} | "
                    f"{_cell([r['nearest_neighbor'] for r in trained])} |")
        gains = []
        for key in ("linear", "nearest_neighbor"):  # paired by seed: the same initial weights, trained or not
            by_seed = {r["seed"]: r[key] for r in init}
            mean, se = mean_se([100 * (r[key] - by_seed[r["seed"]]) for r in trained])
            gains.append(f"**{mean:+.1f} ± {se:.1f}** ({mean / se:.0f} s.e.)" if se > 0 else f"**{mean:+.1f}**")
        rows.append(f"| {name} | gain of training (paired by seed) | | | {gains[0]} | {gains[1]} |")
        pixels = trained[0]["pixels"]
    if pixels is not None:
        rows.append(f"| raw pixels ({pixels['features']}-d) | | | | {100 * pixels['linear']:.1f}% | "
                    f"{100 * pixels['nearest_neighbor']:.1f}% |")
        rows.append(f"| chance (the largest class) | | | | {100 * pixels['chance']:.1f}% | {100 * pixels['chance']:.1f}% |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..SEEDS-1")
    add_options(parser, "features")
    args = parser.parse_args()
    if args.saved:
        results = json.loads(args.saved.read_text())
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            print(f"{', '.join(args.model)}: {args.seeds} seeds each, trained and at random initialization", flush=True)
            jobs = {(m, init, s): pool.submit(_run, m, s, init, args.extra)
                    for m in args.model for s in range(args.seeds) for init in (False, True)}
            results = {m: {key: [jobs[m, init, s].result() for s in range(args.seeds)]
                           for key, init in (("trained", False), ("init", True))} for m in args.model}
    report(args, results, _table(results), "features")
    if args.update and not args.saved and "bigan-dcgan" in args.model and PICTURE[0].exists():
        shutil.copyfile(*PICTURE)


if __name__ == "__main__":
    main()
