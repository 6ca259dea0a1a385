"""Test setup. Without a CUDA GPU the Triton kernels run on CPU tensors under TRITON_INTERPRET=1
(set here, before Triton is imported). Tests marked ``gpu`` are skipped without a GPU."""

import os
import socket

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pygan._ops import backend as _backend  # noqa: E402


def _backend_params():
    # The CPU backend once per instruction set: each build of the loops is checked on its own.
    params = [pytest.param(("cpu", "cpu", isa), id=f"cpu-{isa}") for isa in _backend.cpu_isas() or ["base"]]
    triton_device = "cuda" if torch.cuda.is_available() else "cpu"
    triton_ok = _backend.unavailable_reason("triton", torch.device(triton_device)) is None
    params.append(pytest.param(("triton", triton_device, None), id="triton",
                               marks=[] if triton_ok else pytest.mark.skip(reason="Triton not usable here")))
    params.append(pytest.param(("cuda", "cuda", None), id="cuda", marks=pytest.mark.gpu))
    return params


BACKENDS = _backend_params()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """(backend name, device) for every backend this machine can run (the CPU one per ISA)."""
    name, device, isa = request.param
    if isa is None:
        yield name, device
        return
    with _backend.cpu_isa(isa):
        yield name, device


@pytest.fixture
def rng():
    """A fresh, unseeded generator: every run draws new inputs. Failure messages print
    rng.initial_seed(); PYGAN_TEST_SEED=<that seed> draws the same inputs again."""
    seed = os.environ.get("PYGAN_TEST_SEED")
    return torch.Generator().manual_seed(int(seed) if seed else int.from_bytes(os.urandom(4), "little"))


def free_port() -> int:
    """A TCP port no one listens on now, for a test's own process group (a port derived from the
    pid is shared by every test of one run, and a rank of the next test could meet the last one's
    closing connections)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Plain SGD for engine tests that compare a step with a hand-written one: its update is exact.
LR = 0.05


def sgd(params):
    return torch.optim.SGD(params, lr=LR)


def sgd_update(module, grads) -> None:
    """The hand-written reference's SGD step on ``module``'s parameters."""
    with torch.no_grad():
        for p, g in zip(module.parameters(), grads):
            p -= LR * g


def assert_same_params(a, b, what: str, tol: float = 1e-11) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=tol, atol=tol * 0.1), f"{what}: {name} off by {(p - q).abs().max()}"


def reference_updates(d_ref, g_ref, grads_d, fused: bool, g_loss):
    """A hand-written step's updates of both players, given D's gradient ``grads_d``: fused, G's
    gradient is taken at the same point (before D moves); alternating, D moves first, and
    ``g_loss()`` (which draws its own fakes then) sees the moved D. Returns G's loss."""
    if not fused:
        sgd_update(d_ref, grads_d)
    l_g = g_loss()
    grads_g = torch.autograd.grad(l_g, list(g_ref.parameters()))
    if fused:
        sgd_update(d_ref, grads_d)
    sgd_update(g_ref, grads_g)
    return l_g


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One PYGAN_CACHE folder for the whole run (the digit classifier of Stacked MNIST is trained
    once there, then loaded), apart from the user's own cache."""
    return tmp_path_factory.mktemp("pygan-cache")
