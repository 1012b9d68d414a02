"""Max-pooling as plain loops: the formulas of :mod:`handgrad.functional.pool`, index by index."""

from __future__ import annotations

from itertools import product

import numpy as np

from ..shapes import Window
from .conv import _read_position


def _window_cells(window, i, j, size):
    """The input cells (row, col) of output cell (i, j)'s window; padding and reads outside are left out."""
    (kh, kw), (top, left) = window.kernel, (window.padding[0][0], window.padding[1][0])
    cells = []
    for a, b in product(range(kh), range(kw)):
        row = _read_position(i, a, window.stride[0], window.center[0], window.mode, window.dilation[0]) - top
        col = _read_position(j, b, window.stride[1], window.center[1], window.mode, window.dilation[1]) - left
        if 0 <= row < size[0] and 0 <= col < size[1]:
            cells.append((row, col))
    return cells


def maxpool2d_forward(x, kernel_size, stride=None, padding=0, mode="xcorr", center=None, dilation=1, ceil_mode=False):
    """``Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h ± D_h*(a - c_h), j*S_w ± D_w*(b - c_w)]`` over input cells only.

    Returns (y, indices) with ``indices[n,c,i,j] = h*W + w`` of the winner, the first in row-major order on ties.
    """
    window = Window.pooling(kernel_size, stride, padding, mode, center, dilation=dilation, ceil_mode=ceil_mode)
    n_, c_, h, w = x.shape
    out = window.output_size(h, w)
    y = np.zeros((n_, c_, *out))
    indices = np.zeros((n_, c_, *out), dtype=np.int64)
    for n, c, i, j in product(range(n_), range(c_), *map(range, out)):
        cells = _window_cells(window, i, j, (h, w))
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


def avgpool2d_forward(
    x, kernel_size, stride=None, padding=0, mode="xcorr", center=None, ceil_mode=False, count_include_pad=True
):
    """``Y[n,c,i,j] = (1 / M) sum`` of the window's cells, M counting the cells inside the padded input
    (``count_include_pad``) or inside the input.  Returns (y, M) with M of shape (H_out, W_out)."""
    window = Window.pooling(kernel_size, stride, padding, mode, center, ceil_mode=ceil_mode)
    n_, c_, h, w = x.shape
    out = window.output_size(h, w)
    (top, bottom), (left, right) = window.padding
    y, divisor = np.zeros((n_, c_, *out)), np.zeros(out)
    for i, j in product(*map(range, out)):
        for a, b in product(*map(range, window.kernel)):
            row = _read_position(i, a, window.stride[0], window.center[0], window.mode) - top
            col = _read_position(j, b, window.stride[1], window.center[1], window.mode) - left
            if count_include_pad:
                counted = -top <= row < h + bottom and -left <= col < w + right
            else:
                counted = 0 <= row < h and 0 <= col < w
            divisor[i, j] += counted
            if 0 <= row < h and 0 <= col < w:
                for n, c in product(range(n_), range(c_)):
                    y[n, c, i, j] += x[n, c, row, col]
    return y / divisor, divisor


def avgpool2d_backward(
    dy, x_shape, kernel_size, stride=None, padding=0, mode="xcorr", center=None, ceil_mode=False, count_include_pad=True
):
    """``dX[n,c,row,col] += dY[n,c,i,j] / M[i,j]`` for every input cell of every window."""
    window = Window.pooling(kernel_size, stride, padding, mode, center, ceil_mode=ceil_mode)
    _, divisor = avgpool2d_forward(
        np.zeros(x_shape), kernel_size, stride, padding, mode, center, ceil_mode, count_include_pad
    )
    (top, _), (left, _) = window.padding
    h, w = x_shape[2:]
    dx = np.zeros(x_shape)
    for n, c, i, j in product(*map(range, dy.shape)):
        for a, b in product(*map(range, window.kernel)):
            row = _read_position(i, a, window.stride[0], window.center[0], window.mode) - top
            col = _read_position(j, b, window.stride[1], window.center[1], window.mode) - left
            if 0 <= row < h and 0 <= col < w:
                dx[n, c, row, col] += dy[n, c, i, j] / divisor[i, j]
    return dx


def global_avgpool2d_forward(x):
    """``y[n,c] = (1/HW) sum_{h,w} x[n,c,h,w]``."""
    n_, c_, h, w = x.shape
    y = np.zeros((n_, c_))
    for n, c, r, q in product(*map(range, x.shape)):
        y[n, c] += x[n, c, r, q] / (h * w)
    return y


def global_avgpool2d_backward(dy, x_shape):
    """``dx[n,c,h,w] = dy[n,c] / HW``."""
    dx = np.zeros(x_shape)
    for n, c, r, q in product(*map(range, x_shape)):
        dx[n, c, r, q] = dy[n, c] / (x_shape[2] * x_shape[3])
    return dx
