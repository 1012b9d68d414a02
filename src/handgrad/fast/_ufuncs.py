"""Element-wise NumPy calls arranged so that NumPy runs its fast (SIMD) loops."""

from __future__ import annotations

import functools
import math

import numpy as np

FLOOR_CELLS = 4096  # the most values a broadcast floor takes


def at_least(x: np.ndarray, floor, out=None) -> np.ndarray:
    """``max(X, floor)`` element-wise, NaN kept (``np.maximum``); ``out=x`` works in place.

    NumPy's maximum against a scalar broadcasts it with stride 0, and its loop for that operand is several
    times slower than for two arrays.  So
    x is viewed with its axes in memory order (outermost first: (C, H, W, N) for images between layers) and
    the floor comes as a small array over the innermost axes, which the outer ones broadcast.
    """
    floor = float(floor)  # a Python float keys the cache, whatever scalar (or 0-d array) the caller passed
    order, inverse, floors = _floor_layout(x.shape, x.strides, x.dtype, floor, math.copysign(1.0, floor))
    ym = np.maximum(x.transpose(order), floors, out=None if out is None else out.transpose(order))
    return ym.transpose(inverse)


@functools.lru_cache(maxsize=64)  # layers meet the same few shapes at every step
def _floor_layout(shape: tuple, strides: tuple, dtype: np.dtype, floor, sign: float) -> tuple[tuple, tuple, np.ndarray]:
    """The axes of an array from outermost to innermost in memory, their inverse permutation, and the floor as
    a read-only array over the innermost axes of at most FLOOR_CELLS values (at least one axis).  ``sign`` tells
    the floors 0.0 and -0.0 apart, which compare (and hash) equal."""
    order = tuple(sorted(range(len(shape)), key=lambda a: -abs(strides[a])))
    floor_shape, cells = [1] * len(shape), 1
    for k in reversed(range(len(shape))):
        size = shape[order[k]]
        if cells > 1 and cells * size > FLOOR_CELLS:
            break
        floor_shape[k], cells = size, cells * size
    floors = np.full(floor_shape, floor, dtype=dtype)
    floors.flags.writeable = False  # shared by every call with this layout
    return order, tuple(np.argsort(order).tolist()), floors
