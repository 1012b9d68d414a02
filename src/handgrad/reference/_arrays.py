"""Array plumbing for the derivation-literal backward: placing the input under the windows, strided views, dilation.

Every function is exact data movement (no arithmetic), so the kernels that use them read like
their formulas.  Shapes use N batch, C channels, H x W input, kH x kW window.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _overlap(lead: int, size: int, span: int) -> int:
    """How many input rows land inside ``[0, span)`` when the input starts at row ``lead``."""
    return max(0, min(lead + size, span) - lead)


def embed(x: np.ndarray, lead: tuple[int, int], span: tuple[int, int], fill: float = 0.0) -> np.ndarray:
    """``Xq[n, c, u, v] = X[n, c, u - lead_h, v - lead_w]``, and ``fill`` where that is outside ``X``.

    x: (N, C, H, W) -> (N, C, span_h, span_w).  Input rows past ``span`` are read by no window and dropped.
    """
    n, c, h, w = x.shape
    rows, cols = _overlap(lead[0], h, span[0]), _overlap(lead[1], w, span[1])
    xq = np.full((n, c, *span), fill, dtype=x.dtype)
    xq[:, :, lead[0] : lead[0] + rows, lead[1] : lead[1] + cols] = x[:, :, :rows, :cols]
    return xq


def extract(dxq: np.ndarray, lead: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`embed`: the input's rows of ``dXq``, zero for input rows no window reads.

    dxq: (N, C, span_h, span_w) -> (N, C, H, W).
    """
    n, c, span_h, span_w = dxq.shape
    rows, cols = _overlap(lead[0], size[0], span_h), _overlap(lead[1], size[1], span_w)
    dx = np.zeros((n, c, *size), dtype=dxq.dtype)
    dx[:, :, :rows, :cols] = dxq[:, :, lead[0] : lead[0] + rows, lead[1] : lead[1] + cols]
    return dx


def windows(xq: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation=(1, 1)) -> np.ndarray:
    """A read-only strided view of every window: ``V[n, c, i, j, a, b] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]``.

    xq: (N, C, Hq, Wq) -> (N, C, H_out, W_out, kH, kW) with ``H_out = (Hq - D_h*(kH - 1) - 1) // S_h + 1``.
    No copy.
    """
    n, c, hq, wq = xq.shape
    out = tuple((q - d * (k - 1) - 1) // s + 1 for q, k, s, d in zip((hq, wq), kernel, stride, dilation))
    sn, sc, sh, sw = xq.strides
    return as_strided(
        xq,
        shape=(n, c, *out, *kernel),
        strides=(sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]),
        writeable=False,
    )


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
