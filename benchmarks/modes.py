"""The mode-collapse protocol over seeds: ring and grid trained with the command line's defaults on
several seeds, scored as VEEGAN's and PacGAN's Table 1 score them (pygan.metrics.mode_coverage on
2,500 samples: modes captured, share of high-quality samples, reverse KL), reported as mean +-
standard error beside the published rows.

Each seed is one ``python -m pygan train --data NAME --seed S`` run into runs/modes/NAME-S/ (its
metrics.json holds the scores). pygan's ring (radius 2, std 0.02) is PacGAN's (radius 1, std 0.01)
scaled by 2, so the ratios compare; the grid (spacing 2, std 0.05) is PacGAN's exactly.

    python benchmarks/modes.py                      # 10 seeds of ring and grid: about 45 minutes on 2 cores
    python benchmarks/modes.py --data ring --seeds 3 --jobs 2
    python benchmarks/modes.py --update README.md   # writes the table between <!-- numbers:modes --> markers
    python benchmarks/modes.py --from runs.json --update README.md   # the table of saved results, no training
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ThreadPoolExecutor

from _seeds import ROOT, add_options, mean_se, report, train

RUNS = ROOT / "runs" / "modes"

# PacGAN Table 1 (10 trials): the best row per data set and the highest high-quality share of any row.
PUBLISHED = {
    "ring": [("PacGAN2 (best row)", 7.9, 0.1, 0.956, 0.07), ("GAN (highest high-quality share)", 6.3, None, 0.982, None)],
    "grid": [("PacGAN4 (best row)", 24.8, 0.2, 0.936, 0.04), ("ALI (highest high-quality share)", 24.1, None, 0.957, None)],
}
CEILING = 1 - math.exp(-4.5)  # a perfect generator's share within 3 std of its mode (2-D Gaussian)


def _run(name: str, seed: int, extra: list[str]) -> dict:
    m = train(["--data", name, "--seed", str(seed), *extra], RUNS / f"{name}-{seed}")
    cov = m["mode_coverage"]
    print(f"  {name} seed {seed}: {cov['modes']}/{cov['n_modes']} modes, {100 * cov['high_quality']:.1f}% high "
          f"quality, reverse KL {cov['kl_uniform']:.3f}, {m['seconds']:.0f} s", flush=True)
    return {"seed": seed, "seconds": m["seconds"], **{k: cov[k] for k in ("modes", "n_modes", "high_quality",
                                                                          "kl_uniform", "samples")}}


def _table(results: dict[str, list[dict]]) -> str:
    rows = ["| data | generator | modes (mean ± s.e.) | high quality | reverse KL | minutes per run |",
            "|---|---|---:|---:|---:|---:|"]
    for name, runs in results.items():
        n = len(runs)
        modes, hq, kl = (mean_se([r[k] for r in runs]) for k in ("modes", "high_quality", "kl_uniform"))
        minutes = sum(r["seconds"] for r in runs) / n / 60
        rows.append(f"| {name} | pygan, {n} seeds | {modes[0]:.1f} ± {modes[1]:.1f} / {runs[0]['n_modes']} | "
                    f"{100 * hq[0]:.1f}% ± {100 * hq[1]:.1f} | {kl[0]:.3f} ± {kl[1]:.3f} | {minutes:.1f} |")
        for label, m, m_se, h, k in PUBLISHED[name]:
            rows.append(f"| {name} | {label} | {m}" + (f" ± {m_se}" if m_se is not None else "") + " | "
                        f"{100 * h:.1f}% | {'' if k is None else k} | |")
    rows.append(f"| | a perfect generator | all | {100 * CEILING:.1f}% | 0 | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", choices=sorted(PUBLISHED), default=["ring", "grid"])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 1..SEEDS (seed 0 is the README's own run)")
    add_options(parser, "modes")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    if args.saved:
        results = json.loads(args.saved.read_text())
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for name in args.data:
                print(f"{name}: {args.seeds} seeds", flush=True)
                results[name] = list(pool.map(lambda s, n=name: _run(n, s, args.extra), range(1, args.seeds + 1)))
    report(args, results, _table(results), "modes")


if __name__ == "__main__":
    main()
