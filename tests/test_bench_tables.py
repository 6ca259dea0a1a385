"""scripts/bench_tables.py: benchmark rows in, the markdown tables of docs/benchmarks.md out."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "scripts" / "bench_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(op, impl, size, ms, **extra):
    return {"op": op, "impl": impl, "size": size, **extra, "ms_min": ms, "ms_p50": ms, "ms_p90": ms,
            "samples": 1, "peak_mb": None, "device": "cpu-x", "torch": "2.x", "pygan": "0.1"}


def test_overhead_table_pivots_impls_and_ratios(tmp_path):
    bt = _module()
    rows = [_row("discriminator_loss", "floor", 8, 0.030, loss="gan"),
            _row("discriminator_loss", "eager", 8, 0.060, loss="gan"),
            _row("discriminator_loss", "pygan", 8, 0.036, loss="gan")]
    table = bt.render("overhead", rows)
    lines = table.splitlines()
    assert lines[0] == "| op | loss | size | floor us | eager us | pygan us | pygan / floor | pygan / eager |"
    assert lines[2] == "| discriminator_loss | gan | 8 | 30 | 60 | 36 | 1.20x | 0.60x |"
    assert "Measured on: cpu-x, torch 2.x." in table

    doc = tmp_path / "bench.md"
    doc.write_text("intro\n<!-- generated:overhead -->\nold\n<!-- /generated:overhead -->\nrest\n")
    bt.update(doc, "overhead", table)
    text = doc.read_text()
    assert "old" not in text and table in text and text.startswith("intro\n") and text.endswith("rest\n")
    with pytest.raises(SystemExit, match="has no block"):
        bt.update(doc, "train_step", table)
