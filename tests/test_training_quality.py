"""The default settings train: the ring demo recovers every mode with most samples near a mode."""

import json

import pytest

pytest.importorskip("matplotlib")


@pytest.mark.slow
def test_ring_demo_recovers_every_mode(tmp_path):
    from pygan.cli import main

    assert main(["train", "--data", "ring", "--out", str(tmp_path), "--quiet"]) == 0
    cov = json.loads((tmp_path / "metrics.json").read_text())["mode_coverage"]
    assert cov["modes"] == cov["n_modes"] == 8, cov
    assert cov["high_quality"] > 0.5, cov
