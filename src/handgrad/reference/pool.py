"""Max-pooling as plain loops: the formulas of :mod:`handgrad.functional.pool`, index by index."""

from __future__ import annotations

from itertools import product

import numpy as np

from ..shapes import Window
from .conv import _read_position


def maxpool2d_forward(x, kernel_size, stride=None, padding=0, mode="xcorr", center=None):
    """``Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h ± (a - c_h), j*S_w ± (b - c_w)]`` over input cells only.

    Returns (y, indices) with ``indices[n,c,i,j] = h*W + w`` of the winner, the first in row-major order on ties.
    """
    window = Window.of(kernel_size, kernel_size if stride is None else stride, padding, mode, center)
    n_, c_, h, w = x.shape
    out = window.output_size(h, w)
    (kh, kw), (sh, sw), (ph, pw), (ch, cw) = window.kernel, window.stride, window.padding, window.center
    y = np.zeros((n_, c_, *out))
    indices = np.zeros((n_, c_, *out), dtype=np.int64)
    for n, c, i, j in product(range(n_), range(c_), *map(range, out)):
        cells = []  # input cells (row, col) of the window; padding and reads outside never compete
        for a, b in product(range(kh), range(kw)):
            row = _read_position(i, a, sh, ch, mode) - ph
            col = _read_position(j, b, sw, cw, mode) - pw
            if 0 <= row < h and 0 <= col < w:
                cells.append((row, col))
        row, col = max(sorted(cells), key=lambda cell: x[n, c, cell[0], cell[1]])  # max() keeps the first
        y[n, c, i, j] = x[n, c, row, col]
        indices[n, c, i, j] = row * w + col
    return y, indices


def maxpool2d_backward(dy, indices, x_shape):
    """``dX[n,c,h,w] += dY[n,c,i,j]`` for the winner ``h*W + w = indices[n,c,i,j]`` of each window."""
    dx = np.zeros(x_shape)
    width = x_shape[3]
    for n, c, i, j in product(*map(range, dy.shape)):
        row, col = divmod(int(indices[n, c, i, j]), width)
        dx[n, c, row, col] += dy[n, c, i, j]
    return dx
