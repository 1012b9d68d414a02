"""Convolution as plain loops: the formulas of :mod:`handgrad.functional.conv`, index by index."""

from __future__ import annotations

from itertools import product

import numpy as np

from ..shapes import Window

NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _read_position(i, a, stride, center, mode, dilation=1):
    """Row of Xp read by output row i and kernel row a: ``i*S + D*(a - c)`` (xcorr) or ``i*S - D*(a - c)`` (conv)."""
    return i * stride + dilation * (a - center) if mode == "xcorr" else i * stride - dilation * (a - center)


def _padded(x, window, padding_mode):
    """Xp: x padded by the window's padding, filled as ``padding_mode`` says (numpy's own np.pad)."""
    (top, bottom), (left, right) = window.padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NUMPY_PAD_MODES[padding_mode])


def _terms(x_shape, w_shape, window, groups):
    """Every term ``W[o,c,a,b] * Xp[n,C(o,c),r,q]`` of every output sum, as index tuples, skipping reads outside Xp."""
    n_, _, h, w = x_shape
    o_, c_group, kh, kw = w_shape
    out = window.output_size(h, w)
    hp, wp = window.padded(h, w)
    for n, o, i, j in product(range(n_), range(o_), range(out[0]), range(out[1])):
        first_channel = (o // (o_ // groups)) * c_group  # the group of output channel o
        for c, a, b in product(range(c_group), range(kh), range(kw)):
            r = _read_position(i, a, window.stride[0], window.center[0], window.mode, window.dilation[0])
            q = _read_position(j, b, window.stride[1], window.center[1], window.mode, window.dilation[1])
            if 0 <= r < hp and 0 <= q < wp:
                yield n, o, i, j, first_channel + c, c, a, b, r, q


def conv2d_forward(
    x, w, b=None, stride=1, padding=0, mode="xcorr", center=None, dilation=1, groups=1, padding_mode="zeros"
):
    """``Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, g(o)+c, i*S_h ± D_h*(a - c_h), j*S_w ± D_w*(b - c_w)]``."""
    window = Window.of(w.shape[2:], stride, padding, mode, center, dilation=dilation)
    out = window.output_size(*x.shape[2:])
    xp = _padded(x, window, padding_mode)
    y = np.zeros((x.shape[0], w.shape[0], *out), dtype=np.float64)
    if b is not None:
        y += np.asarray(b)[None, :, None, None]
    for n, o, i, j, channel, c, a, b_, r, q in _terms(x.shape, w.shape, window, groups):
        y[n, o, i, j] += w[o, c, a, b_] * xp[n, channel, r, q]
    return y


def conv2d_backward(
    dy, x, w, stride=1, padding=0, mode="xcorr", center=None, bias=True, dilation=1, groups=1, padding_mode="zeros"
):
    """The chain rule applied to each term ``W[o,c,a,b] * Xp[n,C,r,q]`` of ``Y[n,o,i,j]``::

        dW[o,c,a,b] += dY[n,o,i,j] * Xp[n,C,r,q]
        dXp[n,C,r,q] += dY[n,o,i,j] * W[o,c,a,b]
        dB[o]        += dY[n,o,i,j]

    and dX[n,C,u,v] is the sum of dXp over the padded cells that copied input cell (u, v) (the cell itself,
    and for a padding mode the padded cells that repeat it).  Returns (dx, dw, db); db is None without bias.
    """
    window = Window.of(w.shape[2:], stride, padding, mode, center, dilation=dilation)
    h, w_ = x.shape[2:]
    xp = _padded(x, window, padding_mode)
    dxp, dw = np.zeros(xp.shape), np.zeros(w.shape)
    for n, o, i, j, channel, c, a, b, r, q in _terms(x.shape, w.shape, window, groups):
        dw[o, c, a, b] += dy[n, o, i, j] * xp[n, channel, r, q]
        dxp[n, channel, r, q] += dy[n, o, i, j] * w[o, c, a, b]
    db = np.zeros(w.shape[0])
    for n, o, i, j in product(*map(range, dy.shape)):
        db[o] += dy[n, o, i, j]
    # which input cell each padded cell copies: pad the cells' own indices the same way
    (top, bottom), (left, right) = window.padding
    source = np.pad(
        np.arange(h * w_).reshape(h, w_), ((top, bottom), (left, right)), mode=NUMPY_PAD_MODES[padding_mode]
    )
    inside = np.pad(np.ones((h, w_), dtype=bool), ((top, bottom), (left, right)))  # zero padding copies nothing
    dx = np.zeros(x.shape)
    for n, channel, r, q in product(*map(range, xp.shape)):
        if padding_mode != "zeros" or inside[r, q]:
            u, v = divmod(int(source[r, q]), w_)
            dx[n, channel, u, v] += dxp[n, channel, r, q]
    return dx, dw, (db if bias else None)
