"""2-D convolution and cross-correlation: forward and hand-derived backward, vectorised.

Notation: X (N, C, H, W) input, W (O, C, kH, kW) kernel, B (O,) bias, Y (N, O, H_out, W_out) output;
S stride, P padding, c = (c_h, c_w) the kernel's centre element; Xp is X zero-padded by P on every side,
and a read outside Xp counts as zero.  Geometry and output sizes live in :mod:`handgrad.shapes`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape
from ..shapes import Window
from ._windows import dilate, embed, extract, windows


class Conv2DCache(NamedTuple):
    xq: np.ndarray  # (N, C, span_h, span_w): X placed under the windows, Xq[u, v] = X[u - lead_h, v - lead_w]
    w: np.ndarray  # (O, C, kH, kW): the kernel as cross-correlated (flipped when mode="conv")
    has_bias: bool
    window: Window
    x_shape: tuple
    y_shape: tuple


def conv2d_forward(x, w, b=None, stride=1, padding=0, mode="xcorr", center=None):
    """Convolve a batch of images.

    Cross-correlation, ``mode="xcorr"``::

        Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, c, i*S_h + (a - c_h), j*S_w + (b - c_w)]

    True convolution, ``mode="conv"`` (the kernel flipped about its centre element)::

        Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, c, i*S_h - (a - c_h), j*S_w - (b - c_w)]

    Output size, whatever the centre: ``H_out = floor((H + 2P_h - kH) / S_h) + 1``, likewise ``W_out``.

    Both modes are computed as a cross-correlation through the identity
    ``conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)``; cross-correlation with centre
    (0, 0) is PyTorch's ``conv2d``.

    Args:
        x: (N, C, H, W) input.
        w: (O, C, kH, kW) kernel.
        b: (O,) bias, one per feature map, or None.
        stride, padding, center: an int or a pair ``(h, w)``; ``center=None`` is (0, 0), the top-left cell.
        mode: ``"xcorr"`` or ``"conv"``.

    Returns:
        y: (N, O, H_out, W_out), and the cache for :func:`conv2d_backward`.
    """
    where = "conv2d"
    x, w = as_float_array(x, "x", where), as_float_array(w, "w", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    check_shape(w, 4, "(O, C, kH, kW)", "w", where)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"{where}: x must have C = {w.shape[1]} channels (w is {w.shape}), got x of shape {x.shape}")
    if b is not None:
        b = as_float_array(b, "b", where)
        check_same_shape(b, (w.shape[0],), "b", where)
    window = Window.of(w.shape[2:], stride, padding, mode, center, where)
    out = window.output_size(*x.shape[2:], where)

    if window.mode == "conv":
        w = w[:, :, ::-1, ::-1]  # conv(W, c) == xcorr(rot180(W), K-1-c); window.lead already uses K-1-c
    xq = embed(x, window.lead, window.span(out))  # (N, C, span_h, span_w)
    y = np.einsum("ncijab,ocab->noij", windows(xq, window.kernel, window.stride), w, optimize=True)
    if b is not None:
        y += b[:, None, None]
    return y, Conv2DCache(xq, w, b is not None, window, x.shape, y.shape)


def conv2d_backward(dy, cache: Conv2DCache):
    """Gradients of :func:`conv2d_forward`, written as the derivation gives them.

    With ``Xq[u, v] = Xp[u - c_h, v - c_w]`` (the padded input shifted by the centre) the forward pass is the
    plain correlation ``Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xq[n, c, i*S_h + a, j*S_w + b]``, so::

        dB[o]        = sum_{n,i,j} dY[n,o,i,j]                                  (one bias per feature map)
        dW[o,c,a,b]  = sum_{n,i,j} dY[n,o,i,j] * Xq[n, c, i*S_h + a, j*S_w + b]    (X correlated with dY)
        dXq[n,c,u,v] = sum_{o,a,b} Dp[n,o,u + a, v + b] * W[o, c, kH-1-a, kW-1-b]

    The last line is the *full* correlation of the stride-dilated gradient with the 180-degree rotated
    kernel: ``D`` is dY with ``S - 1`` zeros between neighbours (for a stride above 1 the input
    "breaks apart") and ``Dp`` is ``D`` zero-padded by ``K - 1`` on every side.  dX is the input's
    part of dXq; input cells that no window reads (when ``(H + 2P - K) mod S != 0``) get zero.
    For ``mode="conv"`` the kernel was flipped, so dW is flipped back.

    Args:
        dy: (N, O, H_out, W_out) gradient of the loss with respect to Y.
        cache: from :func:`conv2d_forward`.

    Returns:
        dx (N, C, H, W), dw (O, C, kH, kW), db (O,) or None when the forward had no bias.
    """
    where = "conv2d_backward"
    dy = as_float_array(dy, "dy", where)
    check_same_shape(dy, cache.y_shape, "dy", where)
    window, kernel = cache.window, cache.window.kernel

    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    dw = np.einsum("ncijab,noij->ocab", windows(cache.xq, kernel, window.stride), dy, optimize=True)

    full = ((0, 0), (0, 0), (kernel[0] - 1,) * 2, (kernel[1] - 1,) * 2)
    dp = np.pad(dilate(dy, window.stride), full)  # (N, O, span_h + kH - 1, span_w + kW - 1)
    rot180 = cache.w[:, :, ::-1, ::-1]
    dxq = np.einsum("noijab,ocab->ncij", windows(dp, kernel, (1, 1)), rot180, optimize=True)  # (N, C, span_h, span_w)
    dx = extract(dxq, window.lead, cache.x_shape[2:])

    if window.mode == "conv":
        dw = dw[:, :, ::-1, ::-1]
    return dx, np.ascontiguousarray(dw), db
