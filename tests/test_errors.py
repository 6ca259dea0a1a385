"""Bad input gets a clear error that names the argument; never a crash or a silent wrong number."""

import os
import subprocess
import sys

import pytest
import torch

import pygan
from pygan._ops import backend as _backend

R = torch.randn(4)
F_ = torch.randn(4)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown loss 'bce'; valid losses: kl, reverse_kl"):
        pygan.discriminator_loss(R, F_, "bce")
    with pytest.raises(ValueError, match="unknown loss"):
        pygan.GeneratorLoss("nope")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_integer_and_complex_tensors(dtype):
    bad = torch.ones(4, dtype=dtype)
    with pytest.raises(TypeError, match="real_logits must be float16, bfloat16, float32 or float64"):
        pygan.discriminator_loss(bad, F_)
    with pytest.raises(TypeError, match="fake_logits must be"):
        pygan.generator_loss(bad)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="fake_logits must be a torch.Tensor"):
        pygan.discriminator_loss(R, [1.0, 2.0])


def test_empty_tensors():
    with pytest.raises(ValueError, match=r"real_logits is empty \(shape \(0,\)\)"):
        pygan.discriminator_loss(torch.empty(0), F_)
    with pytest.raises(ValueError, match="fake_logits is empty"):
        pygan.generator_loss(torch.empty(2, 0))


def test_mismatched_devices():
    with pytest.raises(ValueError, match="must be on one device, got cpu and meta"):
        pygan.discriminator_loss(R, torch.empty(4, device="meta"))


def test_relativistic_generator_needs_real_logits():
    for loss in ("relativistic", "relativistic_average"):
        with pytest.raises(ValueError, match="needs real_logits"):
            pygan.generator_loss(F_, loss)


def test_relativistic_pairing_needs_one_shape():
    with pytest.raises(ValueError, match="must have one shape, got \\(4,\\) and \\(5,\\)"):
        pygan.discriminator_loss(R, torch.randn(5), "relativistic")


def test_parameters():
    with pytest.raises(ValueError, match="loss 'alpha' needs its parameter"):
        pygan.discriminator_loss(R, F_, "alpha")
    for bad in (0, 1, 1.0, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="alpha must be a finite number"):
            pygan.discriminator_loss(R, F_, "alpha", alpha=bad)
    with pytest.raises(TypeError, match="takes no parameter"):
        pygan.discriminator_loss(R, F_, "gan", alpha=0.5)
    with pytest.raises(TypeError, match="takes no parameter"):
        pygan.discriminator_loss(R, F_, "alpha", alpha=0.5, beta=1.0)


def test_reduction_and_backend_names():
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        pygan.discriminator_loss(R, F_, reduction="avg")
    with pytest.raises(ValueError, match="unknown backend 'metal'; valid backends: auto, cpu, cuda, triton"):
        pygan.discriminator_loss(R, F_, backend="metal")


def test_backend_that_cannot_run_says_why(monkeypatch):
    with pytest.raises(RuntimeError, match="backend 'cuda' is unavailable: backend 'cuda' runs on CUDA tensors"):
        pygan.discriminator_loss(R, F_, backend="cuda")
    # The environment is read when a backend is first resolved; refresh() reads it again.
    monkeypatch.setattr(_backend, "_RESOLVED", {})
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    _backend.refresh()
    with pytest.raises(RuntimeError, match="runs on CPU tensors only under TRITON_INTERPRET=1"):
        pygan.discriminator_loss(R, F_, backend="triton")
    monkeypatch.setenv("PYGAN_BACKEND", "nonsense")
    _backend.refresh()
    with pytest.raises(ValueError, match="environment variable PYGAN_BACKEND='nonsense' is not a backend"):
        pygan.discriminator_loss(R, F_)
    monkeypatch.delenv("PYGAN_BACKEND")
    for bad in ("abc", "0", "-2"):
        monkeypatch.setenv("PYGAN_NUM_THREADS", bad)
        _backend.refresh()
        with pytest.raises(ValueError, match=f"PYGAN_NUM_THREADS='{bad}' must be a positive integer"):
            pygan.discriminator_loss(R, F_)


def test_environment_is_read_at_the_first_op(monkeypatch):
    """A resolved backend stays resolved until refresh(), as the C++ loops keep the thread count
    they read first."""
    monkeypatch.setattr(_backend, "_RESOLVED", {})
    pygan.discriminator_loss(R, F_)
    monkeypatch.setenv("PYGAN_BACKEND", "nonsense")
    pygan.discriminator_loss(R, F_)  # still the resolution made before
    _backend.refresh()
    with pytest.raises(ValueError, match="PYGAN_BACKEND='nonsense'"):
        pygan.discriminator_loss(R, F_)


def test_divergence_estimate_needs_a_divergence():
    with pytest.raises(ValueError, match="needs an f-divergence or 'wasserstein', got 'hinge'"):
        pygan.divergence_estimate(R, F_, "hinge")


def test_term_tables_agree_by_name():
    """The one list of terms in C++ (PYGAN_TERMS), the Python table and the Triton constants give
    every term the same code."""
    c, why = _backend._load_c()
    assert c is not None, why
    from pygan._ops.loss_terms import TERM_CODES

    assert c.term_codes() == TERM_CODES
    math = pytest.importorskip("pygan.triton_kernels.math")
    triton_codes = {name: int(getattr(math, name).value) for name in TERM_CODES}
    assert triton_codes == TERM_CODES
    assert len(set(triton_codes.values())) == len(TERM_CODES)


def test_available_backends_reports_every_backend():
    report = pygan.available_backends()
    assert set(report) == {"cpu", "cuda", "triton"}
    assert report["cpu"] == "available"


def test_unknown_cpu_isa_is_named():
    c, _ = _backend._load_c()
    with pytest.raises(ValueError, match="cpu isa 'sse9' is not available.*available: base"):
        c.set_cpu_isa("sse9")
    env = dict(os.environ, PYGAN_CPU_ISA="sse9")
    code = "import torch, pygan; pygan.discriminator_loss(torch.zeros(3), torch.zeros(3), backend='cpu')"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "PYGAN_CPU_ISA 'sse9' is not available" in run.stderr, run.stderr


# --------------------------------------------------------------------------------------------
# Penalties
# --------------------------------------------------------------------------------------------

def _disc(x):
    return x.flatten(1).sum(1)


def test_penalty_argument_errors():
    from pygan import penalties

    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="unknown penalty kind 'gp'; valid kinds: wgan-gp, one-sided, r1, r2, dragan"):
        pygan.gradient_penalty(_disc, x, x, kind="gp")
    with pytest.raises(ValueError, match="penalty kind 'wgan-gp' needs fake samples"):
        pygan.gradient_penalty(_disc, x)
    with pytest.raises(ValueError, match=r"lazy \(the penalty applies every lazy steps\) must be a positive int"):
        pygan.gradient_penalty(_disc, x, x, lazy=0)
    with pytest.raises(ValueError, match="weight must be finite"):
        pygan.gradient_penalty(_disc, x, x, weight=float("nan"))
    with pytest.raises(ValueError, match="real is empty"):
        pygan.gradient_penalty(_disc, torch.empty(0, 3), x)
    with pytest.raises(TypeError, match="fake must be float32, float64, float16 or bfloat16, got torch.int64"):
        pygan.gradient_penalty(_disc, x, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"real \(shape \(4, 3\)\) and fake \(shape \(5, 3\)\) must have the same shape"):
        pygan.gradient_penalty(_disc, x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="inputs must require grad"):
        penalties.r1(_disc(x), x)
    y = x.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="must have the same batch size"):
        penalties.r1(_disc(y)[:2], y)
    with pytest.raises(ValueError, match=r"eps must have shape \(4,\)"):
        penalties.interpolate(x, x, torch.rand(2))
    with pytest.raises(ValueError, match="unknown penalty head 'l1'"):
        penalties.gradient_norm_penalty(x, head="l1")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        penalties.gradient_norm_penalty(x, backend="gpu")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        pygan.clip_weights_([x], 0.1, backend="gpu")


def test_checked_arguments_are_checked_again_for_another_type():
    """The checked form of a call's arguments is kept (the checks cost as much as a small kernel);
    a value equal to a kept one but of another type (True == 1) is checked on its own."""
    from pygan import penalties

    x = torch.randn(4, 3)
    penalties.gradient_norm_penalty(x, weight=1)
    with pytest.raises(TypeError, match="weight must be a number, got bool"):
        penalties.gradient_norm_penalty(x, weight=True)
    penalties.gradient_norm_penalty(x, center=0)
    with pytest.raises(TypeError, match="center must be a number, got bool"):
        penalties.gradient_norm_penalty(x, center=False)
    pygan.discriminator_loss(R, F_, "alpha", alpha=2)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        pygan.discriminator_loss(R, F_, "alpha", alpha=[2])
    with pytest.raises(ValueError, match="unknown loss"):
        pygan.discriminator_loss(R, F_, ["gan"])


@pytest.mark.parametrize("call", [
    lambda x: pygan.discriminator_loss(x, F_),
    lambda x: pygan.generator_loss(x, "relativistic", real_logits=R),
    lambda x: pygan.discriminator_loss(x, F_, "relativistic_average"),
    lambda x: pygan.penalties.gradient_norm_penalty(x.reshape(2, 2)),
    lambda x: pygan.nn.bias_leaky_relu(x.reshape(2, 2), torch.zeros(2)).sum(),
], ids=["loss", "paired", "averaged", "penalty_head", "activation"])
def test_torch_func_transforms_are_refused_by_name(call):
    """pygan's fused ops run under torch.autograd, not under torch.func's transforms: those get an
    error that says so (not torch's complaint about a method the user never wrote)."""
    with pytest.raises(RuntimeError, match="do not support torch.func transforms"):
        torch.func.grad(call)(R.clone())


def test_penalty_weights_steps_and_points():
    """Negative weights, a discriminator that returns one number per batch, r1 (or dragan) given
    fakes, a negative lazy step and penalties under no_grad are errors that say what is wrong."""
    from pygan import penalties

    x = torch.randn(4, 3)
    for kind in ("wgan-gp", "r1"):
        with pytest.raises(ValueError, match="weight must be non-negative.*got -1.0"):
            pygan.gradient_penalty(_disc, x, x if kind == "wgan-gp" else None, kind=kind, weight=-1.0)
    with pytest.raises(ValueError, match="weight must be non-negative"):
        pygan.GradientPenalty("r1", weight=-0.1)
    y = x.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="weight must be non-negative"):
        penalties.r1(_disc(y), y, weight=-10.0)
    with pytest.raises(ValueError, match="weight must be non-negative"):
        penalties.gradient_norm_penalty(x, weight=-2.0)
    with pytest.raises(TypeError, match="weight must be a number, got str"):
        pygan.GradientPenalty("r1", weight="10")
    with pytest.raises(ValueError, match=r"one number for the whole batch \(shape \(\)\).*shape \(4, \.\.\.\)"):
        pygan.gradient_penalty(lambda v: v.sum(), x, kind="r1")
    for kind in ("r1", "dragan"):
        with pytest.raises(ValueError, match=f"penalty kind '{kind}' is taken on real samples only and takes no fake="):
            pygan.gradient_penalty(_disc, x, x, kind=kind)
    for step in (-1, 1.5, True):
        with pytest.raises(ValueError, match="step must be a non-negative int"):
            pygan.gradient_penalty(_disc, x, kind="r1", lazy=4, step=step)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="called under torch.no_grad"):
            pygan.gradient_penalty(_disc, x, kind="r1")
        with pytest.raises(RuntimeError, match="called under torch.no_grad"):
            penalties.r1(_disc(y), y)
    with pytest.raises(ValueError, match="no graph"):
        penalties.r1(_disc(y).detach(), y)


def test_clip_weights_errors():
    with pytest.raises(ValueError, match="c must be positive, got 0.0"):
        pygan.clip_weights_([torch.randn(3)], 0.0)
    with pytest.raises(TypeError, match="parameter 1 must be a floating-point tensor, got torch.int64"):
        pygan.clip_weights_([torch.randn(3), torch.ones(2, dtype=torch.long)], 0.1)
    with pytest.raises(ValueError, match=r"parameter 0 \(shape \(3, 2\), strides \(1, 3\)\) is neither "
                                         r"contiguous nor channels-last"):
        pygan.clip_weights_([torch.randn(2, 3).t()], 0.1)
