"""Argument checks shared by the public modules, so that one mistake reads the same everywhere."""

from __future__ import annotations

from typing import Any


def positive_int(name: str, value: Any, meaning: str = "") -> int:
    """``value`` if it is an int of at least 1 (a bool is not), else a ValueError naming ``name``
    and, when given, what it means."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        label = f"{name} ({meaning})" if meaning else name
        raise ValueError(f"{label} must be a positive int, got {value!r}")
    return value
