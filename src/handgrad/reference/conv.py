"""Convolution as plain loops: the formulas of :mod:`handgrad.functional.conv`, index by index."""

from __future__ import annotations

from itertools import product

import numpy as np

from ..shapes import Window


def _read_position(i, a, stride, center, mode):
    """Row of Xp read by output row i and kernel row a: ``i*S + (a - c)`` (xcorr) or ``i*S - (a - c)`` (conv)."""
    return i * stride + (a - center) if mode == "xcorr" else i * stride - (a - center)


def _terms(x_shape, w_shape, stride, padding, mode, center):
    """Every term ``W[o,c,a,b] * Xp[n,c,r,q]`` of every output sum, as index tuples, skipping reads outside Xp."""
    window = Window.of(w_shape[2:], stride, padding, mode, center)
    n_, c_, h, w = x_shape
    o_, _, kh, kw = w_shape
    out = window.output_size(h, w)
    hp, wp = h + 2 * window.padding[0], w + 2 * window.padding[1]
    for n, o, i, j in product(range(n_), range(o_), range(out[0]), range(out[1])):
        for c, a, b in product(range(c_), range(kh), range(kw)):
            r = _read_position(i, a, window.stride[0], window.center[0], mode)
            q = _read_position(j, b, window.stride[1], window.center[1], mode)
            if 0 <= r < hp and 0 <= q < wp:
                yield n, o, i, j, c, a, b, r, q


def conv2d_forward(x, w, b=None, stride=1, padding=0, mode="xcorr", center=None):
    """``Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, c, i*S_h ± (a - c_h), j*S_w ± (b - c_w)]``."""
    window = Window.of(w.shape[2:], stride, padding, mode, center)
    out = window.output_size(*x.shape[2:])
    (ph, pw) = window.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((x.shape[0], w.shape[0], *out), dtype=np.float64)
    if b is not None:
        y += np.asarray(b)[None, :, None, None]
    for n, o, i, j, c, a, b_, r, q in _terms(x.shape, w.shape, stride, padding, mode, center):
        y[n, o, i, j] += w[o, c, a, b_] * xp[n, c, r, q]
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, mode="xcorr", center=None, bias=True):
    """The chain rule applied to each term ``W[o,c,a,b] * Xp[n,c,r,q]`` of ``Y[n,o,i,j]``::

        dW[o,c,a,b] += dY[n,o,i,j] * Xp[n,c,r,q]
        dXp[n,c,r,q] += dY[n,o,i,j] * W[o,c,a,b]
        dB[o]        += dY[n,o,i,j]

    and dX is dXp without its padding.  Returns (dx, dw, db); db is None when ``bias`` is False.
    """
    ph, pw = Window.of(w.shape[2:], stride, padding, mode, center).padding
    h, w_ = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp, dw = np.zeros(xp.shape), np.zeros(w.shape)
    for n, o, i, j, c, a, b, r, q in _terms(x.shape, w.shape, stride, padding, mode, center):
        dw[o, c, a, b] += dy[n, o, i, j] * xp[n, c, r, q]
        dxp[n, c, r, q] += dy[n, o, i, j] * w[o, c, a, b]
    db = np.zeros(w.shape[0])
    for n, o, i, j in product(*map(range, dy.shape)):
        db[o] += dy[n, o, i, j]
    return dxp[:, :, ph : ph + h, pw : pw + w_], dw, (db if bias else None)
