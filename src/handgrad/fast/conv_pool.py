"""A stride-1 convolution and the max-pooling whose windows tile its output, as one product: forward and backward.

Notation as in :mod:`.conv` and :mod:`.pool`: X (N, C, H, W) input, W (O, C, kH, kW) kernel as cross-correlated
(flipped for ``mode="conv"``), B (O,) bias, ``Y[n,o,y,x] = B[o] + sum_{c,i,j} W[o,c,i,j] * Xq[n,c,y+i,x+j]``
(N, O, H_out, W_out), with Xq the input as the window reads it (``Xq[n,c,u,v] = X[n,c,u-lead_h,v-lead_w]``, zero
outside X); then ``P = maxpool(max(Y, F))`` over s_h x s_w windows that tile Y (F the floor: 0 for a ReLU in
between, none without), (N, O, H_p, W_p) with ``H_p = floor(H_out / s_h)``.

Derivation.  Pooling window (p, q) covers the output cells ``(s_h*p + a, s_w*q + b)``, one per phase (a, b).
Substituting ``u = a + i``, ``v = b + j``::

    Y[n, o, s_h*p + a, s_w*q + b] = B[o] + sum_{c,u,v} W'[a,b,o,c,u,v] * Xq[n, c, s_h*p + u, s_w*q + v]
    W'[a,b,o,c,u,v] = W[o, c, u - a, v - b]      (zero where u - a or v - b is not a kernel cell)

Every phase is the same stride-s read of Xq with its own widened kernel, so one product of the stacked W'
(s_h*s_w*O x C*U*V) with the columns ``X2[(c,u,v), (p,q,n)] = Xq[n, c, s_h*p + u, s_w*q + v]`` gives every output
cell the pooling keeps, phase by phase: each window's cells lie in s_h*s_w contiguous planes, and the pooling
is a maximum over planes.  Backward, with ``G[a,b,o,(p,q,n)] = dP[n,o,p,q] * [window (p, q)'s winner is (a, b)]``
(and ``[P > F]`` with a floor), the derivative of ``Y`` in each phase::

    dW'[a,b,o,c,u,v] = sum_{p,q,n} G[a,b,o,(p,q,n)] * X2[(c,u,v), (p,q,n)]
    dW[o,c,i,j]      = sum_{a,b} dW'[a,b,o,c,i+a,j+b]            dB[o] = sum_{a,b,p,q,n} G[a,b,o,(p,q,n)]
    dX2              = W'^T G, added back onto the input cells the columns read (col2im)

Cost.  W' has ``(kH + s_h - 1)*(kW + s_w - 1) / (kH*kW)`` times W's weights (1.44 for 5x5 kernels and 2x2
windows): the products do that much more arithmetic, on the other hand the columns are that much smaller than
the separate convolution's times s_h*s_w (2.8 times smaller), and the pooling compares and routes contiguous
planes.  It pays where the products are small beside that memory work: a convolution of one input channel.

Columns.  With ``u = s_h*d_u + f_h`` (and v likewise), ``Xq[s_h*(p + d_u) + f_h] = Xf[f_h][p + d_u]``: the
columns are a stride-1 read of the s_h*s_w phase images ``Xf[c, f_h, f_w, y, x] = Xq[c, s_h*y + f_h, s_w*x +
f_w]``, one contiguous run of W_p*N values per (channel, phase, tap, output row), as in :func:`.conv.im2col_rows`.

Order of the sums.  The columns' rows run over (c, u, v) in row-major order, so the taps of every phase come in
the order of W's (c, i, j), the zeros between them adding nothing: each cell the pooling keeps has the value of
the separate convolution's cell when every read is finite.  A zero weight times an infinite or NaN input is NaN
where the separate convolution has none, and the output cells that no pooling window reads, which the one product
never forms, would take the separate layers' gradient of W (0 times an infinite input) to NaN where this one's
stays finite.  So an input, weight or bias that is not finite gets the separate layers' results
(:func:`_separately`), and so does a pooled output with a NaN (sums that overflow to inf - inf: max-pooling lets
a NaN win its window).  Backward, dW and dB sum the separate layers' products (dP times 0 or 1, times the same
finite inputs), whatever dP holds; dX sums the widened kernel's zeros times G, so for dX a gradient that is not
finite takes the separate layers too.

Layout.  Images are (C, H, W, N) in memory, batch innermost (:mod:`._layout`); P comes back as an (N, O, H_p,
W_p) view of (O, H_p, W_p, N) memory, as from :func:`.pool.maxpool2d_forward`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._checks import as_float_array, check_same_shape, check_shape
from ..shapes import Window, _output_size
from ._layout import batch_innermost, to_nchw
from ._scratch import scratch, stamp, untouched, zeroed
from .conv import _correlated, conv2d_backward, conv2d_forward
from .pool import (
    MaxPool2DCache,
    _above_floor,
    _cell_dtype,
    _track_maxima,
    maxpool2d_backward,
    maxpool2d_forward,
    windows_tile,
)


class PhaseGeometry(NamedTuple):
    """The geometry of a convolution with tiling pooling windows after it, taken as one product."""

    windows: tuple[int, int]  # (s_h, s_w): the pooling windows, and the phases of each
    taps: tuple[int, int]  # (E_h, E_w): rows and columns of each phase image a pooling window reads
    out: tuple[int, int]  # (H_p, W_p): the pooled output
    size: tuple[int, int]  # (H_out, W_out): the convolution's output

    @property
    def image(self) -> tuple[int, int]:
        """(H_p + E_h - 1, W_p + E_w - 1): the size of each phase image."""
        return (self.out[0] + self.taps[0] - 1, self.out[1] + self.taps[1] - 1)

    @property
    def span(self) -> tuple[int, int]:
        """(U, V) = (s_h*E_h, s_w*E_w): the widened kernel, at least ``(kH + s_h - 1, kW + s_w - 1)``."""
        return (self.windows[0] * self.taps[0], self.windows[1] * self.taps[1])


def fusable(conv: Window, pool: Window, size: tuple[int, int], groups: int = 1, padding_mode: str = "zeros") -> bool:
    """Whether a convolution with window ``conv`` on an input of ``size`` and the pooling window ``pool`` after it
    can run as one product: stride 1, no dilation, one group, zero padding, and pooling windows that tile the
    convolution's output (stride = window, no dilation, no padding, no window past the output)."""
    return _fusable(conv, pool, tuple(size), groups, padding_mode)


@functools.lru_cache(maxsize=64)  # windows are immutable, and layers ask at every step
def _fusable(conv: Window, pool: Window, size: tuple[int, int], groups: int, padding_mode: str) -> bool:
    if conv.stride != (1, 1) or conv.dilation != (1, 1) or groups != 1 or padding_mode != "zeros":
        return False
    out = _output_size(conv, *size)
    if out is None:
        return False
    pooled = _output_size(pool, *out)
    return pooled is not None and min(pooled) > 0 and windows_tile(pool, out, pooled)


@functools.lru_cache(maxsize=64)
def phases(conv: Window, pool: Window, size: tuple[int, int]) -> PhaseGeometry:
    """The :class:`PhaseGeometry` of a fusable convolution and pooling (see :func:`fusable`) on an input of ``size``
    (a tuple)."""
    out = conv.output_size(*size)
    windows = pool.kernel
    taps = tuple(-(-(k + s - 1) // s) for k, s in zip(conv.kernel, windows))  # ceil((k + s - 1) / s)
    return PhaseGeometry(windows, taps, pool.output_size(*out), out)


class ConvPoolCache(NamedTuple):
    x_c: np.ndarray  # (C, H, W, N): the input
    w: np.ndarray  # (O, C, kH, kW): the kernel as cross-correlated
    b: np.ndarray | None
    conv: Window
    pool: Window
    geometry: PhaseGeometry
    floor: float | None
    route: np.ndarray | None  # (O, H_p, W_p, N): the winning phase a*s_w + b, minus s_h*s_w where none flows
    columns: np.ndarray | None  # X2 and a row of ones for the bias, in scratch memory (see mark)
    mark: int | None  # the workspace's stamp when the columns were written
    workspace: dict | None
    separate: tuple | None = None  # (conv cache, pool cache) when the separate layers computed the result

    def pooling_cache(self) -> MaxPool2DCache:
        """The cache a max-pooling layer would have kept: its winners (``indices``) and its backward pass."""
        if self.separate is not None:
            return self.separate[1]
        size = self.geometry.size
        return MaxPool2DCache(to_nchw(self.route), self.pool, (self.x_c.shape[3], self.w.shape[0], *size))


def conv2d_maxpool2d_forward(x, w, b, conv: Window, pool: Window, floor=None, workspace=None):
    """``maxpool2d(max(conv2d(x, w, b), floor))`` for a fusable convolution and pooling (:func:`fusable`), as one
    product over the pooling windows' phases (see the module's derivation).

    Args:
        x: (N, C, H, W); w: (O, C, kH, kW) in the convention of ``conv.mode``; b: (O,) or None.
        conv, pool: the windows of :func:`.conv.conv2d_forward` and :func:`.pool.maxpool2d_forward`.
        floor: as for max-pooling: 0 pools ``relu(Y)``; None pools Y.
        workspace: a dict kept between calls from which temporaries are reused; optional.

    Returns:
        P (N, O, H_p, W_p), a view of (O, H_p, W_p, N) memory, and the cache for :func:`conv2d_maxpool2d_backward`.
    """
    where = "conv2d_maxpool2d"
    x, w = as_float_array(x, "x", where), as_float_array(w, "w", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    check_shape(w, 4, "(O, C, kH, kW)", "w", where)
    if w.shape[2:] != conv.kernel or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"{where}: w must be (O, {x.shape[1]}, {conv.kernel[0]}, {conv.kernel[1]}) for x of shape {x.shape} "
            f"and the window's kernel, got {w.shape}"
        )
    if b is not None:
        b = as_float_array(b, "b", where)
        check_same_shape(b, (w.shape[0],), "b", where)
    if not fusable(conv, pool, x.shape[2:]):
        raise ValueError(f"{where}: this convolution and pooling do not run as one product (see fusable)")
    if conv.mode == "conv":
        w = np.ascontiguousarray(w[:, :, ::-1, ::-1])  # as cross-correlated; conv.lead already uses K-1-c
    if not x.size or not all(_finite(a) for a in (x, w, b) if a is not None):  # 0 * inf: the Order of the sums
        return _separately(x, w, b, conv, pool, floor, workspace)
    geometry, dtype = phases(conv, pool, x.shape[2:]), np.dtype(np.result_type(x, w))
    x_c, mark = batch_innermost(x), stamp(workspace)
    columns = _phase_columns(x_c, conv.lead, geometry, dtype, workspace, ones=b is not None)
    (s_h, s_w), (o, n) = geometry.windows, (w.shape[0], x.shape[0])
    planes = scratch(workspace, "phase outputs", (s_h * s_w, o, *geometry.out, n), dtype)
    np.matmul(_widened(w, b, geometry), columns, out=planes.reshape(s_h * s_w * o, -1))
    pooled, route = _phase_maxima(planes, floor)
    if np.isnan(pooled.max()):  # inf - inf from sums that overflow: a NaN wins its window, as max-pooling has it
        return _separately(x, w, b, conv, pool, floor, workspace)
    cache = ConvPoolCache(x_c, w, b, conv, pool, geometry, floor, route, columns, mark, workspace)
    return to_nchw(pooled), cache


def conv2d_maxpool2d_backward(dy, cache: ConvPoolCache, input_grad: bool = True):
    """Gradients of :func:`conv2d_maxpool2d_forward`: each window's dP to the phase of its winner (G), then the
    convolution's gradients from G phase by phase (see the module's derivation).

    Args:
        dy: (N, O, H_p, W_p), the gradient of the loss with respect to P.
        input_grad: False skips dX (a first layer) and returns None for it.

    Returns:
        dx (N, C, H, W) or None, dw (O, C, kH, kW) in the convention of the convolution's mode, db (O,) or None.
    """
    where = "conv2d_maxpool2d_backward"
    dy = as_float_array(dy, "dy", where)
    geometry, x_c, w = cache.geometry, cache.x_c, cache.w
    n, o, (s_h, s_w) = x_c.shape[3], w.shape[0], geometry.windows
    check_same_shape(dy, (n, o, *geometry.out), "dy", where)
    if cache.separate is None and input_grad and not _finite(dy):  # dX would sum 0 * inf: Order of the sums
        cache = _separately(to_nchw(x_c), w, cache.b, cache.conv, cache.pool, cache.floor, None)[1]
    if cache.separate is not None:
        conv_cache, pool_cache = cache.separate
        return conv2d_backward(maxpool2d_backward(dy, pool_cache), conv_cache, input_grad)
    workspace, dtype = cache.workspace, np.dtype(np.result_type(x_c, w))
    ones = cache.b is not None
    columns = cache.columns if untouched(workspace, cache.mark, "phase columns") else None
    stamp(workspace)
    if columns is None:
        columns = _phase_columns(x_c, cache.conv.lead, geometry, dtype, workspace, ones)
    # G: each window's dP to the phase that won it (route < 0: nothing flows), as dP times [route == k], the
    # comparison written as 0.0 and 1.0 straight into G (a multiplication by a bool array converts it first)
    routed = scratch(workspace, "window gradients", (s_h * s_w, o, *geometry.out, n), dtype)
    np.equal(cache.route, _phase_numbers(s_h * s_w, cache.route.dtype), out=routed)
    np.multiply(routed, batch_innermost(dy), out=routed)
    g = routed.reshape(s_h * s_w * o, -1)
    dww = _correlated(g, columns)  # (s_h*s_w*O, C*U*V [+ 1])
    dw, db = _folded(dww, w.shape, geometry, ones)
    if cache.conv.mode == "conv":
        dw = np.ascontiguousarray(dw[:, :, ::-1, ::-1])
    dx = None
    if input_grad:
        widened = _widened(w, None, geometry)
        dcols = scratch(workspace, "column gradients", (widened.shape[1], g.shape[1]), dtype)
        np.matmul(widened.T, g, out=dcols)
        dx = to_nchw(_phase_columns_to_input(dcols, x_c.shape, cache.conv.lead, geometry, workspace))
    return dx, dw, db


def _finite(a: np.ndarray) -> bool:
    """Whether every value of ``a`` is finite: its maximum catches NaN and +inf, its minimum -inf (two passes
    that allocate nothing, where ``np.isfinite(a).all()`` writes a mask)."""
    return bool(np.isfinite(a.max()) and np.isfinite(a.min()))


@functools.lru_cache(maxsize=16)
def _phase_numbers(count: int, dtype) -> np.ndarray:
    """``k`` along the first of five axes, for comparing routes (O, H_p, W_p, N) with every phase at once."""
    numbers = np.arange(count, dtype=dtype).reshape(count, 1, 1, 1, 1)
    numbers.flags.writeable = False  # shared by every call
    return numbers


def _separately(x, w, b, conv: Window, pool: Window, floor, workspace):
    """The result of the two layers run one after the other (w as cross-correlated), with a cache that backs
    through both."""
    y, conv_cache = conv2d_forward(x, w if conv.mode == "xcorr" else w[:, :, ::-1, ::-1], b, conv)
    pooled, pool_cache = maxpool2d_forward(y, pool, True, floor, workspace)
    geometry = phases(conv, pool, x.shape[2:])
    cache = ConvPoolCache(
        batch_innermost(x),
        conv_cache.w,
        b,
        conv,
        pool,
        geometry,
        floor,
        route=None,
        columns=None,
        mark=None,
        workspace=None,
        separate=(conv_cache, pool_cache),
    )
    return pooled, cache


def _widened(w: np.ndarray, b: np.ndarray | None, geometry: PhaseGeometry) -> np.ndarray:
    """The stacked kernels of the phases, ``W'[(a,b,o), (c,u,v)] = W[o, c, u - a, v - b]`` (zero elsewhere), and
    the bias of every phase as a last column: (s_h*s_w*O, C*U*V [+ 1])."""
    o, c, kh, kw = w.shape
    (s_h, s_w), (u, v) = geometry.windows, geometry.span
    wide = np.zeros((s_h, s_w, o, c * u * v + (b is not None)), dtype=w.dtype)
    cells = wide[..., : c * u * v].reshape(s_h, s_w, o, c, u, v)
    for a in range(s_h):
        for b_ in range(s_w):
            cells[a, b_, :, :, a : a + kh, b_ : b_ + kw] = w
    if b is not None:
        wide[..., -1] = b
    return wide.reshape(s_h * s_w * o, -1)


def _folded(dww: np.ndarray, shape: tuple, geometry: PhaseGeometry, ones: bool):
    """dW and dB from the widened kernels' gradient: ``dW[o,c,i,j] = sum_{a,b} dW'[(a,b,o), (c,i+a,j+b)]``, and
    ``dB[o] = sum_{a,b} dW'[(a,b,o), bias]``."""
    o, c, kh, kw = shape
    (s_h, s_w), (u, v) = geometry.windows, geometry.span
    cells = dww[:, : c * u * v].reshape(s_h, s_w, o, c, u, v)
    dw = np.zeros(shape, dtype=dww.dtype)
    for a in range(s_h):
        for b in range(s_w):
            dw += cells[a, b, :, :, a : a + kh, b : b + kw]
    db = dww[:, -1].reshape(s_h * s_w, o).sum(axis=0) if ones else None
    return dw, db


@functools.lru_cache(maxsize=64)  # the same few geometries at every step
def _phase_reads(lead: tuple[int, int], geometry: PhaseGeometry, size: tuple[int, int]) -> tuple:
    """For each phase (f_h, f_w): the cells of its image that hold input cells, and those input cells, as slices:
    ``Xf[f_h, f_w, y, x] = X[s_h*y + f_h - lead_h, s_w*x + f_w - lead_w]`` (phase cells outside X hold zeros)."""
    reads = []
    for f_h in range(geometry.windows[0]):
        for f_w in range(geometry.windows[1]):
            image, source = [], []
            for f, s, lead_, n_image, n_in in zip((f_h, f_w), geometry.windows, lead, geometry.image, size):
                first = max(0, -(-(lead_ - f) // s))  # the first phase cell at or after input cell 0
                start = s * first + f - lead_  # the input cell it holds
                count = max(0, min(n_image - first, -(-(n_in - start) // s)))
                image.append(slice(first, first + count))
                source.append(slice(start, start + s * (count - 1) + 1, s))
            if image[0].stop > image[0].start and image[1].stop > image[1].start:
                reads.append((f_h, f_w, tuple(image), tuple(source)))
    return tuple(reads)


def _phase_columns(x_c: np.ndarray, lead, geometry: PhaseGeometry, dtype, workspace, ones: bool) -> np.ndarray:
    """``X2[(c,u,v), (p,q,n)] = Xq[n, c, s_h*p + u, s_w*q + v]`` (and a row of ones), (C*U*V [+ 1], H_p*W_p*N):
    the phase images first, then one strided copy of their taps (see the module's Columns)."""
    c, h, w, n = x_c.shape
    (s_h, s_w), (e_h, e_w), (h_p, w_p), (h_f, w_f) = geometry.windows, geometry.taps, geometry.out, geometry.image
    images = zeroed(workspace, "phase images", (c, s_h, s_w, h_f, w_f, n), dtype)
    for f_h, f_w, (rows, cols), (in_rows, in_cols) in _phase_reads(lead, geometry, (h, w)):
        images[:, f_h, f_w, rows, cols] = x_c[:, in_rows, in_cols]
    k = c * s_h * e_h * s_w * e_w
    columns = scratch(workspace, "phase columns", (k + ones, h_p * w_p * n), dtype)
    item, row = images.itemsize, w_f * n  # values per phase-image row
    steps = (images.strides[0], row * item, images.strides[1], n * item, images.strides[2], row * item, item)
    taps = as_strided(images, (c, e_h, s_h, e_w, s_w, h_p, w_p * n), steps)  # [c, d_u, f_h, d_v, f_w, p, (q, n)]
    np.copyto(columns[:k].reshape(taps.shape), taps)  # a copy: the taps overlap in memory
    if ones:
        columns[k] = 1
    return columns


def _phase_columns_to_input(dcols: np.ndarray, x_shape: tuple, lead, geometry: PhaseGeometry, workspace) -> np.ndarray:
    """The adjoint of :func:`_phase_columns`: each column's gradient added onto its phase-image cell (one add per tap
    (d_u, d_v), all channels and phases at once), then each phase cell's sum handed to its input cell: dX,
    (C, H, W, N)."""
    c, h, w, n = x_shape
    (s_h, s_w), (e_h, e_w), (h_p, w_p), (h_f, w_f) = geometry.windows, geometry.taps, geometry.out, geometry.image
    images = zeroed(workspace, "phase image gradients", (c, s_h, s_w, h_f, w_f, n), dcols.dtype)
    taps = dcols.reshape(c, e_h, s_h, e_w, s_w, h_p, w_p, n)
    for d_u in range(e_h):
        for d_v in range(e_w):
            images[:, :, :, d_u : d_u + h_p, d_v : d_v + w_p] += taps[:, d_u, :, d_v]
    dx_c = np.zeros(x_shape, dtype=dcols.dtype)  # input cells no pooling window reads get zero
    for f_h, f_w, (rows, cols), (in_rows, in_cols) in _phase_reads(lead, geometry, (h, w)):
        dx_c[:, in_rows, in_cols] = images[:, f_h, f_w, rows, cols]
    return dx_c


def _phase_maxima(planes: np.ndarray, floor):
    """The maximum over the phases (s_h*s_w, O, H_p, W_p, N), from the floor if there is one, and the phase that
    won it (ties to the first, as max-pooling's; :func:`.pool._above_floor` marks windows that pass nothing on)."""
    best = np.empty(planes.shape[1:], dtype=planes.dtype)
    cell = np.zeros(best.shape, dtype=_cell_dtype((len(planes), 1)))
    _track_maxima(planes, best, cell, floor)
    return best, cell if floor is None else _above_floor(cell, best, floor, len(planes))
