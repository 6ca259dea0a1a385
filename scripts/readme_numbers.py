"""Regenerates the README's result numbers from the current code, beside their trivial baselines.

Each configuration runs through the command line exactly as the README describes it (the data set's
defaults, seed 0) into runs/readme/<name>/, and once more with --steps 0: the same networks at their
random initialization, which is the baseline every trained number stands beside. The ring run is
then scored with ``python -m pygan eval``. The tables are written into README.md between the
``<!-- numbers:NAME -->`` and ``<!-- /numbers:NAME -->`` markers, and the runs' pictures replace
those under docs/ that the README shows; nothing else changes.

    python scripts/readme_numbers.py            # everything: about 40 minutes on 2 CPU cores
    python scripts/readme_numbers.py --only ring bigan
    python scripts/readme_numbers.py --only stacked-mnist --reuse   # the tables again from the runs there
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _seeds import replace_numbers, train  # noqa: E402  (the benchmarks' helpers)
from _timing import cpu_name  # noqa: E402

RUNS = ROOT / "runs" / "readme"
README = ROOT / "README.md"

# run / file -> the picture under docs/ that the README shows
PICTURES = {("ring", "samples.png"): "ring-samples.png", ("grid", "samples.png"): "grid-samples.png",
            ("digits", "samples.png"): "digits-samples.png",
            ("digits-conditional", "samples.png"): "digits-conditional-samples.png",
            ("bigan-dcgan", "reconstructions.png"): "bigan-digits-reconstructions.png",
            ("cyclegan", "translations.png"): "cyclegan-digits2mnist.png",
            ("stacked-mnist", "samples.png"): "stacked-mnist-samples.png"}

# name -> the train command's arguments (besides --out)
CONFIGS = {
    "ring": ["--data", "ring"],
    # the ring without the penalty and the EMA, shorter: what those two defaults buy
    "ring-plain": ["--data", "ring", "--penalty", "none", "--ema", "0", "--steps", "2000"],
    "grid": ["--data", "grid"],
    "digits": ["--data", "digits"],
    "digits-conditional": ["--data", "digits", "--conditional"],
    "bigan": ["--model", "bigan", "--data", "digits"],
    "bigan-dcgan": ["--model", "bigan-dcgan", "--data", "digits"],
    "cyclegan": ["--model", "cyclegan", "--data", "digits2mnist"],
    "stacked-mnist": ["--data", "stacked-mnist"],
}


def _train(name: str, steps: int | None = None, reuse: bool = False) -> dict:
    out = RUNS / (name if steps is None else f"{name}-init")
    if reuse:  # the run this script made last time (the settings it ran with are in its metrics)
        if not (out / "metrics.json").exists():
            raise SystemExit(f"--reuse: {out} holds no run; run without --reuse first")
        return json.loads((out / "metrics.json").read_text())
    return train(CONFIGS[name] + ([] if steps is None else ["--steps", str(steps)]), out, quiet=False,
                 side_by_side=False)


def _eval(name: str) -> dict:
    cmd = [sys.executable, "-m", "pygan", "eval", "--run", str(RUNS / name), "--device", "cpu"]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((RUNS / name / "eval.json").read_text())


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _toy_rows(results: dict) -> str:
    rows = ["| data | steps | time | modes covered | within 3 std of a mode | KL(mode histogram ‖ uniform) |",
            "|---|---:|---:|---:|---:|---:|"]
    labels = {"ring": "ring (8 modes, std 0.02)", "grid": "grid (25 modes, std 0.05)"}
    for name in ("ring", "grid"):
        if name not in results:
            continue
        for m, label in ((results[name]["init"], f"{labels[name]}, random initialization"),
                         (results[name]["trained"], labels[name])):
            c = m["mode_coverage"]
            rows.append(f"| {label} | {m['steps']:,} | {m['seconds']:.0f} s | {c['modes']} / {c['n_modes']} | "
                        f"{_pct(c['high_quality'])} | {c['kl_uniform']:.3f} |")
    return "\n".join(rows)


def _ablation_text(m: dict) -> str:
    c = m["mode_coverage"]
    return (f"Without the penalty and the EMA (`--penalty none --ema 0`), the same networks on the ring "
            f"covered {c['modes']} of {c['n_modes']} modes at {m['steps']:,} steps, with "
            f"{_pct(c['high_quality'])} of the samples within 3 std of a mode and KL {c['kl_uniform']:.3f} "
            f"from uniform over the modes")


def _eval_text(e: dict) -> str:
    mmd, c2 = e["mmd2_gaussian"], e["c2st"]
    fdiv = next((v for k, v in e.items() if k.startswith("fdiv_")), None)
    text = (f"For the ring demo ({e['n_fake']:,} samples each, `eval`'s default), the tests give: mean and "
            f"variance p = {e['mean_difference']['p_value']:.2f} and {e['variance']['p_value']:.2f}, MMD^2 "
            f"p = {min(mmd['p_value']):.2f}-{max(mmd['p_value']):.2f} at three bandwidths, C2ST accuracy "
            f"{c2['accuracy']:.3f} (p = {c2['p_value']:.2f})")
    if fdiv is not None:
        # A variational lower bound's estimate: below 0 only by its sampling error (printed as such).
        est = fdiv["estimate"]
        text += f", estimated {fdiv['divergence'].upper()} bound " + (
            f"{est:.4f}" if est >= 0 else f"{est:.1e} (below 0 by its sampling error)")
    cov = e.get("mode_coverage")
    if cov:
        text += f", {cov['modes']} of {cov['n_modes']} modes covered"
    return text + ". A p-value near 0 would say the generator differs from the data."


def _bigan_rows(results: dict) -> str:
    rows = ["| model | weights | time | E(G(z)) vs z: corr | G(E(x)) error / variance | E(x): linear, 1-NN "
            "| D features: linear, 1-NN | pixels: linear, 1-NN |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    labels = {"bigan": "MLP BiGAN", "bigan-dcgan": "conv BiGAN"}
    for name in ("bigan", "bigan-dcgan"):
        if name not in results:
            continue
        for m, weights in ((results[name]["init"], "random init"), (results[name]["trained"], "trained")):
            inf = m["inference"]
            f = inf["features"]

            def probe(key):
                p = f[key]
                return f"{_pct(p['linear'])}, {_pct(p['nearest_neighbor'])} ({p['features']}-d)"

            rows.append(f"| {labels[name]} | {weights} | {m['seconds']:.0f} s | "
                        f"{inf['latent_recovery']['correlation']:.2f} | {inf['reconstruction']['relative']:.2f} | "
                        f"{probe('encoder')} | {probe('discriminator')} | {probe('pixels')} |")
    return "\n".join(rows)


def _conditional_rows(results: dict) -> str:
    rows = ["| generator | time | class accuracy | worst class | coverage | worst class |",
            "|---|---:|---:|---:|---:|---:|"]
    for m, label in ((results["init"], "random initialization"), (results["trained"], "trained")):
        c = m["conditional"]
        rows.append(f"| {label} | {m['seconds']:.0f} s | {_pct(c['accuracy'])} | {_pct(min(c['per_class_accuracy']))} | "
                    f"{c['coverage']:.2f} | {min(c['per_class_coverage']):.2f} |")
    c = results["trained"]["conditional"]
    rows.append(f"| held-out real digits | | {_pct(c['real_accuracy'])} | | {c['real_coverage']:.2f} | "
                f"{min(c['real_per_class_coverage']):.2f} |")
    return "\n".join(rows)


def _stacked_rows(results: dict) -> str:
    trained, init = results["trained"], results["init"]

    def split(m: dict) -> str:  # KL = the channels' digit imbalance + their dependence (StackedModes)
        # (a KL is >= 0; one mode's rounding can leave -1e-16, which would print as -0.000)
        return " | ".join(f"{max(v, 0.0):.3f}" for v in (m["kl_uniform"], sum(m["channel_kl"]), m["dependence"]))

    st = trained["stacked_mnist"]
    rows = ["| generator | steps | time | modes (of 1,000) | KL(modes ‖ uniform) | digit imbalance | dependence |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| random initialization | 0 | 0 s | {init['stacked_mnist']['modes']} | {split(init['stacked_mnist'])} |",
            f"| pygan, DCGAN (width {trained['settings']['width']}"
            f"{', minibatch std' if trained['settings'].get('minibatch_std') else ''}"
            f"{', channels-last' if trained['settings'].get('channels_last') else ''}) | {trained['steps']:,} | "
            f"{trained['seconds'] / 60:.1f} min ({trained['seconds']:,.0f} s) | {st['modes']} | {split(st)} |",
            "| R3GAN (its Table 3, best published) | | | 1000 | 0.029 | | |",
            f"| the data itself, 26,000 samples | | | {trained['stacked_mnist_data']['modes']} | "
            f"{split(trained['stacked_mnist_data'])} |"]
    return "\n".join(rows) + (f"\n\nDigit classifier: {100 * st['classifier_accuracy']:.1f}% on the 1,250 held-out "
                              "MNIST digits.")


def _kid(value: float) -> str:
    # KID is unbiased: on two samples of one distribution it scatters around 0, below it too.
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def _cyclegan_rows(results: dict) -> str:
    trained, init = results["trained"]["translation"], results["init"]["translation"]
    a, b = trained["domains"]
    rows = ["| direction | mapping | time | labels kept | cycle error | KID (pixels) |", "|---|---|---:|---:|---:|---:|"]
    for key, arrow in (("a_to_b", f"{a} → {b}"), ("b_to_a", f"{b} → {a}")):
        t, i = trained[key], init[key]
        rows += [f"| {arrow} | identity (untranslated) | | {_pct(t['identity_label_accuracy'])} | 0 | "
                 f"{_kid(t['identity_kid'])} |",
                 f"| {arrow} | random initialization | 0 s | {_pct(i['label_accuracy'])} | {i['cycle_error']:.3f} | "
                 f"{_kid(i['kid'])} |",
                 f"| {arrow} | trained | {results['trained']['seconds']:.0f} s | {_pct(t['label_accuracy'])} | "
                 f"{t['cycle_error']:.3f} | {_kid(t['kid'])} |",
                 f"| {arrow} | real {arrow.split(' → ')[1]} images | | {_pct(t['classifier_accuracy'])} | | "
                 f"{_kid(t['real_kid'])} |"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), help="run these configurations only")
    parser.add_argument("--reuse", action="store_true",
                        help="read the runs already in runs/readme/ instead of training again (after a change "
                             "to how the tables are written, not to the code they measure)")
    args = parser.parse_args()
    names = args.only or list(CONFIGS)
    # The ablation's baseline is the ring's own random-init row.
    results = {name: {"trained": _train(name, reuse=args.reuse),
                      **({} if name == "ring-plain" else {"init": _train(name, steps=0, reuse=args.reuse)})}
               for name in names}
    text = README.read_text()
    if {"ring", "grid"} <= set(names):
        text = replace_numbers(text, "toys", _toy_rows(results))
    if "ring" in names:
        text = replace_numbers(text, "ring-eval", _eval_text(_eval("ring")))
    if "ring-plain" in names:
        text = replace_numbers(text, "ablation", _ablation_text(results["ring-plain"]["trained"]))
    if "digits" in names:
        text = replace_numbers(text, "digits-time", f"{results['digits']['trained']['seconds']:.0f} s")
    if "digits-conditional" in names:
        text = replace_numbers(text, "conditional", _conditional_rows(results["digits-conditional"]))
    if "stacked-mnist" in names:
        text = replace_numbers(text, "stacked", _stacked_rows(results["stacked-mnist"]))
    if "cyclegan" in names:
        text = replace_numbers(text, "cyclegan", _cyclegan_rows(results["cyclegan"]))
        steps = results["cyclegan"]["trained"]["steps"]
        text = replace_numbers(text, "cyclegan-steps", f"{steps:,}")
    if {"bigan", "bigan-dcgan"} <= set(names):
        text = replace_numbers(text, "bigan", _bigan_rows(results))
    README.write_text(text)
    for (name, picture), target in PICTURES.items():
        if name in names:
            shutil.copyfile(RUNS / name / picture, ROOT / "docs" / target)
    print(f"README.md updated from {', '.join(names)} ({cpu_name()})")


if __name__ == "__main__":
    main()
