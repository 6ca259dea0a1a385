"""Backend policy: which implementation runs an op for a given device (launch.py runs it).

Backends: ``"cpu"`` (C++, pygan._C), ``"cuda"`` (CUDA C++, pygan._C built with nvcc) and
``"triton"`` (pygan.triton_kernels; on CPU tensors only under ``TRITON_INTERPRET=1``). ``"auto"``
picks by device from :data:`PREFERENCE`; ``backend=`` on an op or the environment variable
``PYGAN_BACKEND`` forces one (read at the first op; :func:`refresh` reads it again). A backend that
cannot run says which and why; nothing falls back silently.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from typing import Any

import torch

BACKENDS = ("auto", "cpu", "cuda", "triton")

# Order of preference per device type, for "auto". CUDA: Triton first where it is importable,
# else the CUDA C++ kernels (see docs/benchmarks.md for the measurements behind the order).
PREFERENCE: dict[str, tuple[str, ...]] = {"cpu": ("cpu",), "cuda": ("triton", "cuda")}

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
FLOAT_DTYPES = tuple(DTYPE_CODES)  # the dtypes every op accepts

REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


@functools.cache
def _load_c() -> tuple[Any, str | None]:
    try:
        from .. import _C  # type: ignore[attr-defined]
    except ImportError as e:  # not built, or built for another Python
        return None, f"pygan._C could not be imported ({e}); reinstall pygan (pip install .) with a C++ compiler and CMake"
    return _C, None


@functools.cache
def load_nodes() -> Any:
    """pygan._autograd, the C++ autograd nodes of the CPU training path, or None where it was not
    built (no torch headers at build time) or was built against another torch than the one running
    (its nodes are compiled against torch's C++ classes). Without it the ops record Python nodes."""
    try:
        from .. import _autograd  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _autograd if _autograd.torch_version == torch.__version__ else None


@functools.cache
def _load_triton(module: str = "adversarial_loss") -> tuple[Any, str | None]:
    """The Triton kernel module ``pygan.triton_kernels.<module>``, or None and why not."""
    try:
        kernels = importlib.import_module(f"pygan.triton_kernels.{module}")
    except ImportError as e:
        return None, f"Triton is not usable ({e}); install it with pip install triton"
    return kernels, None


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """None if ``backend`` can run on ``device``, else a sentence saying why not."""
    if backend == "cpu":
        if device.type != "cpu":
            return f"backend 'cpu' runs on CPU tensors, got a tensor on {device}"
        return _load_c()[1]
    if device.type == "cuda" and not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch"
    if backend == "cuda":
        if device.type != "cuda":
            return f"backend 'cuda' runs on CUDA tensors, got a tensor on {device}"
        c, why = _load_c()
        if c is None:
            return why
        if not c.cuda_compiled():
            return "pygan._C was built without CUDA kernels (no nvcc at build time, or PYGAN_CUDA=0)"
        return None
    if backend == "triton":
        if device.type == "cpu" and not triton_interpreted():
            return "backend 'triton' runs on CPU tensors only under TRITON_INTERPRET=1"
        if device.type not in ("cpu", "cuda"):
            return f"backend 'triton' runs on CUDA tensors, got a tensor on {device}"
        return _load_triton()[1]
    return f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}"


def check_backend(backend: str | None) -> str:
    """A valid backend argument for the ops: "" (None) means PYGAN_BACKEND or "auto", resolved at
    run time; an unknown name is an error naming the valid ones. Idempotent: "" passes as None."""
    if backend is None or backend == "":
        return ""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    return backend


# Successful resolutions, by (request, device). The environment (PYGAN_BACKEND, TRITON_INTERPRET,
# PYGAN_NUM_THREADS) is read when a request is first resolved, as the C++ loops read
# PYGAN_NUM_THREADS once: set it before the first op, or call refresh() after changing it. Reading it
# on every call would cost about a microsecond per variable, more than a small loss kernel.
_RESOLVED: dict[tuple, str] = {}


def resolve(backend: str | None, device: torch.device) -> str:
    """The backend that will run on ``device``: the one asked for, or the preferred available one."""
    key = (backend, device)  # hashing a device is cheaper than reading its type
    name = _RESOLVED.get(key)
    if name is None:
        requested = backend or os.environ.get("PYGAN_BACKEND") or "auto"
        if not backend and requested not in BACKENDS:
            raise ValueError(f"the environment variable PYGAN_BACKEND={requested!r} is not a backend; "
                             f"valid backends: {', '.join(BACKENDS)}")
        _check_num_threads()
        name = _RESOLVED[key] = _resolve(requested, device)
    return name


def refresh() -> None:
    """Forgets every resolution, so that the next op reads the environment variables again."""
    _RESOLVED.clear()


def _check_num_threads() -> None:
    """PYGAN_NUM_THREADS, read by the C++ loops at their first call, must be a positive integer
    (the C++ side would read anything else as 1)."""
    value = os.environ.get("PYGAN_NUM_THREADS")
    if value is not None and not (value.strip().isdigit() and int(value) >= 1):
        raise ValueError(f"the environment variable PYGAN_NUM_THREADS={value!r} must be a positive integer "
                         "(the most threads pygan's CPU loops use); unset it for torch's thread count")


def _resolve(requested: str, device: torch.device) -> str:
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; valid backends: {', '.join(BACKENDS)}")
    if requested != "auto":
        why = unavailable_reason(requested, device)
        if why is not None:
            raise RuntimeError(f"pygan backend {requested!r} is unavailable: {why}")
        return requested
    reasons = []
    for candidate in PREFERENCE.get(device.type, ()):
        why = unavailable_reason(candidate, device)
        if why is None:
            return candidate
        reasons.append(f"{candidate}: {why}")
    detail = "; ".join(reasons) if reasons else "pygan has no kernels for this device type"
    raise RuntimeError(f"no pygan backend can run on {device}: {detail}")


def available() -> dict[str, str]:
    """Each backend and, on this machine, 'available' or the reason it is not (for ``python -m pygan``)."""
    out = {}
    devices = {"cpu": torch.device("cpu"), "cuda": torch.device("cuda"), "triton": torch.device("cuda")}
    if not torch.cuda.is_available():
        devices["triton"] = torch.device("cpu")
    c, _ = _load_c()
    cuda_built = c is not None and c.cuda_compiled()
    for name, dev in devices.items():
        why = unavailable_reason(name, dev)
        if why is not None and name == "cuda" and cuda_built:
            why = "compiled; " + why
        out[name] = "available" if why is None else why
    return out


def cpu_isas() -> list[str]:
    """The builds of the CPU loops this CPU runs ("base", and "avx2" with AVX2 + FMA)."""
    c, _ = _load_c()
    return list(c.cpu_isas()) if c is not None else []


@contextlib.contextmanager
def cpu_isa(isa: str):
    """Runs the CPU backend's loops built for ``isa`` inside the block (tests and benchmarks)."""
    c, why = _load_c()
    if c is None:
        raise RuntimeError(f"pygan._C is unavailable: {why}")
    previous = c.cpu_isa()
    c.set_cpu_isa(isa)
    try:
        yield
    finally:
        c.set_cpu_isa(previous)
