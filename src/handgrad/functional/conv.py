"""2-D convolution and cross-correlation: forward and hand-derived backward, vectorised.

Notation: X (N, C, H, W) input, W (O, C/G, kH, kW) kernel (G groups), B (O,) bias, Y (N, O, H_out, W_out)
output; S stride, P padding, D dilation, c = (c_h, c_w) the kernel's centre element; Xp is X padded by P
(with zeros, or as a padding mode fills it), and a read outside Xp counts as zero.  Geometry and output
sizes live in :mod:`handgrad.shapes`.

Layout.  The work is one matrix product per group and pass over the "columns" of the input,
``cols[(c,a,b), (n,i,j)] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]`` (im2col), with the channel axis first:
``Y = W (O x C*kH*kW) @ cols (C*kH*kW x N*H_out*W_out)`` gives Y channel-major, so the returned
(N, O, H_out, W_out) arrays are views of (O, N, H_out, W_out) memory; the next layer reads them as they are.
In this orientation every output is the same dot product in the same order, so identical input patches
give bitwise identical outputs (max-pooling ties stay ties, as in PyTorch).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._checks import as_float_array, check_same_shape, check_shape, positive_int
from ..shapes import Window
from . import padding as padding_modes
from ._scratch import chunks, scratch, zeroed


class Conv2DCache(NamedTuple):
    x: np.ndarray  # (N, C, H, W): the input (padded, for a padding mode); columns are rebuilt from it
    w: np.ndarray  # (O, C/G, kH, kW): the kernel as cross-correlated (flipped when mode="conv")
    has_bias: bool
    window: Window  # the window on x (no padding left when a padding mode padded x already)
    groups: int
    padding_mode: str
    sides: tuple  # the padding a padding mode applied, for its adjoint
    x_shape: tuple  # the input's shape before any padding mode
    y_shape: tuple
    rows: Rows | None  # the flat layout of stride 1; None for other strides
    chunks: list  # slices of the batch, each with columns of at most _scratch.CHUNK_BYTES
    workspace: dict | None  # scratch memory lent by the caller


def im2col(x: np.ndarray, window: Window, out: tuple[int, int], dtype, workspace=None) -> np.ndarray:
    """``cols[c, a, b, n, i, j] = Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]``, zero where that is padding.

    x: (N, C, H, W) -> (C, kH, kW, N, H_out, W_out), one strided copy per kernel cell.
    """
    n, c, h, w = x.shape
    x_c = x.transpose(1, 0, 2, 3)  # (C, N, H, W): free when x is channel-major in memory
    reads = list(window.cell_reads((h, w), out))
    covers = len(reads) == window.kernel[0] * window.kernel[1] and all(
        r[2] == slice(0, out[0]) and r[3] == slice(0, out[1]) for r in reads
    )
    cols = (scratch if covers else zeroed)(workspace, "columns", (c, *window.kernel, n, *out), dtype)
    for a, b, out_rows, out_cols, in_rows, in_cols in reads:
        cols[:, a, b, :, out_rows, out_cols] = x_c[:, :, in_rows, in_cols]
    return cols


class Rows(NamedTuple):
    """Stride-1 geometry of the flat layout: each image a run of rows of length ``R = max(W, W_out)``."""

    length: int  # R
    rows: int  # rows of the buffer: H_out + D_h*(kH - 1), and one spare for the last taps' overrun
    margin: int  # buffer cells before the image (lead_w) and after it (D_w*(kW - 1) + 1)
    tail: int
    shifts: list  # flat offset of each kernel cell (a, b): D_h*a*R + D_w*b - lead_w
    masks: list  # (b, columns j < W_out whose read for kernel column b wraps into a neighbouring row)


def _rows(window: Window, size: tuple[int, int], out: tuple[int, int]) -> Rows:
    (kh, kw), (dh, dw), lead_w = window.kernel, window.dilation, window.lead[1]
    r = max(size[1], out[1])
    shifts = [dh * a * r + dw * b - lead_w for a in range(kh) for b in range(kw)]
    masks = []
    for b in range(kw):  # output column j reads column j + D_w*b - lead_w, which must lie in [0, R)
        low = min(out[1], max(0, lead_w - dw * b))
        high = max(low, min(out[1], r - dw * b + lead_w))
        wrapped = [j for j in (slice(0, low), slice(high, out[1])) if j.stop > j.start]
        masks += [(b, j) for j in wrapped]
    return Rows(r, out[0] + dh * (kh - 1) + 1, lead_w, dw * (kw - 1) + 1, shifts, masks)


def im2col_rows(x: np.ndarray, window: Window, rows: Rows, out: tuple[int, int], dtype, workspace=None) -> np.ndarray:
    """Stride-1 im2col on rows of length ``R = max(W, W_out)``: ``cols[(c,a,b), (n, i*R + j)]`` reads input
    row ``i + D_h*a - lead_h``, column ``j + D_w*b - lead_w``.

    With each image stored as rows of length R (zero rows above and below for the vertical padding), kernel
    cell (a, b) reads one contiguous run of the flattened image, shifted by ``D_h*a*R + D_w*b - lead_w``, so
    ``cols`` is a single copy with long runs.  A read that leaves its row (horizontal padding) wraps into the
    neighbouring row: those few columns are set to zero.  Output columns ``j >= W_out`` (when R > W_out)
    are junk, dropped from the output and given zero gradient.

    x: (N, C, H, W) -> cols (C*kH*kW, N*H_out*R).
    """
    n, c, h, w = x.shape
    (kh, kw), (dh, dw), lead_h = window.kernel, window.dilation, window.lead[0]
    r = rows.length
    # (C, N, margin + rows*R + tail) with the image's row y at buffer row y + lead_h
    flat = zeroed(workspace, "image rows", (c, n, rows.margin + rows.rows * r + rows.tail), dtype)
    image = flat[:, :, rows.margin : rows.margin + rows.rows * r].reshape(c, n, rows.rows, r)
    visible = max(0, min(h, rows.rows - lead_h))
    image[:, :, lead_h : lead_h + visible, :w] = x.transpose(1, 0, 2, 3)[:, :, :visible]
    item, run = flat.itemsize, out[0] * r
    strides = (flat.strides[0], dh * r * item, dw * item, flat.strides[1], item)
    taps = as_strided(flat, (c, kh, kw, n, run), strides)
    cols = scratch(workspace, "columns", (c * kh * kw, n * run), dtype)
    np.copyto(cols.reshape(taps.shape), taps)  # a copy: the taps overlap in memory
    _zero_wrapped(cols, rows, window.kernel, n, out)
    return cols


def _zero_wrapped(cols: np.ndarray, rows: Rows, kernel: tuple[int, int], n: int, out: tuple[int, int]) -> None:
    """Zero the columns whose reads wrapped into a neighbouring row (horizontal padding), in place."""
    if rows.masks:
        c = cols.shape[0] // (kernel[0] * kernel[1])
        grid = cols.reshape(c, kernel[0], kernel[1], n, out[0], rows.length)
        for b, columns in rows.masks:
            grid[:, :, b, :, :, columns] = 0


def col2im_rows(dcols, window: Window, rows: Rows, out: tuple[int, int], dx_c: np.ndarray, workspace=None) -> None:
    """The adjoint of :func:`im2col_rows`: kernel cell (a, b)'s run added back at its shift.

    dcols: (C*kH*kW, N*H_out*R), zero in junk columns; the result is written into dx_c (C, N, H, W).
    """
    n, size = dx_c.shape[1], dx_c.shape[2:]
    (kh, kw), lead_h = window.kernel, window.lead[0]
    c, r, run = dcols.shape[0] // (kh * kw), rows.length, out[0] * rows.length
    _zero_wrapped(dcols, rows, window.kernel, n, out)  # wrapped reads were zeros: no gradient flows back
    taps = dcols.reshape(c, kh * kw, n, run)
    flat = zeroed(workspace, "image rows", (c, n, rows.margin + rows.rows * r + rows.tail), dcols.dtype)
    for k, shift in enumerate(rows.shifts):
        start = rows.margin + shift
        flat[:, :, start : start + run] += taps[:, k]
    image = flat[:, :, rows.margin : rows.margin + rows.rows * r].reshape(c, n, rows.rows, r)
    visible = max(0, min(size[0], rows.rows - lead_h))
    dx_c[:, :, :visible] = image[:, :, lead_h : lead_h + visible, : size[1]]
    dx_c[:, :, visible:] = 0  # input rows past every window


def col2im(dcols: np.ndarray, window: Window, dx_c: np.ndarray) -> None:
    """The adjoint of :func:`im2col`: each column's gradient added back onto the input cell it was read from.

    dcols: (C, kH, kW, N, H_out, W_out); the result is written into dx_c (C, N, H, W).
    """
    out = dcols.shape[4:]
    dx_c.fill(0)
    for a, b, out_rows, out_cols, in_rows, in_cols in window.cell_reads(dx_c.shape[2:], tuple(out)):
        dx_c[:, :, in_rows, in_cols] += dcols[:, a, b, :, out_rows, out_cols]


def conv2d_forward(
    x,
    w,
    b=None,
    stride=1,
    padding=0,
    mode="xcorr",
    center=None,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    workspace=None,
):
    """Convolve a batch of images.

    Cross-correlation, ``mode="xcorr"``::

        Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, g(o)+c, i*S_h + D_h*(a - c_h), j*S_w + D_w*(b - c_w)]

    True convolution, ``mode="conv"`` (the kernel flipped about its centre element)::

        Y[n,o,i,j] = B[o] + sum_{c,a,b} W[o,c,a,b] * Xp[n, g(o)+c, i*S_h - D_h*(a - c_h), j*S_w - D_w*(b - c_w)]

    ``c`` runs over the C/G input channels of output channel o's group, which start at ``g(o) = (o // (O/G)) * C/G``
    (``groups=1``: all channels; ``groups=C``: depthwise).  Output size, whatever the centre:
    ``H_out = floor((H + P0 + P1 - D_h*(kH - 1) - 1) / S_h) + 1``, likewise ``W_out``.

    Both modes are computed as a cross-correlation through the identity
    ``conv(W, centre c) == xcorr(W[..., ::-1, ::-1], centre K-1-c)``; cross-correlation with centre
    (0, 0) is PyTorch's ``conv2d``.  With ``Xq[u, v] = Xp[u - D_h*c_h, v - D_w*c_w]`` each group is the matrix
    product ``Y[o, (n,i,j)] = sum_{(c,a,b)} W[o, (c,a,b)] * cols[(c,a,b), (n,i,j)] + B[o]``.

    Args:
        x: (N, C, H, W) input.
        w: (O, C/G, kH, kW) kernel.
        b: (O,) bias, one per feature map, or None.
        stride, center, dilation: an int or a pair ``(h, w)``; ``center=None`` is (0, 0), the top-left cell.
        padding: an int or a pair (both sides), ``((top, bottom), (left, right))``, ``"valid"`` (none) or
            ``"same"`` (stride 1: the output keeps the input's size; an odd total puts the extra cell after).
        mode: ``"xcorr"`` or ``"conv"``.
        groups: G, dividing both C and O.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (see :mod:`.padding`);
            reads beyond the padded input (a far centre) still count as zero.
        workspace: a dict kept between calls (by a layer) from which temporaries are reused; optional.

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
    if padding_mode not in padding_modes.PADDING_MODES:
        raise ValueError(f"{where}: padding_mode must be one of {padding_modes.PADDING_MODES}, got {padding_mode!r}")
    window = Window.of(w.shape[2:], stride, padding, mode, center, where, dilation)
    out = window.output_size(*x.shape[2:], where)
    dtype = np.dtype(np.result_type(x, w))
    x_shape, sides = x.shape, window.padding
    if padding_mode != "zeros":  # pad explicitly; the window then reads Xp with no padding of its own
        padding_modes.check(x.shape[2:], sides, padding_mode, where)
        x = padding_modes.pad(x, sides, padding_mode)
        window = Window(window.kernel, window.stride, ((0, 0), (0, 0)), window.center, window.mode, window.dilation)

    if window.mode == "conv":
        # conv(W, c) == xcorr(rot180(W), K-1-c); cell_reads already uses K-1-c.  Contiguous once, so
        # that every chunk and the backward pass reshape it for free.
        w = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    o, n = w.shape[0], x.shape[0]
    rows = _rows(window, x.shape[2:], out) if window.stride == (1, 1) else None
    run = out[0] * (rows.length if rows else out[1])  # columns per image
    batches = chunks(n, x.shape[1] * w[0, 0].size * run * dtype.itemsize)  # columns per image, in bytes
    y = np.empty((o, n * run), dtype=dtype)
    for batch in batches:
        cols = _columns(x[batch], window, rows, out, dtype, workspace)  # (C*kH*kW, batch*run)
        for w_g, cols_g, y_g in _groups(w, cols, y[:, batch.start * run : batch.stop * run], groups):
            np.matmul(w_g, cols_g, out=y_g)
    if b is not None:
        y += b[:, None]
    y = y.reshape(o, n, out[0], -1)[:, :, :, : out[1]].transpose(1, 0, 2, 3)  # (N, O, H_out, W_out)
    cache = Conv2DCache(
        x, w, b is not None, window, groups, padding_mode, sides, x_shape, y.shape, rows, batches, workspace
    )
    return y, cache


def _groups(w: np.ndarray, cols: np.ndarray, y: np.ndarray, groups: int):
    """Per group: its kernel rows (O/G, C/G*kH*kW), its column rows (C/G*kH*kW, ...) and its output rows."""
    o, k = w.shape[0] // groups, w[0].size
    w2 = w.reshape(w.shape[0], -1)
    return [(w2[g * o : (g + 1) * o], cols[g * k : (g + 1) * k], y[g * o : (g + 1) * o]) for g in range(groups)]


def conv2d_backward(dy, cache: Conv2DCache, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward`, as the derivation gives them::

        dB[o]        = sum_{n,i,j} dY[n,o,i,j]                                   (one bias per feature map)
        dW[o,c,a,b]  = sum_{n,i,j} dY[n,o,i,j] * Xq[n, c, i*S_h + D_h*a, j*S_w + D_w*b]   (X correlated with dY)
        dXq[n,c,u,v] = sum_{o,a,b} Dp[n,o,u + D_h*a, v + D_w*b] * W[o, c, kH-1-a, kW-1-b]

    (with groups, c and o run over one group's channels).  The last line is the *full* correlation of the
    stride-dilated gradient ``D`` (dY with ``S - 1`` zeros between neighbours; ``Dp`` is ``D`` padded by
    ``D*(K - 1)``) with the 180-degree rotated kernel.  Only the cells of ``D`` that hold a gradient
    contribute, so it is computed as the sum over kernel cells (a, b) of ``sum_o W[o, c, a, b] * dY[n, o, i, j]``
    added onto input cell ``(i*S_h + D_h*a, j*S_w + D_w*b)``: the matrix product ``dcols = W^T dY`` and
    :func:`col2im`.  (:mod:`handgrad.reference.derivation` computes it
    literally, dilation and padding included; the tests hold both to the loops.)  Input cells that no
    window reads get zero.  For ``mode="conv"`` the kernel was flipped, so dW is flipped back.

    Args:
        dy: (N, O, H_out, W_out) gradient of the loss with respect to Y.
        cache: from :func:`conv2d_forward`.
        input_grad: False skips dX (for a first layer, whose input needs no gradient) and returns None for it.

    Returns:
        dx (N, C, H, W) or None, dw (O, C/G, kH, kW), db (O,) or None when the forward had no bias.
    """
    where = "conv2d_backward"
    dy = as_float_array(dy, "dy", where)
    check_same_shape(dy, cache.y_shape, "dy", where)
    (n, c, *size), (_, o, *out) = cache.x.shape, cache.y_shape
    window, rows, dtype = cache.window, cache.rows, np.result_type(cache.x, cache.w)
    dy_c = dy.transpose(1, 0, 2, 3)  # (O, N, H_out, W_out): free when dy is channel-major
    if cache.rows is None or cache.rows.length == out[1]:
        dy2 = dy_c.reshape(o, -1)  # (O, N*H_out*W_out)
    else:
        dy2 = zeroed(cache.workspace, "dy rows", (o, n, out[0], cache.rows.length), dy.dtype)  # junk gets zero
        dy2[..., : out[1]] = dy_c
        dy2 = dy2.reshape(o, -1)  # (O, N*H_out*R)

    db = dy2.sum(axis=1) if cache.has_bias else None  # junk columns hold zeros
    run = dy2.shape[1] // n
    dw = np.zeros(cache.w.shape, dtype=dtype)
    dx_c = np.empty((c, n, *size), dtype=dtype) if input_grad else None
    for batch in cache.chunks:
        cols = _columns(cache.x[batch], window, rows, tuple(out), dtype, cache.workspace)  # rebuilt, not kept
        block = dy2[:, batch.start * run : batch.stop * run]
        # dcols may take the buffer of cols: each group reads its cols rows before writing its dcols rows
        dcols = scratch(cache.workspace, "columns", cols.shape, dtype) if input_grad else None
        for g, (w_g, cols_g, dy_g) in enumerate(_groups(cache.w, cols, block, cache.groups)):
            dw_g = dw.reshape(cache.groups, -1, w_g.shape[1])[g]  # (O/G, C/G*kH*kW), a view into dw
            dw_g += dy_g @ cols_g.T  # X correlated with dY
            if input_grad:
                rows_g = slice(g * w_g.shape[1], (g + 1) * w_g.shape[1])
                np.matmul(w_g.T, dy_g, out=dcols[rows_g])
        if input_grad:
            _columns_to_input(dcols, window, rows, tuple(out), dx_c[:, batch], cache.workspace)
    if window.mode == "conv":
        dw = np.ascontiguousarray(dw[:, :, ::-1, ::-1])
    dx = None
    if input_grad:
        dx = dx_c.transpose(1, 0, 2, 3)
        if cache.padding_mode != "zeros":  # each padded cell hands its gradient back to the cell it copied
            dx = padding_modes.pad_adjoint(dx, cache.sides, cache.padding_mode, cache.x_shape[2:])
    return dx, dw, db


def _columns(x: np.ndarray, window: Window, rows: Rows | None, out: tuple[int, int], dtype, workspace) -> np.ndarray:
    """im2col for the stride at hand: (C*kH*kW, N*H_out*R) for stride 1, (C*kH*kW, N*H_out*W_out) otherwise."""
    if rows is not None:
        return im2col_rows(x, window, rows, out, dtype, workspace)
    return im2col(x, window, out, dtype, workspace).reshape(-1, x.shape[0] * out[0] * out[1])


def _columns_to_input(dcols: np.ndarray, window: Window, rows: Rows | None, out, dx_c, workspace) -> None:
    """col2im for the stride at hand, written into dx_c (C, N, H, W)."""
    if rows is not None:
        col2im_rows(dcols, window, rows, out, dx_c, workspace)
    else:
        c, n = dx_c.shape[:2]
        col2im(dcols.reshape(c, *window.kernel, n, *out), window, dx_c)
