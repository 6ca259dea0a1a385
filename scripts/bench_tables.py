"""Markdown tables for docs/benchmarks.md from the rows benchmark scripts write with --json.

Rows follow benchmarks/_timing.py's schema (op, impl, size, ms_min / ms_p50 / ms_p90, peak_mb,
device, torch, pygan, and extras such as loss or threads). A table pivots them: one line per
(op, extras, size), one column per impl, the ratios the table names and, for the tables that
measure memory, each impl's peak MB. ``--update`` replaces the block between
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in a markdown file (NAME is the
table's, or ``--block``'s), so the numbers in the docs are the ones the script measured.

    python benchmarks/overhead.py --json /tmp/overhead.json
    python scripts/bench_tables.py overhead /tmp/overhead.json                  # print the table
    python scripts/bench_tables.py overhead /tmp/overhead.json --update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple


class Table(NamedTuple):
    """How a table pivots its rows. Columns and ratios that no row fills are left out."""
    labels: tuple[str, ...]  # the row fields that label a line
    impls: tuple[str, ...]  # one time column each
    ratios: tuple[tuple[str, str], ...]  # (numerator, denominator) impls
    scale: float  # ms -> unit
    unit: str
    # The least-disturbed sample for the interleaved benchmarks, the median for the sequential ones.
    stat: str
    memory: bool = False  # also each impl's peak_mb
    # Beside the ratio of each of these impls, the rows' flop_bound: the ratio of the products'
    # FLOPs (eager's over the impl's), the most the impl can gain where its products run at eager's
    # speed.
    bound: tuple[str, ...] = ()


TABLES = {
    "overhead": Table(("op", "loss", "size"), ("floor", "eager", "pygan"),
                      (("pygan", "floor"), ("pygan", "eager")), 1e3, "us", "ms_min"),
    "train_step": Table(("op", "threads", "size"), ("eager", "eager-fused-adam", "compile", "pygan", "pygan-fused",
                                                    "pygan-captured"),
                        (("eager", "eager-fused-adam"), ("eager", "pygan"), ("eager", "pygan-fused"),
                         ("eager", "pygan-captured")), 1.0, "ms",
                        "ms_min", bound=("pygan", "pygan-fused", "pygan-captured")),
    "multi_tensor": Table(("model", "op", "size"), ("eager", "foreach", "compile", "pygan"),
                          (("eager", "pygan"), ("foreach", "pygan")), 1.0, "ms", "ms_min"),
    "losses": Table(("op", "loss", "dtype", "threads", "size"),
                    ("eager", "compile", "cpu-2", "cpu-avx2", "cpu-base", "cpu", "cuda-2", "cuda", "triton-2",
                     "triton"),
                    tuple(("eager", i) for i in ("cpu-avx2", "cpu", "cuda", "triton"))
                    + tuple(("compile", i) for i in ("cpu-avx2", "cpu", "cuda", "triton")), 1.0, "ms", "ms_p50"),
    "penalties": Table(("model", "threads", "size"), ("baseline", "compile", "pygan", "pygan-fused", "pygan-closed"),
                       (("baseline", "pygan"), ("baseline", "pygan-fused"), ("baseline", "pygan-closed")), 1.0, "ms",
                       "ms_min", memory=True),
    "activation": Table(("model", "threads", "size"), ("eager", "compile", "pygan"),
                        (("eager", "pygan"), ("compile", "pygan")), 1.0, "ms", "ms_min"),
    "conv": Table(("case", "threads"), ("eager", "compile", "pygan"), (("eager", "pygan"), ("compile", "pygan")),
                  1.0, "ms", "ms_min"),
    "mmd": Table(("d", "size"), ("eager", "compile", "pygan", "pygan-cpu", "pygan-cuda", "pygan-triton"),
                 (("eager", "pygan"), ("compile", "pygan")), 1.0, "ms", "ms_p50", memory=True),
}


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


def render(name: str, rows: list[dict]) -> str:
    """The markdown table ``name`` of ``rows``."""
    t = TABLES[name]
    lines: dict[tuple, dict[str, float]] = {}
    memory: dict[tuple, dict[str, float]] = {}
    bounds: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if isinstance(r.get(t.stat), (int, float)):
            key = tuple(r.get(k, "") for k in t.labels)
            lines.setdefault(key, {})[r["impl"]] = r[t.stat] * t.scale
            if isinstance(r.get("peak_mb"), (int, float)):
                memory.setdefault(key, {})[r["impl"]] = r["peak_mb"]
            if r["impl"] in t.bound and isinstance(r.get("flop_bound"), (int, float)):
                bounds.setdefault(key, {})[r["impl"]] = r["flop_bound"]
    impls = [i for i in t.impls if any(i in line for line in lines.values())]
    ratios = [(a, b) for a, b in t.ratios if any(a in line and b in line for line in lines.values())]
    mem_impls = [i for i in impls if any(i in line for line in memory.values())] if t.memory else []
    # "a / b" is a's time over b's: how many times the floor for the overhead table (lower is
    # better), the speed-up of b over a for the others, as each column names it.
    bounded = {b for a, b in ratios if any(b in line for line in bounds.values())}
    head = [*t.labels, *(f"{i} {t.unit}" for i in impls),
            *(h for a, b in ratios for h in (f"{a} / {b}", *([f"{b} FLOP bound"] if b in bounded else []))),
            *(f"{i} MB" for i in mem_impls)]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < len(t.labels) else "---:"
                                                          for i in range(len(head))) + "|"]
    for key, times in lines.items():
        cells = [str(k) for k in key] + [_fmt(times[i]) if i in times else "" for i in impls]
        for a, b in ratios:
            cells.append(f"{times[a] / times[b]:.2f}x" if a in times and b in times else "")
            if b in bounded:
                cells.append(f"{bounds[key][b]:.2f}x" if b in bounds.get(key, {}) else "")
        cells += [_fmt(memory[key][i]) if i in memory.get(key, {}) else "" for i in mem_impls]
        out.append("| " + " | ".join(cells) + " |")
    devices = sorted({f"{r['device']}, torch {r['torch']}" for r in rows if "device" in r})
    return "\n".join(out) + "\n\n" + f"Measured on: {'; '.join(devices)}."


def update(path: Path, name: str, table: str) -> None:
    """Replaces the generated block ``name`` in the markdown file ``path``."""
    text = path.read_text()
    pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"{path} has no block <!-- generated:{name} --> ... <!-- /generated:{name} -->")
    path.write_text(pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("table", choices=sorted(TABLES))
    p.add_argument("json", nargs="+", help="files a benchmark wrote with --json")
    p.add_argument("--update", type=Path, help="markdown file whose generated block to replace")
    p.add_argument("--block", help="the block's name, when a document has several of one table (default: the table)")
    args = p.parse_args()
    rows: list[dict] = []
    for f in args.json:
        data = json.loads(Path(f).read_text())
        rows += data["rows"] if isinstance(data, dict) else data
    table = render(args.table, rows)
    if args.update:
        update(args.update, args.block or args.table, table)
    else:
        print(table)


if __name__ == "__main__":
    main()
