"""Checkpoint files: written atomically, with every random-number state needed to resume exactly.

:func:`atomic_save` writes to a temporary file in the target's directory, flushes it to disk and
renames it over the target, so a crash mid-write leaves the previous checkpoint intact (a rename
within one file system is atomic).
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

__all__ = ["atomic_save", "load", "rng_state", "set_rng_state"]


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


def load(path: Union[str, os.PathLike], map_location=None) -> dict:
    """Reads a checkpoint written by :func:`atomic_save`. Checkpoints hold pickled modules and
    optimizer classes, so load only files you trust."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def rng_state() -> dict:
    """The global random states: torch's CPU and CUDA generators, Python's and NumPy's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
