"""2-D convolution and cross-correlation: forward and hand-derived backward, each one matrix product per group.

Notation: X (N, C, H, W) input, W (O, C/G, kH, kW) kernel in G groups, B (O,) bias, Y (N, O, H_out, W_out)
output; S stride, P padding (P0 before, P1 after), D dilation, c = (c_h, c_w) the kernel's centre element.  Xp
is X padded with zeros, and a read outside Xp counts as zero.  Window placement and the output size are in
:mod:`handgrad.shapes`, the one place for that arithmetic.

The forward pass::

    xcorr:  Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, g(o)+c, i*S_h + D_h*(a - c_h), j*S_w + D_w*(b - c_w)]
    conv:   Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, g(o)+c, i*S_h - D_h*(a - c_h), j*S_w - D_w*(b - c_w)]

``c`` runs over the C/G input channels of output channel o's group, which start at ``g(o) = (o // (O/G)) * C/G``.
Substituting ``a' = K-1-a`` gives ``conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)``, so both
modes are computed as a cross-correlation.  Placing X under the windows, ``Xq[n,c,u,v] = X[n,c,u - L_h, v - L_w]``
with ``L = P0 + D*c`` (:attr:`~handgrad.shapes.Window.lead`; zero outside X), moves the windows' origin to 0::

    Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]

``im2col`` gathers what every window reads, ``cols[(c,a,b), (n,i,j)] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]``,
and each group's Y is one matrix product ``Y[o, (n,i,j)] = sum_{(c,a,b)} W[o, (c,a,b)] * cols[(c,a,b), (n,i,j)]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import as_float_array, check_same_shape, check_shape, positive_int
from ..shapes import Window


def embed(x: np.ndarray, lead: tuple[int, int], span: tuple[int, int], fill: float = 0.0) -> np.ndarray:
    """``Xq[n,c,u,v] = X[n,c,u - L_h, v - L_w]``, and ``fill`` where that is outside X (padding).

    x: (N, C, H, W) -> (N, C, span_h, span_w).  Input rows past ``span`` are read by no window and dropped.
    """
    n, c, h, w = x.shape
    rows, cols = max(0, min(h, span[0] - lead[0])), max(0, min(w, span[1] - lead[1]))
    xq = np.full((n, c, *span), fill, dtype=x.dtype)
    xq[:, :, lead[0] : lead[0] + rows, lead[1] : lead[1] + cols] = x[:, :, :rows, :cols]
    return xq


def extract(dxq: np.ndarray, lead: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`embed`: the input's cells of dXq, zero for input cells that no window reads.

    dxq: (N, C, span_h, span_w) -> (N, C, H, W).
    """
    n, c, span_h, span_w = dxq.shape
    rows, cols = max(0, min(size[0], span_h - lead[0])), max(0, min(size[1], span_w - lead[1]))
    dx = np.zeros((n, c, *size), dtype=dxq.dtype)
    dx[:, :, :rows, :cols] = dxq[:, :, lead[0] : lead[0] + rows, lead[1] : lead[1] + cols]
    return dx


def im2col(xq: np.ndarray, window: Window, out: tuple[int, int]) -> np.ndarray:
    """Every window's cells: ``cols[n,c,i,j,a,b] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]``.

    xq: (N, C, span_h, span_w) -> (N, C, H_out, W_out, kH, kW), a read-only view (no copy yet).
    """
    (s_h, s_w), (d_h, d_w) = window.stride, window.dilation
    every = sliding_window_view(xq, window.extent, axis=(2, 3))  # (N, C, span_h - e_h + 1, ..., e_h, e_w)
    return every[:, :, ::s_h, ::s_w, ::d_h, ::d_w][:, :, : out[0], : out[1]]


def col2im(dcols: np.ndarray, span: tuple[int, int], window: Window) -> np.ndarray:
    """The adjoint of :func:`im2col`: each cell's gradient added onto the cell of Xq it was read from,
    ``dXq[n, c, i*S_h + D_h*a, j*S_w + D_w*b] += dcols[n,c,i,j,a,b]`` (windows that overlap accumulate).

    dcols: (N, C, H_out, W_out, kH, kW) -> dXq (N, C, span_h, span_w).
    """
    n, c, h_out, w_out, kh, kw = dcols.shape
    (s_h, s_w), (d_h, d_w) = window.stride, window.dilation
    dxq = np.zeros((n, c, *span), dtype=dcols.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(d_h * a, d_h * a + s_h * (h_out - 1) + 1, s_h)
            cols = slice(d_w * b, d_w * b + s_w * (w_out - 1) + 1, s_w)
            dxq[:, :, rows, cols] += dcols[:, :, :, :, a, b]
    return dxq


class Conv2DCache(NamedTuple):
    cols: np.ndarray  # (G, C/G*kH*kW, N*H_out*W_out): the columns of each group
    w: np.ndarray  # (G, O/G, C/G*kH*kW): each group's kernel as cross-correlated (flipped for mode="conv")
    has_bias: bool
    window: Window
    x_shape: tuple  # (N, C, H, W)
    y_shape: tuple  # (N, O, H_out, W_out)


def conv2d_forward(x, w, b=None, stride=1, padding=0, mode="xcorr", center=None, dilation=1, groups=1):
    """Convolve (``mode="conv"``) or cross-correlate (``mode="xcorr"``) a batch of images, as in the module's
    formulas; with centre (0, 0), cross-correlation is PyTorch's ``conv2d``.  Output size, whatever the centre:
    ``H_out = floor((H + P0 + P1 - D_h*(kH - 1) - 1) / S_h) + 1``, likewise W_out.

    Args:
        x: (N, C, H, W) input.
        w: (O, C/G, kH, kW) kernel.
        b: (O,) bias, one per feature map, or None.
        stride, center, dilation: an int or a pair ``(h, w)``; ``center=None`` is (0, 0), the top-left cell.
        padding: zeros around the input: an int or a pair (both sides), ``((top, bottom), (left, right))``,
            ``"valid"`` (none) or ``"same"`` (stride 1: the output keeps the input's size).
        mode: ``"xcorr"`` or ``"conv"``.
        groups: G, dividing both C and O (``groups=C``: depthwise).

    Returns:
        y: (N, O, H_out, W_out), and the cache for :func:`conv2d_backward`.
    """
    where = "conv2d"
    x, w = as_float_array(x, "x", where), as_float_array(w, "w", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    check_shape(w, 4, "(O, C/groups, kH, kW)", "w", where)
    groups = positive_int(groups, "groups", where)
    if x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(
            f"{where}: groups={groups} must divide the input channels {x.shape[1]} and output channels {w.shape[0]}"
        )
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(
            f"{where}: x must have C = {w.shape[1] * groups} channels (w is {w.shape}, groups={groups}), got x of shape {x.shape}"
        )
    if b is not None:
        b = as_float_array(b, "b", where)
        check_same_shape(b, (w.shape[0],), "b", where)
    window = Window.of(w.shape[2:], stride, padding, mode, center, where, dilation)
    (n, _, h, width), o = x.shape, w.shape[0]
    out = window.output_size(h, width, where)

    kernel = w[:, :, ::-1, ::-1] if window.mode == "conv" else w  # conv(W, c) == xcorr(rot180(W), K-1-c)
    w_g = kernel.reshape(groups, o // groups, -1)  # (G, O/G, C/G*kH*kW)
    xq = embed(x, window.lead, window.span(out))  # (N, C, span_h, span_w)
    cols = im2col(xq, window, out)  # (N, C, H_out, W_out, kH, kW)
    cols = cols.transpose(1, 4, 5, 0, 2, 3).reshape(groups, w_g.shape[2], -1)  # (G, C/G*kH*kW, N*H_out*W_out)
    y = w_g @ cols  # (G, O/G, N*H_out*W_out): Y = W cols, group by group
    y = y.reshape(o, n, *out).transpose(1, 0, 2, 3)  # (N, O, H_out, W_out)
    if b is not None:
        y = y + b[:, None, None]
    return y, Conv2DCache(cols, w_g, b is not None, window, x.shape, y.shape)


def conv2d_backward(dy, cache: Conv2DCache, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward`, as the derivation gives them (``Xq`` as in the module's notes)::

        dB[o]        = sum_{n,i,j} dY[n,o,i,j]                                       (one bias per feature map)
        dW[o,c,a,b]  = sum_{n,i,j} dY[n,o,i,j] * Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]   (X correlated with dY)
        dXq[n,c,u,v] = sum_{o,a,b} Dp[n, o, u + D_h*a, v + D_w*b] * W[o, c, kH-1-a, kW-1-b]

    (with groups, c and o run over one group's channels).  The last line is the *full* correlation of the
    stride-dilated gradient D (dY with ``S - 1`` zeros between neighbours, padded by ``D*(K - 1)`` into Dp) with
    the 180-degree rotated kernel (:mod:`handgrad.reference.derivation` computes it literally).  Only the cells of
    D that hold a gradient contribute, so it is computed as ``dcols = W^T dY``, each window cell's share, added
    back onto the cell it was read from by :func:`col2im`.  dX is the input's part of dXq.  For ``mode="conv"``
    the kernel was flipped, so dW is flipped back.

    Args:
        dy: (N, O, H_out, W_out) gradient of the loss with respect to Y.
        cache: from :func:`conv2d_forward`.
        input_grad: False skips dX (for a first layer, whose input needs no gradient) and returns None for it.

    Returns:
        dx (N, C, H, W) or None, dw (O, C/G, kH, kW), db (O,) or None when the forward had no bias.
    """
    dy = as_float_array(dy, "dy", "conv2d_backward")
    check_same_shape(dy, cache.y_shape, "dy", "conv2d_backward")
    window, (n, c, h, w), (_, o, *out) = cache.window, cache.x_shape, cache.y_shape
    groups = cache.w.shape[0]
    dy_g = dy.transpose(1, 0, 2, 3).reshape(groups, o // groups, -1)  # (G, O/G, N*H_out*W_out)

    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    dw = (dy_g @ cache.cols.transpose(0, 2, 1)).reshape(o, c // groups, *window.kernel)  # dW = dY cols^T
    if window.mode == "conv":
        dw = np.ascontiguousarray(dw[:, :, ::-1, ::-1])
    if not input_grad:
        return None, dw, db
    dcols = cache.w.transpose(0, 2, 1) @ dy_g  # (G, C/G*kH*kW, N*H_out*W_out): dcols = W^T dY
    dcols = dcols.reshape(c, *window.kernel, n, *out).transpose(3, 0, 4, 5, 1, 2)  # (N, C, H_out, W_out, kH, kW)
    dxq = col2im(dcols, window.span(out), window)  # (N, C, span_h, span_w)
    return extract(dxq, window.lead, (h, w)), dw, db
