"""What the over-seeds benchmarks (modes.py, features.py) and scripts/readme_numbers.py share: one
``python -m pygan train`` run on the CPU read back as its metrics.json, the mean and standard error
of per-seed numbers, and the README's ``<!-- numbers:NAME -->`` markers."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(args: list[str], out: Path, *, quiet: bool = True, side_by_side: bool = True) -> dict:
    """Runs ``python -m pygan train ARGS --out OUT`` on the CPU and returns its metrics.json. Runs
    ``side_by_side`` take one thread each unless OMP_NUM_THREADS says otherwise; ``quiet`` hides
    the command and its output."""
    cmd = [sys.executable, "-m", "pygan", "train", *args, "--out", str(out), "--overwrite", "--quiet", "--device", "cpu"]
    env = dict(os.environ)
    if side_by_side:
        env.setdefault("OMP_NUM_THREADS", "1")
    if not quiet:
        print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL if quiet else None)
    return json.loads((Path(out) / "metrics.json").read_text())


def mean_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error, sd / sqrt(n) with the n - 1 sample variance (nan for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def replace_numbers(text: str, name: str, body: str, where: str = "README.md") -> str:
    """``text`` with what stands between ``<!-- numbers:NAME -->`` and ``<!-- /numbers:NAME -->``
    replaced by ``body``."""
    pattern = re.compile(rf"(<!-- numbers:{re.escape(name)} -->\n?).*?(\n?<!-- /numbers:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no <!-- numbers:{name} --> markers")

    def sub(m: re.Match) -> str:
        opening, closing = m.group(1).rstrip("\n"), m.group(2).lstrip("\n")
        if m.start() > 0 and text[m.start() - 1] != "\n" and "\n" not in body:
            # Markers inside a sentence keep the number inline: a line that starts with "<!--"
            # would begin an HTML block and break the paragraph.
            return opening + body + closing
        # A block (a table, a paragraph) on lines of its own (an empty pair may share one newline).
        return opening + "\n" + body + "\n" + closing
    return pattern.sub(sub, text)


def add_options(parser: argparse.ArgumentParser, marker: str) -> None:
    """The options every over-seeds benchmark has: --jobs, --json, --update (the ``marker``
    numbers), --from, and train options after --."""
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each on one thread)")
    parser.add_argument("--json", type=Path, help="also write the per-seed results here")
    parser.add_argument("--update", type=Path, help=f"write the table into this file's numbers:{marker} markers")
    parser.add_argument("--from", dest="saved", type=Path, help="table the per-seed results of an earlier --json")
    parser.add_argument("extra", nargs="*", help="more train options after --, e.g. -- --steps 6000")


def report(args: argparse.Namespace, results: dict, table: str, marker: str) -> None:
    """Prints ``table``, writes ``results`` to --json and the table into --update's markers."""
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.update:
        args.update.write_text(replace_numbers(args.update.read_text(), marker, table, str(args.update)))
