"""Element-wise NumPy calls arranged so that NumPy runs its fast (SIMD) loops."""

from __future__ import annotations

import numpy as np

FLOOR_CELLS = 4096  # the most values a broadcast floor takes


def at_least(x: np.ndarray, floor, out=None) -> np.ndarray:
    """``max(X, floor)`` element-wise, NaN kept (``np.maximum``); ``out=x`` works in place.

    NumPy's maximum against a scalar broadcasts it with stride 0, and its loop for that operand is about
    three times slower than for two arrays (0.26 against 0.085 ms for 800,000 float32 values in cache).  So
    x is viewed with its axes in memory order (outermost first: (C, H, W, N) for images between layers) and
    the floor comes as a small array over the innermost axes, which the outer ones broadcast.
    """
    order = sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]))  # axes from outermost to innermost
    xm = x.transpose(order)
    shape, cells = [1] * x.ndim, 1
    for axis in reversed(range(x.ndim)):
        if cells > 1 and cells * xm.shape[axis] > FLOOR_CELLS:
            break
        shape[axis], cells = xm.shape[axis], cells * xm.shape[axis]
    ym = np.maximum(xm, np.full(shape, floor, dtype=x.dtype), out=None if out is None else out.transpose(order))
    return ym.transpose(np.argsort(order))
