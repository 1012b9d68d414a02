"""The convolution's backward pass exactly as the derivations write it, with whole-array operations.

``dX`` is the *full* correlation of the stride-dilated ``dY`` with the 180-degree rotated kernel, and
``dW`` the correlation of the input with ``dY``: dilate, pad, correlate, as on paper.  It computes the
same numbers as :func:`handgrad.functional.conv2d_backward` (which skips the dilation's zeros) and the loops
of :mod:`handgrad.reference.conv`; the tests hold all three together.
"""

from __future__ import annotations

import numpy as np

from ..functional.conv import embed, extract, im2col
from ..shapes import Window


def conv2d_backward(dy, x, w, stride=1, padding=0, mode="xcorr", center=None, dilation=1):
    """``(dx, dw, db)`` of the convolution, written as the derivation gives them.

    With ``Xq[u, v] = Xp[u - c_h, v - c_w]`` (the padded input shifted by the centre) the forward pass is the
    plain correlation ``Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xq[n, c, i*S_h + a, j*S_w + b]``, so::

        dB[o]        = sum_{n,i,j} dY[n,o,i,j]
        dW[o,c,a,b]  = sum_{n,i,j} dY[n,o,i,j] * Xq[n, c, i*S_h + a, j*S_w + b]       (X correlated with dY)
        dXq[n,c,u,v] = sum_{o,a,b} Dp[n, o, u + a, v + b] * W[o, c, kH-1-a, kW-1-b]   (full correlation)

    ``D`` is dY with ``S - 1`` zeros between neighbours (for a stride above 1 the input "breaks apart") and
    ``Dp`` is ``D`` zero-padded by ``K - 1`` on every side.  dX is the input's part of dXq.  A true
    convolution is the cross-correlation with the flipped kernel, so its dW is flipped back.  With a
    dilation D every kernel offset ``a`` above becomes ``D*a`` (and the padding of ``Dp`` ``D*(K - 1)``).
    """
    window = Window.of(w.shape[2:], stride, padding, mode, center, dilation=dilation)
    out = window.output_size(*x.shape[2:])
    kernel, dilation = window.kernel, window.dilation
    w = w[:, :, ::-1, ::-1] if mode == "conv" else w
    xq = embed(x, window.lead, window.span(out))  # (N, C, span_h, span_w)

    db = dy.sum(axis=(0, 2, 3))
    dw = np.einsum("ncijab,noij->ocab", im2col(xq, window, out), dy)
    full = ((0, 0), (0, 0), (dilation[0] * (kernel[0] - 1),) * 2, (dilation[1] * (kernel[1] - 1),) * 2)
    dp = np.pad(dilate(dy, window.stride), full)  # (N, O, span_h + D_h*(kH - 1), ...)
    rot180 = w[:, :, ::-1, ::-1]
    unit = Window.of(kernel, 1, 0, dilation=dilation)  # the full correlation: every shift, stride 1
    windows = im2col(dp, unit, unit.output_size(*dp.shape[2:]))  # (N, O, span_h, span_w, kH, kW)
    dxq = np.einsum("noijab,ocab->ncij", windows, rot180)  # (N, C, span_h, span_w)
    dx = extract(dxq, window.lead, x.shape[2:])
    return dx, (dw[:, :, ::-1, ::-1] if mode == "conv" else dw), db


def dilate(dy: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """Insert ``S - 1`` zeros between neighbouring cells: ``D[n, o, i*S_h, j*S_w] = dY[n, o, i, j]``.

    dy: (N, O, H_out, W_out) -> (N, O, (H_out - 1)*S_h + 1, (W_out - 1)*S_w + 1).
    """
    if stride == (1, 1):
        return dy
    n, o, h, w = dy.shape
    d = np.zeros((n, o, (h - 1) * stride[0] + 1, (w - 1) * stride[1] + 1), dtype=dy.dtype)
    d[:, :, :: stride[0], :: stride[1]] = dy
    return d
