"""Input checks for the public entry points: each error says where, what was expected and what arrived."""

from __future__ import annotations

import numpy as np


def as_float_array(x, name: str, where: str) -> np.ndarray:
    """``x`` as an ndarray of a floating dtype (float32 or float64), unchanged if it already is one."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"{where}: {name} must be a floating-point array, got dtype {x.dtype}")
    return x


def check_shape(x: np.ndarray, ndim: int, layout: str, name: str, where: str) -> None:
    """Rank check: ``layout`` names the axes expected, e.g. ``"(N, C, H, W)"``."""
    if x.ndim != ndim:
        raise ValueError(f"{where}: {name} must be {layout}, got shape {x.shape}")


def check_same_shape(dy: np.ndarray, expected: tuple, name: str, where: str) -> None:
    """A gradient must have the shape of the value it is the gradient of."""
    if dy.shape != tuple(expected):
        raise ValueError(f"{where}: {name} must have shape {tuple(expected)}, got {dy.shape}")


def kind_of(value) -> str:
    """What a value is, for an error: an array's dtype and shape, or the type's name."""
    return f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__


def is_int(value) -> bool:
    """A Python int, and not a bool (which is one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A Python int or float, and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(value, name: str, where: str) -> int:
    """A count such as a channel or feature number: an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)
