"""2-D pooling with the convolution's window placement: max, average and global average, forward and backward.

Notation: X (N, C, H, W) input, Y (N, C, H_out, W_out) output, K = (kH, kW) window, S stride, P padding, D
dilation, c = (c_h, c_w) the window's centre element.  A pooling window reads the cells a convolution's kernel
would (:mod:`.conv`), so both are written on the windows of :func:`.conv.im2col` over ``Xq``, the input placed
under the windows.  For max-pooling, padding and reads outside the padded input count as minus infinity: they
never win.  Output size as for the convolution (``ceil`` instead of ``floor`` with ``ceil_mode``, PyTorch's rule);
``stride=None`` means the window size.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape
from ..shapes import Window
from .conv import col2im, embed, extract, im2col


def _windows(x, window: Window, where: str, fill: float):
    """The checked input, the output size, and every window's cells (N, C, H_out, W_out, kH*kW), copied."""
    x = as_float_array(x, "x", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    out = window.pooled_size(*x.shape[2:], where)
    cells = im2col(embed(x, window.lead, window.span(out), fill), window, out)  # (N, C, H_out, W_out, kH, kW)
    return x, out, cells.reshape(*cells.shape[:4], window.kernel[0] * window.kernel[1])


def _to_input(dcells: np.ndarray, window: Window, x_shape: tuple) -> np.ndarray:
    """Each window cell's gradient (N, C, H_out, W_out, kH*kW) added onto the input cell it read: dX (N, C, H, W)."""
    n, c, h_out, w_out, _ = dcells.shape
    dxq = col2im(dcells.reshape(n, c, h_out, w_out, *window.kernel), window.span((h_out, w_out)), window)
    return extract(dxq, window.lead, x_shape[2:])


class MaxPool2DCache(NamedTuple):
    winner: np.ndarray  # (N, C, H_out, W_out): the window cell a*kW + b that won each window
    window: Window
    x_shape: tuple

    @property
    def indices(self) -> np.ndarray:
        """``h*W + w`` of each window's winning input cell (PyTorch's ``return_indices``), (N, C, H_out, W_out)."""
        (_, kw), (s_h, s_w), (d_h, d_w), (lead_h, lead_w) = (
            self.window.kernel,
            self.window.stride,
            self.window.dilation,
            self.window.lead,
        )
        _, _, h_out, w_out = self.winner.shape
        rows = np.arange(h_out)[:, None] * s_h + d_h * (self.winner // kw) - lead_h
        cols = np.arange(w_out)[None, :] * s_w + d_w * (self.winner % kw) - lead_w
        return rows * self.x_shape[3] + cols


def maxpool2d_forward(x, kernel_size, stride=None, padding=0, mode="xcorr", center=None, dilation=1, ceil_mode=False):
    """Max-pool a batch of images and remember where each maximum came from::

        Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h + D_h*(a - c_h), j*S_w + D_w*(b - c_w)]     (mode="xcorr")
        Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h - D_h*(a - c_h), j*S_w - D_w*(b - c_w)]     (mode="conv")

    Both modes take the maximum over the same cells, those of the cross-correlation window with centre K-1-c,
    visited in row-major order of the input.  The winner is the first cell that reaches the maximum (ties go
    to the first cell in row-major order, as in PyTorch); a NaN wins its window (the last NaN, as in PyTorch);
    and a window whose input cells are all -inf keeps its first input cell, never padding.  The cache's
    ``indices`` give the winners as ``h*W + w``.

    Returns:
        y: (N, C, H_out, W_out), and the cache for :func:`maxpool2d_backward`.
    """
    window = Window.pooling(kernel_size, stride, padding, mode, center, "maxpool2d", dilation, ceil_mode)
    x, out, cells = _windows(x, window, "maxpool2d", -np.inf)  # cells: (N, C, H_out, W_out, kH*kW)
    ones = np.ones((1, 1, *x.shape[2:]), dtype=bool)
    cells_per_window = window.kernel[0] * window.kernel[1]
    inside = im2col(embed(ones, window.lead, window.span(out), False), window, out).reshape(
        1, 1, *out, cells_per_window
    )

    y = cells.max(axis=-1)  # NaN propagates
    first = np.argmax(inside & (cells == y[..., None]), axis=-1)  # the first input cell that reaches the maximum
    last_nan = cells.shape[-1] - 1 - np.argmax(np.isnan(cells[..., ::-1]), axis=-1)
    winner = np.where(np.isnan(y), last_nan, first)
    return y, MaxPool2DCache(winner, window, x.shape)


def maxpool2d_backward(dy, cache: MaxPool2DCache):
    """Route each window's gradient to its winner; overlapping windows accumulate::

        dX[n,c,h,w] = sum_{i,j : window (i, j) was won by cell (h, w)} dY[n,c,i,j]

    Every other input cell gets zero (the max "up-samples" the gradient).

    Args:
        dy: (N, C, H_out, W_out).

    Returns:
        dx: (N, C, H, W).
    """
    dy = as_float_array(dy, "dy", "maxpool2d_backward")
    check_same_shape(dy, cache.winner.shape, "dy", "maxpool2d_backward")
    cells = np.arange(cache.window.kernel[0] * cache.window.kernel[1])
    dcells = (cache.winner[..., None] == cells) * dy[..., None]  # (N, C, H_out, W_out, kH*kW): dY at the winner
    return _to_input(dcells, cache.window, cache.x_shape)


class AvgPool2DCache(NamedTuple):
    counts: np.ndarray  # (H_out, W_out): M, the cells each window averages
    window: Window
    x_shape: tuple


def avgpool2d_forward(
    x, kernel_size, stride=None, padding=0, mode="xcorr", center=None, ceil_mode=False, count_include_pad=True
):
    """Average-pool with the window placement of max-pooling, padding counting as zeros::

        Y[n,c,i,j] = (1 / M[i,j]) sum_{a,b} Xp[n, c, i*S_h ± (a - c_h), j*S_w ± (b - c_w)]

    ``M[i,j]`` counts the window's cells inside the padded input (``count_include_pad=True``, PyTorch's
    default) or inside the input alone; cells beyond the padded input (``ceil_mode``, a far centre) count as
    neither.  (PyTorch's average pooling has no dilation, and neither has this one.)

    Returns:
        y: (N, C, H_out, W_out), and the cache for :func:`avgpool2d_backward`.
    """
    window = Window.pooling(kernel_size, stride, padding, mode, center, "avgpool2d", ceil_mode=ceil_mode)
    x, out, cells = _windows(x, window, "avgpool2d", 0.0)  # (N, C, H_out, W_out, kH*kW)
    (h, w), ((top, _), (left, _)) = x.shape[2:], window.padding
    if count_include_pad:  # M counts the cells of the padded input that a window holds
        area, lead = window.padded(h, w), (window.lead[0] - top, window.lead[1] - left)
    else:  # or those of the input alone
        area, lead = (h, w), window.lead
    ones = np.ones((1, 1, *area), dtype=x.dtype)
    counts = im2col(embed(ones, lead, window.span(out)), window, out).sum(axis=(-2, -1))[0, 0]  # (H_out, W_out)
    return cells.sum(axis=-1) / counts, AvgPool2DCache(counts, window, x.shape)


def avgpool2d_backward(dy, cache: AvgPool2DCache):
    """Each window's gradient shared equally by the cells it averaged::

    dX[n,c,h,w] = sum_{windows (i,j) that read (h, w)} dY[n,c,i,j] / M[i,j]
    """
    dy = as_float_array(dy, "dy", "avgpool2d_backward")
    check_same_shape(dy, (*cache.x_shape[:2], *cache.counts.shape), "dy", "avgpool2d_backward")
    share = dy / cache.counts  # (N, C, H_out, W_out)
    cells = cache.window.kernel[0] * cache.window.kernel[1]
    dcells = np.broadcast_to(share[..., None], (*share.shape, cells))  # the same share for every cell of a window
    return _to_input(dcells, cache.window, cache.x_shape)


def global_avgpool2d_forward(x):
    """``Y[n,c] = (1 / HW) sum_{h,w} X[n,c,h,w]``: (N, C, H, W) -> (N, C).  Cache: the input's shape."""
    x = as_float_array(x, "x", "global_avgpool2d")
    check_shape(x, 4, "(N, C, H, W)", "x", "global_avgpool2d")
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool2d_backward(dy, x_shape):
    """``dX[n,c,h,w] = dY[n,c] / HW`` for every cell."""
    dy = as_float_array(dy, "dy", "global_avgpool2d_backward")
    check_same_shape(dy, x_shape[:2], "dy", "global_avgpool2d_backward")
    return np.broadcast_to((dy / (x_shape[2] * x_shape[3]))[:, :, None, None], x_shape).copy()
