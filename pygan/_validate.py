"""Argument checks shared by the public modules, so that one mistake reads the same everywhere."""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

import torch

T = TypeVar("T")


def memo(cache: dict, key: tuple, check: Callable[[], T], limit: int = 1024) -> T:
    """``check()`` (the checked form of a call's non-tensor arguments), kept in ``cache`` under
    ``key``: checking them on every call costs as much as a small kernel. Values that compare
    equal across types (``True == 1``) must carry their type in ``key``, or a cached check would
    pass them. An unhashable key is checked every time (the check then names the argument); a
    sweep over a parameter empties the cache at ``limit`` entries rather than grow it."""
    try:
        hit = cache.get(key)
    except TypeError:
        return check()
    if hit is None:
        hit = check()
        if len(cache) >= limit:
            cache.clear()
        cache[key] = hit
    return hit


def number(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False, why: str = "") -> float:
    """``value`` as a float if it is a finite int or float (a bool is not), and positive or
    non-negative when asked; else a TypeError (not a number) or ValueError naming ``name`` (and,
    for the sign, ``why``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be non-negative{f' ({why})' if why else ''}, got {value}")
    return value


def positive_int(name: str, value: Any, meaning: str = "") -> int:
    """``value`` if it is an int of at least 1 (a bool is not), else a ValueError naming ``name``
    and, when given, what it means."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        label = f"{name} ({meaning})" if meaning else name
        raise ValueError(f"{label} must be a positive int, got {value!r}")
    return value


def count(name: str, value: Any) -> int:
    """``value`` if it is an int of at least 0 (a bool is not), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def num_classes(value: Any) -> Any:
    """``value`` if it is None or an int of at least 2 (a class-conditional model's class count),
    else a ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise ValueError(f"num_classes must be an int of at least 2 (or None), got {value!r}")
    return value


def class_labels(name: str, labels: Any, n: int) -> Any:
    """``labels`` if it is a tensor of n integer (int64 or int32) class labels, else a ValueError
    naming ``name``."""
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) \
            or labels.shape != (n,):
        what = f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else \
            type(labels).__name__
        raise ValueError(f"{name} must be integer class labels of shape ({n},), got {what}")
    return labels
