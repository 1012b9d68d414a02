"""2-D max-pooling with the window placement of :mod:`handgrad.functional.conv`: forward and backward.

Notation: X (N, C, H, W) input, Y (N, C, H_out, W_out) output, K window, S stride, P padding,
c = (c_h, c_w) the window's centre element.  Padding and reads outside the padded input count as
minus infinity, so they never win.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape
from ..shapes import Window
from ._windows import embed, windows


class MaxPool2DCache(NamedTuple):
    indices: np.ndarray  # (N, C, H_out, W_out): h*W + w of each window's winning input cell
    x_shape: tuple


def maxpool2d_forward(x, kernel_size, stride=None, padding=0, mode="xcorr", center=None):
    """Max-pool a batch of images and remember where each maximum came from.

    ::

        Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h + (a - c_h), j*S_w + (b - c_w)]     (mode="xcorr")
        Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h - (a - c_h), j*S_w - (b - c_w)]     (mode="conv")

    Output size ``H_out = floor((H + 2P_h - kH) / S_h) + 1``; ``stride=None`` means the window size.
    Both modes take the maximum over the same cells as the cross-correlation window with centre K-1-c.
    ``indices[n,c,i,j] = h*W + w`` is the input cell that won.  Ties go to the first cell in row-major
    order of the input, as in PyTorch; a window whose every input cell is -inf picks its first input cell.

    Args:
        x: (N, C, H, W).
        kernel_size, stride, padding, center: an int or a pair ``(h, w)``.
        mode: ``"xcorr"`` or ``"conv"``.

    Returns:
        y: (N, C, H_out, W_out), and the cache (with ``indices``) for :func:`maxpool2d_backward`.
    """
    where = "maxpool2d"
    x = as_float_array(x, "x", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    window = Window.of(kernel_size, kernel_size if stride is None else stride, padding, mode, center, where)
    n, c, h, w = x.shape
    out = window.output_size(h, w, where)
    window.check_every_window_sees_input((h, w), out, where)
    (kh, kw), (sh, sw), (lead_h, lead_w) = window.kernel, window.stride, window.lead

    xq = embed(x, window.lead, window.span(out), fill=-np.inf)  # (N, C, span_h, span_w)
    cells = windows(xq, window.kernel, window.stride).reshape(n, c, *out, kh * kw)  # (N, C, H_out, W_out, kH*kW)
    k = cells.argmax(axis=-1)  # (N, C, H_out, W_out): first maximum in row-major order
    y = np.take_along_axis(cells, k[..., None], axis=-1)[..., 0]

    top = np.arange(out[0])[:, None] * sh - lead_h  # (H_out, 1): input row where each window starts
    left = np.arange(out[1])[None, :] * sw - lead_w  # (1, W_out)
    rows, cols = top + k // kw, left + k % kw
    all_minus_inf = y == -np.inf  # then padding may have "won": take the first input cell instead
    rows = np.where(all_minus_inf, np.maximum(top, 0), rows)
    cols = np.where(all_minus_inf, np.maximum(left, 0), cols)
    return y, MaxPool2DCache(rows * w + cols, x.shape)


def maxpool2d_backward(dy, cache: MaxPool2DCache):
    """Route each gradient to its window's maximum; overlapping windows accumulate::

        dX[n,c,h,w] = sum_{i,j : indices[n,c,i,j] = h*W + w} dY[n,c,i,j]

    Every other input cell gets zero (the max "up-samples" the gradient).

    Args:
        dy: (N, C, H_out, W_out).

    Returns:
        dx: (N, C, H, W).
    """
    where = "maxpool2d_backward"
    dy = as_float_array(dy, "dy", where)
    check_same_shape(dy, cache.indices.shape, "dy", where)
    n, c, h, w = cache.x_shape
    plane = (np.arange(n * c) * (h * w)).reshape(n, c, 1, 1)  # offset of each (n, c) plane in the flat dX
    dx = np.bincount((cache.indices + plane).ravel(), weights=dy.ravel(), minlength=n * c * h * w)
    return dx.reshape(cache.x_shape).astype(dy.dtype, copy=False)
