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


@pytest.mark.parametrize("script, table, args", [
    ("overhead.py", "overhead", ["--ops", "discriminator_loss", "--losses", "gan", "--blocks", "2", "--reps", "2"]),
    ("train_step.py", "train_step", ["--cases", "demo", "--no-compile", "--min-time", "0", "--blocks", "1",
                                     "--reps", "1", "--threads", "1"]),
    ("multi_tensor.py", "multi_tensor", ["--no-compile", "--blocks", "1", "--reps", "1"]),
    ("penalties.py", "penalties", ["--models", "mlp", "--batches", "8", "--no-compile", "--blocks", "1", "--reps", "1"]),
    ("penalties.py", "penalties", ["--step", "r1", "--models", "mlp", "--batches", "8", "--no-compile", "--blocks",
                                   "1", "--reps", "1"]),
    ("mmd.py", "mmd", ["--sizes", "64", "--dims", "2", "--no-compile"]),
    ("activation.py", "activation", ["--no-compile", "--blocks", "1", "--reps", "1", "--threads", "1"]),
])
def test_benchmarks_write_rows_the_tables_render(tmp_path, script, table, args):
    """Each benchmark that writes the row schema runs end to end at a tiny size, and its rows make
    its docs table (the numbers are not checked: timing is not a test)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "rows.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--device", "cpu", "--json", str(out),
                          *args], check=True, capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=600)
    assert "failed" not in res.stdout, res.stdout  # an impl that raised is left out of the rows
    data = json.loads(out.read_text())
    rows = data["rows"] if isinstance(data, dict) else data
    assert rows and all({"op", "impl", "size", "ms_min", "ms_p50", "device", "torch", "pygan"} <= set(r)
                        for r in rows if r.get("ms") != "fails" and "error" not in r)
    table = _module().render(table, rows)
    assert table.count("\n|") >= 2 and "Measured on:" in table


def test_memory_tables_add_each_impls_peak_mb():
    """The penalty and MMD tables show each impl's peak memory beside its time and ratios."""
    rows = [{**_row("mmd2", "eager", 1000, 25.0, d=2), "peak_mb": 28.0},
            {**_row("mmd2", "pygan", 1000, 5.0, d=2), "peak_mb": 8.0},
            {"op": "mmd2", "impl": "eager", "size": 10 ** 6, "d": 2, "error": "not run"}]
    lines = _module().render("mmd", rows).splitlines()
    assert lines[0] == "| d | size | eager ms | pygan ms | eager / pygan | eager MB | pygan MB |"
    assert lines[2] == "| 2 | 1000 | 25 | 5 | 5.00x | 28 | 8 |" and len(lines) == 5


def test_losses_benchmark_rows(tmp_path):
    """benchmarks/losses.py writes the row schema too, and its table keeps only the filled columns."""
    import json
    import subprocess
    import sys

    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "losses.py"), "--device", "cpu", "--no-compile",
                    "--sizes", "256", "--json", str(out)], check=True, capture_output=True,
                   cwd=ROOT / "benchmarks", timeout=600)
    rows = json.loads(out.read_text())["rows"]
    from pygan._ops import backend as _backend

    header = _module().render("losses", rows).splitlines()[0]
    assert "eager ms" in header and "cpu-base ms" in header
    assert ("eager / cpu-avx2" in header) == ("avx2" in _backend.cpu_isas())
    assert "triton" not in header and "compile" not in header


def test_modes_benchmark_runs_seeds_and_tables_them_beside_the_published_rows(tmp_path):
    """benchmarks/modes.py at a tiny size: one seed of 10 steps, its JSON, and the table it writes
    between a document's numbers:modes markers."""
    import json
    import subprocess
    import sys

    doc = tmp_path / "doc.md"
    doc.write_text("a\n<!-- numbers:modes -->\nold\n<!-- /numbers:modes -->\nb\n")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "modes.py"), "--data", "ring", "--seeds", "1",
                          "--jobs", "1", "--json", str(tmp_path / "m.json"), "--update", str(doc), "--", "--steps", "10"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = json.loads((tmp_path / "m.json").read_text())["ring"]
    assert len(runs) == 1 and runs[0]["samples"] == 2500 and runs[0]["n_modes"] == 8
    text = doc.read_text()
    assert "old" not in text and "| ring | pygan, 1 seeds |" in text and "PacGAN2 (best row)" in text
    assert "| | a perfect generator | all | 98.9% | 0 | |" in text


@pytest.mark.slow
def test_stacked_benchmark_tables_seeds_and_refuses_runs_of_other_settings(tmp_path, model_cache):
    """benchmarks/stacked.py at a tiny size: one seed (3) of 2 steps of a width-8 DCGAN, scored by the
    run itself, its JSON and table; --reuse tables the same run again without training, and refuses
    it, naming the setting, when the command's settings now differ (here: the default width)."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("mlxtend")
    doc = tmp_path / "doc.md"
    doc.write_text("a\n<!-- numbers:stacked-seeds -->\nold\n<!-- /numbers:stacked-seeds -->\nb\n")
    tiny = ["--", "--steps", "2", "--width", "8", "--batch-size", "8"]
    env = dict(os.environ, PYGAN_CACHE=str(model_cache))

    def bench(*args):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stacked.py"), "--seeds", "3", "--jobs", "1",
                               "--runs", str(tmp_path / "runs"), *args],
                              capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)

    res = bench("--json", str(tmp_path / "s.json"), "--update", str(doc), *tiny)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = json.loads((tmp_path / "s.json").read_text())
    assert run["seed"] == 3 and run["steps"] == 2 and 1 <= run["modes"] <= 1000
    assert abs(run["kl"] - run["imbalance"] - run["dependence"]) < 1e-9  # the exact split
    assert run["data_modes"] >= 990 and run["classifier_accuracy"] >= 0.97
    text = doc.read_text()
    assert "old" not in text and "| pygan, seed 3 | 2 |" in text and "| R3GAN (its Table 3, best published) |" in text
    assert "One thread per run, 1 at once on this machine" in text
    again = bench("--reuse", *tiny)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "| pygan, seed 3 | 2 |" in again.stdout and "at once" not in again.stdout  # how it ran is not on record
    stale = bench("--reuse")
    assert stale.returncode != 0 and "width 8 (now 32)" in stale.stderr and "Traceback" not in stale.stderr


def test_features_benchmark_pairs_trained_and_random_init_by_seed(tmp_path):
    """benchmarks/features.py at a tiny size: two seeds of a 5-step MLP BiGAN and of its random
    initialization, the paired gain, the pixels row, and the table between numbers:features markers."""
    import json
    import subprocess
    import sys

    doc = tmp_path / "doc.md"
    doc.write_text("a\n<!-- numbers:features -->\nold\n<!-- /numbers:features -->\nb\n")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "features.py"), "--model", "bigan", "--seeds", "2",
                          "--json", str(tmp_path / "f.json"), "--update", str(doc), "--", "--steps", "5"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = json.loads((tmp_path / "f.json").read_text())["bigan"]
    assert [r["seed"] for r in runs["trained"]] == [0, 1] and [r["steps"] for r in runs["init"]] == [0, 0]
    assert [r["steps"] for r in runs["trained"]] == [5, 5] and runs["trained"][0]["features"] == 32
    text = doc.read_text()
    assert "old" not in text and "| MLP, E(x) (32-d) | random init, 2 seeds | 0 | 0 |" in text
    assert "| MLP, E(x) (32-d) | gain of training (paired by seed) |" in text and "| raw pixels (784-d) |" in text
    pixels = runs["trained"][0]["pixels"]
    assert pixels == runs["init"][1]["pixels"] and 0.8 < pixels["nearest_neighbor"] < 1  # data, not networks


def test_the_training_step_table_shows_pygans_flop_bound_beside_its_ratio():
    rows = [{**_row("demo", "eager", 512, 10.0, threads=1), "flop_bound": 1.0},
            {**_row("demo", "eager-fused-adam", 512, 9.0, threads=1), "flop_bound": 1.0},
            {**_row("demo", "pygan-fused", 512, 6.0, threads=1), "flop_bound": 1.6}]
    lines = _module().render("train_step", rows).splitlines()
    assert lines[0] == ("| op | threads | size | eager ms | eager-fused-adam ms | pygan-fused ms | "
                        "eager / eager-fused-adam | eager / pygan-fused | pygan-fused FLOP bound |")
    assert lines[2] == "| demo | 1 | 512 | 10 | 9 | 6 | 1.11x | 1.67x | 1.60x |"


def test_matmul_flops_counts_products_and_convolutions_through_double_backward():
    """benchmarks/_timing.matmul_flops: 2 m k n per product, the convolution's forward, and the
    products autograd's double backward runs (nothing else: elementwise work is not counted)."""
    import sys

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _timing import matmul_flops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert matmul_flops(lambda: (a @ b).exp()) == 2 * 5 * 7 * 3
    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    assert matmul_flops(lambda: torch.nn.functional.conv2d(x, w)) == 2 * 2 * 4 * 6 * 6 * 3 * 3 * 3
    # x W^T, its input gradient c W with create_graph, then that gradient's backward into W: three
    # products of the same size.
    x = torch.randn(5, 7, requires_grad=True)
    w = torch.randn(3, 7, requires_grad=True)

    def r1():
        (g,) = torch.autograd.grad((x @ w.t()).sum(), x, create_graph=True)
        g.pow(2).sum().backward()
    assert matmul_flops(r1) == 3 * 2 * 5 * 7 * 3


def test_readme_numbers_stay_inline_inside_a_sentence_and_tables_on_lines_of_their_own():
    """benchmarks/_seeds.replace_numbers: a number between markers inside a sentence stays on the
    sentence's line (a line that starts with "<!--" would begin an HTML block and break the
    paragraph); a table goes on lines of its own."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _seeds import replace_numbers
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    text = "took <!-- numbers:t -->\nold\n<!-- /numbers:t --> in all.\n\n<!-- numbers:table -->\n|a|\n<!-- /numbers:table -->\n"
    text = replace_numbers(text, "t", "12 s")
    text = replace_numbers(text, "table", "| b |\n|---|")
    assert text == ("took <!-- numbers:t -->12 s<!-- /numbers:t --> in all.\n\n"
                    "<!-- numbers:table -->\n| b |\n|---|\n<!-- /numbers:table -->\n")
    with pytest.raises(SystemExit, match="no <!-- numbers:x -->"):
        replace_numbers(text, "x", "1")


def test_conv_benchmark_rows(tmp_path):
    """benchmarks/conv.py at one block of one call: every case, eager against pygan, in the row
    schema (the timing itself is not checked)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv.py"), "--device", "cpu", "--no-compile",
                    "--blocks", "1", "--reps", "1", "--json", str(out)], check=True, capture_output=True,
                   cwd=ROOT / "benchmarks", timeout=600)
    rows = json.loads(out.read_text())["rows"]
    assert {(r["case"], r["impl"]) for r in rows} == {
        (case, impl) for case in ("head", "first", "last", "critic layer 1", "R1 critic") for impl in ("eager", "pygan")}
    assert all(r["ms"] > 0 and r["vs_eager"] > 0 for r in rows)
