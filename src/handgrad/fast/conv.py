"""The fast tier's convolution: :mod:`handgrad.functional.conv`'s formulas, laid out for speed.

Notation as there: X (N, C, H, W) input, W (O, C/G, kH, kW) kernel (G groups), B (O,) bias, Y (N, O, H_out,
W_out) output; S stride, D dilation, ``Xq`` the input placed under the windows (zero padding: a padding mode is
filled before this kernel runs).  The results are those of the formula tier, to rounding; the tests hold them so.

Layout.  Images pass between layers as (N, C, H, W) views of (C, H, W, N) memory, batch innermost (see
:mod:`._layout`).  The work is one matrix product per group and pass over the "columns" of the input,
``cols[(c,a,b), (i,j,n)] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]`` (im2col), channel axis first and batch
last: ``Y = W (O x C*kH*kW) @ cols (C*kH*kW x H_out*W_out*N)`` gives Y as (O, H_out, W_out, N) memory, the
order the next layer reads.  In this orientation every output is the same dot product in the same order, so
identical input patches give bitwise identical outputs (max-pooling ties stay ties, as in PyTorch).  The
columns are built a few output rows at a time, so that they stay in cache and memory stays small.

The bias rides in the same product (with one group): it is the weight of an input that is always 1, so
``Y = [W | B] @ [cols; 1]``, and in the backward pass ``[dW | dB] = dY @ [cols; 1]^T``, whose last column is
``dB[o] = sum_{n,i,j} dY[n,o,i,j]``.  Neither pass then reads or writes Y or dY a second time for the bias.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._checks import as_float_array, check_same_shape, check_shape
from ..shapes import Window
from . import _scratch
from ._layout import batch_innermost, to_chwn, to_nchw
from ._products import matmul
from ._scratch import chunks, scratch, stamp, untouched, zeroed


class Conv2DCache(NamedTuple):
    x_c: np.ndarray  # (C, H, W, N): the input; backward rebuilds columns from it
    w: np.ndarray  # (O, C/G, kH, kW): the kernel as cross-correlated (flipped when mode="conv")
    has_bias: bool
    window: Window
    groups: int
    y_shape: tuple
    rows: Rows | None  # the flat layout of stride 1; None for other strides
    chunks: list  # slices of the output rows, each with columns of at most _scratch.CHUNK_BYTES
    workspace: dict | None  # scratch memory lent by the caller
    columns: np.ndarray | None  # the columns, when one chunk held them all (in scratch memory: see mark)
    mark: int | None  # the workspace's stamp when the columns were written; backward uses them if it is unchanged


def _in_rows(reads, part: slice, stride: int):
    """The reads of :meth:`Window.cell_reads` restricted to the output rows in ``part``, which are counted
    from ``part.start``."""
    for a, b, out_rows, out_cols, in_rows, in_cols in reads:
        first, last = max(out_rows.start, part.start), min(out_rows.stop, part.stop)
        if first < last:
            start = in_rows.start + (first - out_rows.start) * stride
            in_part = slice(start, start + (last - first - 1) * stride + 1, stride)
            yield a, b, slice(first - part.start, last - part.start), out_cols, in_part, in_cols


def im2col(x_c: np.ndarray, window: Window, out: tuple[int, int], part: slice, cols: np.ndarray) -> None:
    """``cols[c, a, b, i, j, n] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]`` for the output rows i in ``part``
    (counted from ``part.start``), zero where that is padding.

    x_c: (C, H, W, N) -> cols (C*kH*kW, rows in part * W_out * N), written in place; one strided copy per
    kernel cell.
    """
    c, h, w, n = x_c.shape
    height = part.stop - part.start
    reads = list(_in_rows(window.cell_reads((h, w), out), part, window.stride[0]))
    grid = cols.reshape(c, *window.kernel, height, out[1], n)
    if len(reads) < window.kernel[0] * window.kernel[1] or any(
        r[2] != slice(0, height) or r[3] != slice(0, out[1]) for r in reads
    ):
        cols.fill(0)  # some reads fall in the padding
    for a, b, out_rows, out_cols, in_rows, in_cols in reads:
        grid[:, a, b, out_rows, out_cols] = x_c[:, in_rows, in_cols]


def col2im(dcols: np.ndarray, window: Window, out: tuple[int, int], part: slice, dx_c: np.ndarray) -> None:
    """The adjoint of :func:`im2col`: each column's gradient added onto the input cell it was read from.

    dcols: (C, kH, kW, rows in part, W_out, N), added into dx_c (C, H, W, N).
    """
    for a, b, out_rows, out_cols, in_rows, in_cols in _in_rows(
        window.cell_reads(dx_c.shape[1:3], out), part, window.stride[0]
    ):
        dx_c[:, in_rows, in_cols] += dcols[:, a, b, out_rows, out_cols]


class Rows(NamedTuple):
    """Stride-1 geometry of the flat layout: each map a run of rows of length ``R = max(W, W_out)``, each
    cell holding the batch."""

    length: int  # R
    width: int  # W_out
    rows: int  # rows of the buffer: H_out + D_h*(kH - 1), and one spare for the last taps' overrun
    margin: int  # buffer cells before the map: lead_w
    tail: int  # and after it: D_w*(kW - 1) + 1
    masks: tuple  # (b, columns j < W_out whose read for kernel column b wraps into a neighbouring row)

    @property
    def cells(self) -> int:
        """Cells of the flat buffer: margin + rows*R + tail."""
        return self.margin + self.rows * self.length + self.tail


@functools.lru_cache(maxsize=64)  # layers meet the same few geometries at every step
def _rows(window: Window, size: tuple[int, int], out: tuple[int, int]) -> Rows:
    (kh, kw), (dh, dw), lead_w = window.kernel, window.dilation, window.lead[1]
    r = max(size[1], out[1])
    masks = []
    for b in range(kw):  # output column j reads column j + D_w*b - lead_w, which must lie in [0, R)
        low = min(out[1], max(0, lead_w - dw * b))
        high = max(low, min(out[1], r - dw * b + lead_w))
        wrapped = [j for j in (slice(0, low), slice(high, out[1])) if j.stop > j.start]
        masks += [(b, j) for j in wrapped]
    return Rows(r, out[1], out[0] + dh * (kh - 1) + 1, lead_w, dw * (kw - 1) + 1, tuple(masks))


def _map(flat: np.ndarray, rows: Rows) -> np.ndarray:
    """The (C, rows, R, N) view of the maps in a flat (C, margin + rows*R + tail, N) buffer."""
    c, _, n = flat.shape
    return flat[:, rows.margin : rows.margin + rows.rows * rows.length].reshape(c, rows.rows, rows.length, n)


def image_rows(x_c: np.ndarray, window: Window, rows: Rows, dtype, workspace=None) -> np.ndarray:
    """The input laid out for :func:`im2col_rows`: (C, H, W, N) -> flat (C, margin + rows*R + tail, N), input
    row y at map row ``y + lead_h``, zeros around it (the vertical padding, and columns ``W <= x < R``)."""
    c, h, w, n = x_c.shape
    lead_h = window.lead[0]
    flat = zeroed(workspace, "image rows", (c, rows.cells, n), dtype)
    visible = max(0, min(h, rows.rows - lead_h))
    _map(flat, rows)[:, lead_h : lead_h + visible, :w] = x_c[:, :visible]
    return flat


def im2col_rows(flat: np.ndarray, window: Window, rows: Rows, part: slice, cols: np.ndarray) -> None:
    """Stride-1 im2col on the rows of :func:`image_rows`, for the output rows i in ``part``:
    ``cols[(c,a,b), (i, j, n)]`` reads input row ``i + D_h*a - lead_h``, column ``j + D_w*b - lead_w``.

    Output cell (i, j) is map cell ``p = i*R + j`` and kernel cell (a, b) reads map cell ``p + D_h*a*R +
    D_w*b - lead_w``: for each channel, kernel cell and output row, one contiguous shifted run of W_out*N
    values of the flat buffer, so ``cols`` is a single copy of long runs.  A read that leaves its row
    (horizontal padding) wraps into the neighbouring row: those few columns are set to zero.

    flat: (C, margin + rows*R + tail, N) -> cols (C*kH*kW, rows in part * W_out * N), written in place.
    """
    c, _, n = flat.shape
    (kh, kw), (dh, dw), r, item = window.kernel, window.dilation, rows.length, flat.itemsize
    height, run = part.stop - part.start, rows.width * n
    origin = flat[:, rows.margin - window.lead[1] + part.start * r :]  # kernel cell (0, 0) of output (part.start, 0)
    steps = (flat.strides[0], dh * r * n * item, dw * n * item, r * n * item, item)  # c, a, b, i, (j, n)
    taps = as_strided(origin, (c, kh, kw, height, run), steps)
    np.copyto(cols.reshape(taps.shape), taps)  # a copy: the taps overlap in memory
    _zero_wrapped(cols, rows, window.kernel, height)


def _zero_wrapped(cols: np.ndarray, rows: Rows, kernel: tuple[int, int], height: int) -> None:
    """Zero the columns whose reads wrapped into a neighbouring row (horizontal padding), in place."""
    if rows.masks:
        c = cols.shape[0] // (kernel[0] * kernel[1])
        grid = cols.reshape(c, kernel[0], kernel[1], height, rows.width, -1)
        for b, columns in rows.masks:
            grid[:, :, b, :, columns] = 0


def col2im_rows(dcols: np.ndarray, window: Window, rows: Rows, part: slice, flat: np.ndarray, workspace=None) -> None:
    """The adjoint of :func:`im2col_rows`: each kernel cell's columns added back at its shift.

    Kernel cell (a, b) adds its value for output cell (i, j) onto map cell ``(i + D_h*a)*R + j + D_w*b -
    lead_w``.  Where an output row is a whole map row (W_out = R) each kernel cell's columns are one run.
    Otherwise they are runs of W_out*N values R*N apart, and NumPy adds such strided runs about three times
    slower than a contiguous one, so the sum is taken in two steps: over kernel rows a first, into compact
    maps ``S_b[i + D_h*a, j] += dcols[(a,b), (i, j)]`` (contiguous runs, one add per a for every b at once),
    then over kernel columns b, each ``S_b`` added once onto the map shifted by ``D_w*b - lead_w`` (kW strided
    adds instead of kH*kW).

    dcols: (C*kH*kW, rows in part * W_out * N), added into flat (C, margin + rows*R + tail, N).
    """
    (c, _, n), height, (kh, kw), (dh, dw) = flat.shape, part.stop - part.start, window.kernel, window.dilation
    r, run = rows.length, rows.width * n  # cells per map row; values per output row
    _zero_wrapped(dcols, rows, window.kernel, height)  # wrapped reads were zeros: no gradient flows back
    taps = dcols.reshape(c, kh, kw, height * run)
    origin = rows.margin - window.lead[1] + part.start * r  # map cell read by kernel cell (0, 0) at (part.start, 0)
    if rows.width == r:
        for a in range(kh):
            for b in range(kw):
                start = (origin + dh * a * r + dw * b) * n
                flat.reshape(c, -1)[:, start : start + height * run] += taps[:, a, b]
        return
    span = height + dh * (kh - 1)  # map rows the chunk's windows cover
    sums = scratch(workspace, "kernel row sums", (c, kw, span * run), flat.dtype)  # S_b: its row i + D_h*a
    sums[:, :, : height * run] = taps[:, 0]
    sums[:, :, height * run :] = 0
    for a in range(1, kh):
        sums[:, :, dh * a * run : (dh * a + height) * run] += taps[:, a]
    for b in range(kw):
        start = origin + dw * b
        flat[:, start : start + span * r].reshape(c, span, r * n)[:, :, :run] += sums[:, b].reshape(c, span, run)


def image_from_rows(flat: np.ndarray, window: Window, rows: Rows, size: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`image_rows`: the input's cells of a flat buffer, (C, H, W, N)."""
    c, _, n = flat.shape
    lead_h = window.lead[0]
    x_c = np.empty((c, *size, n), dtype=flat.dtype)
    visible = max(0, min(size[0], rows.rows - lead_h))
    x_c[:, :visible] = _map(flat, rows)[:, lead_h : lead_h + visible, : size[1]]
    x_c[:, visible:] = 0  # input rows past every window
    return x_c


def conv2d_forward(x, w, b, window: Window, groups=1, workspace=None):
    """:func:`handgrad.functional.conv2d_forward` (same formulas, same results to rounding) with the window's
    hyper-parameters given as one checked :class:`~handgrad.shapes.Window` whose kernel is w's, zero padding, and
    the layout, chunks and scratch of this module.

    Args:
        x: (N, C, H, W) input, in any memory order ((C, H, W, N) memory is read without a copy).
        w: (O, C/G, kH, kW) kernel.
        b: (O,) bias, or None.
        window: the convolution's window (its mode, centre, stride, padding and dilation).
        groups: G, dividing both C and O.
        workspace: a dict kept between calls (by the compiled model) from which temporaries are reused; optional.

    Returns:
        y: (N, O, H_out, W_out), a view of (O, H_out, W_out, N) memory, and the cache for :func:`conv2d_backward`.
    """
    where = "conv2d"
    x, w = as_float_array(x, "x", where), as_float_array(w, "w", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    if w.shape[2:] != window.kernel:
        raise ValueError(f"{where}: w must have the window's {window.kernel} kernel, got w of shape {w.shape}")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(
            f"{where}: x must have C = {w.shape[1] * groups} channels (w is {w.shape}, groups={groups}), got x of shape {x.shape}"
        )
    out = window.output_size(*x.shape[2:], where)
    dtype = np.dtype(np.result_type(x, w))
    if window.mode == "conv":
        # conv(W, c) == xcorr(rot180(W), K-1-c); cell_reads already uses K-1-c.  Contiguous once, so
        # that every chunk and the backward pass reshape it for free.
        w = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    o, n = w.shape[0], x.shape[0]
    rows = _rows(window, x.shape[2:], out) if window.stride == (1, 1) else None
    x_c = to_chwn(x) if rows else batch_innermost(x)  # (C, H, W, N)
    mark = stamp(workspace)
    source = image_rows(x_c, window, rows, dtype, workspace) if rows else x_c
    row = out[1] * n  # columns per output row
    column_bytes = x.shape[1] * w[0, 0].size * row * dtype.itemsize  # per output row
    # columns that fit in KEEP_BYTES are built in one piece, which the backward pass reuses; larger ones in chunks
    parts = [slice(0, out[0])] if out[0] * column_bytes <= _scratch.KEEP_BYTES else chunks(out[0], column_bytes)
    # The bias is the weight of an input that is always 1: Y = [W | B] @ [cols; 1], one product for both
    ones = b is not None and groups == 1
    w2 = np.concatenate([w.reshape(o, -1), b.astype(w.dtype)[:, None]], axis=1) if ones else w.reshape(o, -1)
    y = np.empty((o, out[0] * row), dtype=dtype)  # (O, H_out*W_out*N)
    for part in parts:
        cols = _columns(source, window, rows, out, part, dtype, workspace, ones)  # (C*kH*kW [+1], rows * W_out*N)
        block = y[:, part.start * row : part.stop * row]
        for w_g, cols_g, y_g in _groups(w2, cols, block, groups):
            matmul(w_g, cols_g, out=y_g)
    if b is not None and not ones:
        y += b[:, None]
    y = to_nchw(y.reshape(o, *out, n))  # (N, O, H_out, W_out)
    kept = cols if len(parts) == 1 else None  # backward rebuilds them unless they are all still there
    cache = Conv2DCache(x_c, w, b is not None, window, groups, y.shape, rows, parts, workspace, kept, mark)
    return y, cache


def _groups(w2: np.ndarray, cols: np.ndarray, y: np.ndarray, groups: int):
    """Per group: its rows of the kernel matrix w2 (O/G, ...), its column rows (C/G*kH*kW, and the ones) and its
    output rows."""
    o, k = w2.shape[0] // groups, cols.shape[0] // groups
    return [(w2[g * o : (g + 1) * o], cols[g * k : (g + 1) * k], y[g * o : (g + 1) * o]) for g in range(groups)]


def conv2d_backward(dy, cache: Conv2DCache, input_grad: bool = True):
    """:func:`handgrad.functional.conv2d_backward` (the same gradients, to rounding) for a cache of
    :func:`conv2d_forward`: ``[dW | dB] = dY [cols; 1]^T`` chunk by chunk, from the forward's columns while they
    are still in the workspace; ``dcols = W^T dY``, added back onto the input cells they were read from in the
    layout they were read in (:func:`col2im_rows` for stride 1, :func:`col2im` otherwise).  dx comes back as a
    view of (C, H, W, N) memory, or None with ``input_grad=False``.
    """
    where = "conv2d_backward"
    dy = as_float_array(dy, "dy", where)
    check_same_shape(dy, cache.y_shape, "dy", where)
    (_, *size, n), (_, o, *out) = cache.x_c.shape, cache.y_shape
    window, rows, dtype, workspace = cache.window, cache.rows, np.result_type(cache.x_c, cache.w), cache.workspace
    row = out[1] * n  # columns per output row
    dy2 = to_chwn(dy).reshape(o, -1)  # (O, H_out*W_out*N): free when dy is in this order
    groups, k = cache.groups, cache.w[0].size  # k = C/G*kH*kW
    ones = cache.has_bias and groups == 1  # the columns end in a row of ones: dB is dW's column for it
    db = dy2.sum(axis=1) if cache.has_bias and not ones else None
    w2, dw2 = cache.w.reshape(o, -1), np.zeros((groups, o // groups, k + ones), dtype=dtype)
    kept = cache.columns if untouched(workspace, cache.mark, "columns") else None  # the forward's, if still there
    stamp(workspace)
    if kept is None:
        source = image_rows(cache.x_c, window, rows, dtype, workspace) if rows else cache.x_c
    if input_grad:  # dX accumulates in the layout the columns were read from
        shape = (cache.x_c.shape[0], rows.cells, n) if rows else cache.x_c.shape
        dx_c = zeroed(workspace, "gradient rows", shape, dtype) if rows else np.zeros(shape, dtype)
    for part in cache.chunks:
        cols = kept if kept is not None else _columns(source, window, rows, tuple(out), part, dtype, workspace, ones)
        block = dy2[:, part.start * row : part.stop * row]
        # dcols may take the buffer of cols: each group reads its cols rows before writing its dcols rows
        dcols = scratch(workspace, "columns", cols.shape, dtype) if input_grad else None
        for g, (w_g, cols_g, dy_g) in enumerate(_groups(w2, cols, block, groups)):
            dw2[g] += _correlated(dy_g, cols_g)  # X correlated with dY (and with ones, dB = sum of dY)
            if input_grad:
                matmul(w_g.T, dy_g, out=dcols[g * k : (g + 1) * k])
        if input_grad:
            _columns_to_input(dcols[: groups * k], window, rows, tuple(out), part, dx_c, workspace)
    dw = dw2[:, :, :k].reshape(cache.w.shape)
    if ones:
        db = dw2[0, :, k].copy()
    if window.mode == "conv":
        dw = np.ascontiguousarray(dw[:, :, ::-1, ::-1])
    dx = None
    if input_grad:
        dx = to_nchw(image_from_rows(dx_c, window, rows, tuple(size)) if rows else dx_c)
    return dx, dw, db


def _correlated(dy_g: np.ndarray, cols_g: np.ndarray) -> np.ndarray:
    """``dY_g @ cols_g^T``, (O/G, rows of cols_g): a sum over the long axis of the columns (every output cell of
    the chunk).  When the columns have more rows than dY_g it is taken as ``(cols_g @ dY_g^T)^T``, the same sums
    as a transposed view, the form OpenBLAS runs faster for these long sums on one thread and on a loaded
    machine."""
    return matmul(cols_g, dy_g.T).T if cols_g.shape[0] > dy_g.shape[0] else matmul(dy_g, cols_g.T)


def _columns(source, window: Window, rows: Rows | None, out, part: slice, dtype, workspace, ones: bool = False):
    """im2col of the output rows in ``part``, for the stride at hand, (C*kH*kW, rows in part * W_out * N): from the
    flat rows of :func:`image_rows` for stride 1, from (C, H, W, N) otherwise; with ``ones``, and a last row of
    ones (the input the bias multiplies)."""
    k = source.shape[0] * window.kernel[0] * window.kernel[1]
    cols = scratch(workspace, "columns", (k + ones, (part.stop - part.start) * out[1] * source.shape[-1]), dtype)
    if rows is not None:
        im2col_rows(source, window, rows, part, cols[:k])
    else:
        im2col(source, window, out, part, cols[:k])
    if ones:
        cols[k] = 1
    return cols


def _columns_to_input(dcols: np.ndarray, window: Window, rows: Rows | None, out, part: slice, dx, workspace) -> None:
    """col2im of the output rows in ``part``, for the stride at hand, added into dx: flat rows for stride 1,
    (C, H, W, N) otherwise."""
    if rows is not None:
        col2im_rows(dcols, window, rows, part, dx, workspace)
    else:
        c, n = dx.shape[0], dx.shape[3]
        col2im(dcols.reshape(c, *window.kernel, part.stop - part.start, out[1], n), window, out, part, dx)
