"""Checkpoint files: written atomically, read safely, with every random-number state needed to
resume exactly.

:func:`atomic_save` writes to a temporary file in the target's directory, flushes it to disk and
renames it over the target, so a crash mid-write leaves the previous checkpoint intact (a rename
within one file system is atomic).

:func:`load` reads with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers
only, never code. What a checkpoint cannot say as plain data -- a network that is not one of
:mod:`pygan.models`, a custom prior or optimizer class -- it keeps as a pickled blob (bytes) beside
the plain data; :func:`unpack` opens such a blob only when the caller says the file is trusted.
pygan's own networks are stored as their class name and constructor arguments
(:func:`module_spec`) and rebuilt by :func:`build_module` without unpickling anything.
"""

from __future__ import annotations

import io
import pickle
import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

__all__ = ["NotACheckpoint", "atomic_save", "build_module", "load", "module_spec", "pack", "rng_state",
           "set_rng_state", "unpack"]


class NotACheckpoint(ValueError):
    """The file is damaged, or is not a checkpoint that this pygan writes."""


def atomic_save(obj: Any, path: Union[str, os.PathLike]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load(path: Union[str, os.PathLike], map_location=None, *, format: Optional[int] = None) -> dict:
    """Reads a checkpoint of :func:`atomic_save` as plain data (``weights_only=True``: nothing in the
    file can run code). A missing file is a FileNotFoundError; a damaged or foreign file, or one of
    another ``format``, a :class:`NotACheckpoint` error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_integrity(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- damaged bytes make the unpickler fail in any way
        # (IndexError, KeyError, AssertionError, UnicodeDecodeError, ... besides UnpicklingError):
        # every one means the same thing to the user.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NotACheckpoint(f"{path} is not a pygan checkpoint, or is damaged ({first})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise NotACheckpoint(f"{path} is not a pygan checkpoint (it holds no pygan format tag)")
    if format is not None and state["format"] != format:
        raise NotACheckpoint(f"{path} is a pygan checkpoint of format {state['format']!r}; this pygan reads "
                             f"format {format}")
    return state


def _check_integrity(path: Path) -> None:
    """torch.save writes a zip archive whose entries carry CRC-32 checksums, which torch.load does
    not verify: a flipped byte inside a valid checkpoint could load as different weights or
    structure. Checking them first makes any damaged entry a NotACheckpoint naming the file. Files
    that are no zip archive go on to torch.load, which refuses them."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as e:  # noqa: BLE001 -- a damaged directory fails in many ways
        raise NotACheckpoint(f"{path} is not a pygan checkpoint, or is damaged ({type(e).__name__}: {e})") from None
    if bad is not None:
        raise NotACheckpoint(f"{path} is damaged: the checksum of its entry {bad!r} does not match its bytes")


# ---------------------------------------------------------------------------------------------
# Objects that are not plain data
# ---------------------------------------------------------------------------------------------

def pack(obj: Any) -> dict:
    """A pickled blob of ``obj`` (bytes, which safe loading reads as data), with its type and repr
    for messages. An object pickle cannot store (a lambda, a local function) is recorded by its type
    and repr only: loading then asks for it."""
    entry = {"type": f"{type(obj).__module__}.{type(obj).__qualname__}", "repr": " ".join(repr(obj).split())[:200]}
    buf = io.BytesIO()
    try:
        torch.save(obj, buf)
    except (pickle.PicklingError, AttributeError, TypeError):
        return {**entry, "pickle": None}
    return {**entry, "pickle": buf.getvalue()}


def unpack(entry: dict, what: str, path: Union[str, os.PathLike], trusted: bool, map_location=None) -> Any:
    """The object of a :func:`pack` blob; unpickled only when ``trusted`` (unpickling runs code
    that the file names)."""
    if entry["pickle"] is None:
        raise ValueError(f"{path}: the checkpoint's {what} ({entry['repr']}) could not be pickled when it was saved "
                         f"(a lambda or a local function): pass {what}= yourself")
    if not trusted:
        raise ValueError(
            f"{path}: the checkpoint's {what} is a {entry['type']} ({entry['repr']}), which only pickle can "
            f"store, and unpickling runs code from the file. Pass {what}= yourself, or trusted=True for a "
            "file you trust")
    return torch.load(io.BytesIO(entry["pickle"]), map_location=map_location, weights_only=False)


def module_spec(module: nn.Module) -> dict:
    """How to rebuild ``module``: a :mod:`pygan.models` network as its class name, constructor
    arguments, dtype and device (plain data); any other module as a :func:`pack` blob."""
    from . import models

    kwargs = getattr(module, "init_kwargs", None)
    name = type(module).__name__
    tensors = list(module.state_dict().values())
    dtypes = {t.dtype for t in tensors if t.is_floating_point()}
    devices = {t.device for t in tensors}
    formats = {f for f in map(_memory_format, tensors) if f is not None}
    if (kwargs is not None and models.REBUILDABLE.get(name) is type(module) and len(dtypes) <= 1
            and len(devices) <= 1 and len(formats) <= 1):
        spec = {"model": name, "kwargs": dict(kwargs),
                "dtype": str(dtypes.pop()).removeprefix("torch.") if dtypes else None,
                "device": str(devices.pop()) if devices else "cpu"}
        if formats == {"channels_last"}:
            spec["memory_format"] = "channels_last"
        return spec
    return pack(module)


def _memory_format(t: torch.Tensor) -> Optional[str]:
    """A 4-d tensor's layout, "contiguous" or "channels_last"; None where both describe it (one
    channel, or 1 x 1 maps) or neither does. A network converted to channels-last is rebuilt
    channels-last: its weights, their Adam moments and the kernels' summation order stay as they
    were, so a resumed run takes the steps the uninterrupted one takes."""
    if t.dim() != 4:
        return None
    plain, last = t.is_contiguous(), t.is_contiguous(memory_format=torch.channels_last)
    return None if plain == last else ("contiguous" if plain else "channels_last")


def build_module(spec: dict, what: str, path: Union[str, os.PathLike], trusted: bool, map_location=None) -> nn.Module:
    """The module of a :func:`module_spec` (its weights come from the checkpoint's state)."""
    from . import models

    if "pickle" in spec:
        return unpack(spec, what, path, trusted, map_location)
    cls = models.REBUILDABLE.get(spec["model"])
    if cls is None:
        raise NotACheckpoint(f"{path}: the checkpoint's {what} is a {spec['model']!r}, which this pygan does not "
                             "have; pass it yourself")
    module = cls(**spec["kwargs"])
    if spec["dtype"] is not None:
        module = module.to(getattr(torch, spec["dtype"]))
    if spec.get("memory_format") == "channels_last":  # absent from checkpoints of contiguous networks
        module = module.to(memory_format=torch.channels_last)
    # A device-like map_location moves the network; a dict or callable one concerns tensors only.
    device_like = map_location is not None and not callable(map_location) and not isinstance(map_location, dict)
    return module.to(torch.device(map_location if device_like else spec["device"]))


# ---------------------------------------------------------------------------------------------
# Random states
# ---------------------------------------------------------------------------------------------

def rng_state() -> dict:
    """The global random states: torch's CPU and CUDA generators, Python's and NumPy's, as plain
    data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
