"""python -m pygan train: writes its pictures, metrics and checkpoint, and resumes."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")


def _train(out, *extra):
    cmd = [sys.executable, "-m", "pygan", "train", "--data", "ring", "--out", str(out), "--quiet",
           "--log-every", "10", "--width", "32", "--batch-size", "64", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_train_writes_samples_losses_metrics_and_checkpoint(tmp_path):
    res = _train(tmp_path, "--steps", "20", "--penalty", "wgan-gp", "--loss", "wasserstein", "--n-critic", "2")
    for name in ("samples.png", "losses.png", "metrics.json", "checkpoint.pt", "log.jsonl"):
        assert (tmp_path / name).is_file(), name
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["steps"] == 20 and m["settings"]["loss"] == "wasserstein" and m["settings"]["penalty"] == "wgan-gp"
    assert m["settings"]["betas"] == [0.0, 0.9]
    assert set(m["mode_coverage"]) >= {"modes", "n_modes", "high_quality", "kl_uniform"}
    assert "modes covered" in res.stdout and "samples.png" in res.stdout

    res = _train(tmp_path, "--steps", "30", "--resume")
    assert "resuming" in res.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30]


def test_train_rejects_bad_options(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pygan", "train", "--data", "moons", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "invalid choice: 'moons'" in res.stderr
    res = subprocess.run([sys.executable, "-m", "pygan", "train", "--data", "ring", "--out", str(tmp_path),
                          "--capture", "--device", "cpu", "--steps", "1"], capture_output=True, text=True)
    assert res.returncode != 0 and "capture=True" in res.stderr
