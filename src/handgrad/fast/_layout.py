"""The memory order of images between layers: channel first, batch innermost.

Every (N, C, H, W) array that a convolution or pooling returns is a view of memory ordered (C, H, W, N):
``X[n, c, h, w]`` sits at ``((c*H + h)*W + w)*N + n``.  A kernel works on the (C, H, W, N) view, where one
row of a map is a contiguous run of W*N values and each window cell's strided view still has contiguous
runs of N.  NumPy copies, compares and adds such runs far faster than the short (W) or strided runs of
(N, C, H, W) memory, so im2col, col2im and pooling all gain; the element-wise layers in between keep the
order (NumPy's ufuncs lay their outputs out as their inputs).  Results never depend on the order.
"""

from __future__ import annotations

import numpy as np


def to_chwn(x: np.ndarray) -> np.ndarray:
    """The (C, H, W, N) view of an (N, C, H, W) array; free when x is in that order already."""
    return x.transpose(1, 2, 3, 0)


def to_nchw(x_c: np.ndarray) -> np.ndarray:
    """The (N, C, H, W) view of a (C, H, W, N) array: the inverse of :func:`to_chwn`."""
    return x_c.transpose(3, 0, 1, 2)


def batch_innermost(x: np.ndarray) -> np.ndarray:
    """The (C, H, W, N) view of x, copied into that memory order first unless its batch axis is already
    contiguous (for inputs in other orders: a caller's (N, C, H, W) array, a reshaped gradient)."""
    x_c = to_chwn(x)
    return x_c if x_c.strides[3] == x_c.itemsize or x_c.shape[3] == 1 else np.ascontiguousarray(x_c)
