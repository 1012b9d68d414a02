"""The convolution's backward pass exactly as the derivations write it, with whole-array operations.

``dX`` is the *full* correlation of the stride-dilated ``dY`` with the 180-degree rotated kernel, and
``dW`` the correlation of the input with ``dY``: dilate, pad, correlate, as on paper.  It computes the
same numbers as :func:`handgrad.functional.conv2d_backward` (which skips the dilation's zeros) and the loops
of :mod:`handgrad.reference.conv`; the tests hold all three together.
"""

from __future__ import annotations

import numpy as np

from ..shapes import Window
from ._arrays import dilate, embed, extract, windows


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
    dw = np.einsum("ncijab,noij->ocab", windows(xq, kernel, window.stride, dilation), dy)
    full = ((0, 0), (0, 0), (dilation[0] * (kernel[0] - 1),) * 2, (dilation[1] * (kernel[1] - 1),) * 2)
    dp = np.pad(dilate(dy, window.stride), full)  # (N, O, span_h + D_h*(kH - 1), ...)
    rot180 = w[:, :, ::-1, ::-1]
    dxq = np.einsum("noijab,ocab->ncij", windows(dp, kernel, (1, 1), dilation), rot180)  # (N, C, span_h, span_w)
    dx = extract(dxq, window.lead, x.shape[2:])
    return dx, (dw[:, :, ::-1, ::-1] if mode == "conv" else dw), db
