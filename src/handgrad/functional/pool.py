"""2-D max-pooling with the window placement of :mod:`handgrad.functional.conv`: forward and backward.

Notation: X (N, C, H, W) input, Y (N, C, H_out, W_out) output, K window, S stride, P padding,
c = (c_h, c_w) the window's centre element.  Padding and reads outside the padded input count as
minus infinity, so they never win.  Both passes loop over the K*K window cells, each step a whole-batch
operation on output-sized arrays, so nothing is copied window by window.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape
from ..shapes import Window
from ._layout import batch_innermost, to_nchw
from ._scratch import chunks, scratch
from ._ufuncs import at_least


class MaxPool2DCache(NamedTuple):
    route: np.ndarray | None  # (N, C, H_out, W_out): the window cell a*kW + b whose input gets the window's
    # gradient, or that cell - kH*kW where none flows (with a floor, a maximum not above it); None until needed
    window: Window
    x_shape: tuple
    x: np.ndarray | None = None  # the input, kept when the winners were not tracked (winners=False)
    floor: float | None = None  # the maxima were those of max(X, floor)

    def routes(self) -> np.ndarray:
        """``route``, computed from the kept input if the forward pass did not track it."""
        if self.route is not None:
            return self.route
        return maxpool2d_window_forward(self.x, self.window, floor=self.floor)[1].route

    @property
    def indices(self) -> np.ndarray:
        """``h*W + w`` of each window's winning input cell (PyTorch's ``return_indices``), (N, C, H_out, W_out)."""
        cell = self.routes() % (self.window.kernel[0] * self.window.kernel[1])
        _, _, h_out, w_out = cell.shape
        w = self.window
        (_, kw), (sh, sw), (dh, dw), (lead_h, lead_w) = w.kernel, w.stride, w.dilation, w.lead
        rows = np.arange(h_out)[:, None] * sh - lead_h + dh * (cell // kw)
        cols = np.arange(w_out)[None, :] * sw - lead_w + dw * (cell % kw)
        return rows * self.x_shape[3] + cols


def _pooled(x, window: Window, where: str):
    """The checked input of a pooling and its output size."""
    x = as_float_array(x, "x", where)
    check_shape(x, 4, "(N, C, H, W)", "x", where)
    return x, window.pooled_size(*x.shape[2:], where)


def maxpool2d_forward(
    x,
    kernel_size,
    stride=None,
    padding=0,
    mode="xcorr",
    center=None,
    dilation=1,
    ceil_mode=False,
    winners=True,
    floor=None,
    workspace=None,
):
    """Max-pool a batch of images and remember where each maximum came from.

    ::

        Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h + D_h*(a - c_h), j*S_w + D_w*(b - c_w)]     (mode="xcorr")
        Y[n,c,i,j] = max_{a,b} Xp[n, c, i*S_h - D_h*(a - c_h), j*S_w - D_w*(b - c_w)]     (mode="conv")

    Output size ``H_out = floor((H + P0 + P1 - D_h*(kH - 1) - 1) / S_h) + 1`` (``ceil`` with ``ceil_mode``,
    PyTorch's rule); ``stride=None`` means the window size.
    Both modes take the maximum over the same cells as the cross-correlation window with centre K-1-c,
    visited in row-major order of the input; a later cell wins only when it is strictly greater, so ties go
    to the first cell in row-major order, as in PyTorch.  A window whose input cells are all -inf keeps its
    first input cell.  The cache's ``indices`` give the winners as ``h*W + w``.

    With a floor F the function is ``Y = maxpool(max(X, F))`` (``F = 0``: max-pooling of ReLU(X)), with the
    maxima, winners and ties of max-pooling ``max(X, F)``.  Its derivative is that of the pooling times that
    of ``max(x*, F)`` at the winner x*, ``[x* > F]``, and ``x* > F`` exactly where ``Y > F``: a window whose
    maximum is not above the floor passes no gradient on (nor one that a NaN won, whose ``max(NaN, F)`` is
    NaN; as ``relu`` in PyTorch, whose derivative is ``[x > 0]``).

    Args:
        x: (N, C, H, W).
        kernel_size, stride, padding, center, dilation: an int or a pair ``(h, w)`` (padding as for conv2d).
        mode: ``"xcorr"`` or ``"conv"``.
        ceil_mode: round the output size up; windows running past the padded input read minus infinity there.
        winners: False only takes the maxima (faster, for inference); the cache then keeps ``x`` and the
            winners are found if a backward pass asks for them.
        floor: pool ``max(X, floor)`` instead of X (see above), without forming ``max(X, floor)`` where it
            can: the running maximum starts at the floor (windows that do not tile clamp X first when the
            winners are tracked).
        workspace: a dict kept between calls (by a layer) from which temporaries are reused when the winners
            are tracked (inference takes no scratch: it would only add to the peak); optional.

    Returns:
        y: (N, C, H_out, W_out), a view of (C, H_out, W_out, N) memory, and the cache for
        :func:`maxpool2d_backward`.
    """
    window = Window.pooling(kernel_size, stride, padding, mode, center, "maxpool2d", dilation, ceil_mode)
    return maxpool2d_window_forward(x, window, winners, floor, workspace)


def maxpool2d_window_forward(x, window: Window, winners=True, floor=None, workspace=None):
    """:func:`maxpool2d_forward` with the window's hyper-parameters given as one checked
    :class:`~handgrad.shapes.Window` (a layer builds its window once, see :func:`.conv.conv2d_window_forward`),
    and a ``workspace`` dict from which a layer lends its temporaries from one call to the next (optional)."""
    x, out = _pooled(x, window, "maxpool2d")
    n, c, h, w = x.shape
    kw = window.kernel[1]

    x_c = batch_innermost(x)  # (C, H, W, N)
    if not winners:
        return to_nchw(_maxima(x_c, window, out, floor)), MaxPool2DCache(None, window, x.shape, x, floor)
    if windows_tile(window, (h, w), out):
        y, cell = _tiled_forward(x_c, window.kernel, out, floor, workspace)
    else:
        x_c = x_c if floor is None else at_least(x_c, floor)
        y = np.full((c, *out, n), -np.inf, dtype=x.dtype)
        cell = np.full((c, *out, n), -1, dtype=_cell_dtype(window.kernel))  # -1: no input cell seen yet
        for a, b, out_rows, out_cols, in_rows, in_cols in window.cell_reads((h, w), out):
            current, best, won = x_c[:, in_rows, in_cols], y[:, out_rows, out_cols], cell[:, out_rows, out_cols]
            wins = (current > best) | np.isnan(current) | (won < 0)  # a NaN wins, as in PyTorch
            _mark(won, wins, a * kw + b)
            np.maximum(best, current, out=best)  # NaN propagates
    route = cell if floor is None else _above_floor(cell, y, floor, window.kernel[0] * window.kernel[1])
    return to_nchw(y), MaxPool2DCache(to_nchw(route), window, x.shape)


def _above_floor(cell: np.ndarray, y: np.ndarray, floor, cells: int) -> np.ndarray:
    """The routes of a pooling with a floor, written over ``cell``: the winning cell where ``Y > floor``, else
    ``cell - K`` for K window cells (negative: no gradient; ``route % K`` is still the winner).  Arithmetic on
    a 0/1 mask, as :func:`_mark`: ``np.where`` is slow on such random masks."""
    dead = np.logical_not(y > floor)  # NaN included
    return np.subtract(cell, dead.view(np.int8) * cell.dtype.type(cells), out=cell)


def maxpool2d_backward(dy, cache: MaxPool2DCache):
    """Route each gradient to its window's maximum; overlapping windows accumulate::

        dX[n,c,h,w] = sum_{i,j : window (i, j) was won by cell (h, w)} dY[n,c,i,j]

    Every other input cell gets zero (the max "up-samples" the gradient).  With a floor F, only the windows
    with ``Y > F`` pass theirs on (the derivative of ``max(x*, F)``, see :func:`maxpool2d_forward`).

    Args:
        dy: (N, C, H_out, W_out).

    Returns:
        dx: (N, C, H, W), a view of (C, H, W, N) memory.
    """
    where = "maxpool2d_backward"
    dy = as_float_array(dy, "dy", where)
    n, c, h, w = cache.x_shape
    window, kw = cache.window, cache.window.kernel[1]
    check_same_shape(dy, (n, c, *window.output_size(h, w, where)), "dy", where)
    dy_c, cell = batch_innermost(dy), batch_innermost(cache.routes())  # (C, H_out, W_out, N); < 0: none
    out = cell.shape[1:3]
    if windows_tile(window, (h, w), out):
        return to_nchw(_tiled_backward(dy_c, cell, window.kernel, (h, w)))
    disjoint = all(s >= e for s, e in zip(window.stride, window.extent))  # each input cell in one window at most
    dx_c = np.zeros((c, h, w, n), dtype=dy.dtype)
    for a, b, out_rows, out_cols, in_rows, in_cols in window.cell_reads((h, w), out):
        routed = dy_c[:, out_rows, out_cols] * (cell[:, out_rows, out_cols] == a * kw + b)
        if disjoint:
            dx_c[:, in_rows, in_cols] = routed
        else:
            dx_c[:, in_rows, in_cols] += routed
    return to_nchw(dx_c)


def _cell_dtype(kernel: tuple[int, int]):
    return np.int8 if kernel[0] * kernel[1] <= 127 else np.int32


def _track_maxima(cells: np.ndarray, best: np.ndarray, won: np.ndarray, floor=None) -> None:
    """``best = max_k cells[k]`` (from ``max(cells[0], floor)`` with a floor) and ``won`` the first k to reach it,
    written into ``best`` and into ``won``, which holds zeros: one whole-array step per k, a later cell winning
    only where it is greater than the running maximum (ties to the first)."""
    if floor is None:
        np.copyto(best, cells[0])
    else:
        at_least(cells[0], floor, out=best)
    for k in range(1, len(cells)):
        _mark(won, cells[k] > best, k)
        np.maximum(best, cells[k], out=best)


def _mark(cell: np.ndarray, wins: np.ndarray, k: int) -> None:
    """``cell = k`` where ``wins``, in place.  Cells are visited in increasing k, so this is a maximum
    (branch-free, unlike a masked copy, which is slow on the random masks of max-pooling)."""
    np.maximum(cell, wins.view(np.int8) * cell.dtype.type(k), out=cell)  # a bool array read as 0/1 bytes


def _maxima(x_c: np.ndarray, window: Window, out: tuple[int, int], floor=None) -> np.ndarray:
    """The window maxima alone, (C, H_out, W_out, N): one running maximum over the window cells, from the floor
    if there is one (``max(F, max_w X) = max_w max(X, F)``, NaN propagating either way)."""
    c, h, w, n = x_c.shape
    y = np.full((c, *out, n), -np.inf if floor is None else floor, dtype=x_c.dtype)
    for _, _, out_rows, out_cols, in_rows, in_cols in window.cell_reads((h, w), out):
        best = y[:, out_rows, out_cols]
        np.maximum(best, x_c[:, in_rows, in_cols], out=best)
    return y


def windows_tile(window: Window, size: tuple[int, int], out: tuple[int, int]) -> bool:
    """Windows that tile the input, the usual pooling: stride = window, no dilation, no lead (no padding before,
    origin centre), and no window running past the input (ceil_mode)."""
    return (
        window.stride == window.kernel
        and window.dilation == (1, 1)
        and window.lead == (0, 0)
        and all(o * k <= n for o, k, n in zip(out, window.kernel, size))
    )


def _phases(a: np.ndarray, kernel: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
    """(C, H, W, N) -> the view (kH, kW, C, H_out, W_out, N) with ``[a, b, c, i, j, n] = X[c, i*kH + a, j*kW + b, n]``.

    Splitting an axis is always a view, so writing into the result writes into ``a``.  With the batch
    innermost, each phase is made of contiguous runs of N values.
    """
    (kh, kw), (h_out, w_out) = kernel, out
    c, n = a.shape[0], a.shape[3]
    return a[:, : h_out * kh, : w_out * kw].reshape(c, h_out, kh, w_out, kw, n).transpose(2, 4, 0, 1, 3, 5)


def _tiled_forward(x_c: np.ndarray, kernel: tuple[int, int], out: tuple[int, int], floor=None, workspace=None):
    """The maximum of tiling windows and the cell that won it, both (C, H_out, W_out, N).  Same results and
    ties as the general loop: one whole-batch step per window cell, on the phases of :func:`_phases`.

    With a floor the running maximum starts at ``max(first cell, floor)``: a later cell wins only where it
    is greater than that, which is where it would win in ``max(X, floor)``.

    The channels go a few at a time (:func:`._scratch.chunks`), so that the running maximum and the winners
    stay in cache while the window cells are compared with them: on the wide CNN's first pooling (12.8 MB
    of input) a training step took 1.5% less time (benchmarks/rounds.md, eighth round).

    Each chunk's phases are first copied into one contiguous array (kept in the workspace).  A phase is made
    of runs of only N values, which NumPy copies faster than it compares them: on the seed CNN's first
    pooling, 10 us to copy a phase against 17-18 us to compare it or take its maximum, and 5 us for either on
    contiguous memory (benchmarks/rounds.md, tenth round)."""
    phases = _phases(x_c, kernel, out)
    y = np.empty(phases.shape[2:], dtype=x_c.dtype)
    cell = np.zeros(y.shape, dtype=_cell_dtype(kernel))
    for part in chunks(x_c.shape[0], x_c[0].nbytes):
        cells = scratch(workspace, "window cells", phases[:, :, part].shape, x_c.dtype)  # (kH, kW, chunk, ...)
        np.copyto(cells, phases[:, :, part])
        cells = cells.reshape(-1, *cells.shape[2:])  # cell k = a*kW + b first
        _track_maxima(cells, y[part], cell[part], floor)
    if np.isnan(y).any():  # rare: a NaN wins its window (the last NaN, as in PyTorch)
        for k in range(kernel[0] * kernel[1]):
            np.copyto(cell, k, where=np.isnan(phases[k // kernel[1], k % kernel[1]]))
    return y, cell


def _tiled_backward(dy_c: np.ndarray, cell: np.ndarray, kernel: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Each window's gradient to its winning cell, written straight into that cell's phase of dX, (C, H, W, N)."""
    out = dy_c.shape[1:3]
    cropped = (out[0] * kernel[0], out[1] * kernel[1]) != tuple(size)
    dx_c = (np.zeros if cropped else np.empty)((dy_c.shape[0], *size, dy_c.shape[3]), dtype=dy_c.dtype)
    phases = _phases(dx_c, kernel, out)  # (kH, kW, C, H_out, W_out, N), a view into dx_c
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            np.multiply(dy_c, cell == a * kernel[1] + b, out=phases[a, b])
    return dx_c


class AvgPool2DCache(NamedTuple):
    divisor: np.ndarray  # (H_out, W_out): how many cells each window averages
    window: Window
    x_shape: tuple


def _cells_counted(window: Window, size: tuple[int, int], out: tuple[int, int], include_pad: bool) -> np.ndarray:
    """(H_out, W_out): the cells of each window inside the padded input (``include_pad``) or inside the input."""
    counts = []
    for axis in (0, 1):
        before, after = window.padding[axis] if include_pad else (0, 0)
        i = np.arange(out[axis])[:, None]
        a = np.arange(window.kernel[axis])[None, :]
        position = i * window.stride[axis] + window.dilation[axis] * a - window.lead[axis]  # input coordinates
        counts.append(((position >= -before) & (position < size[axis] + after)).sum(axis=1))
    return counts[0][:, None] * counts[1][None, :]


def avgpool2d_forward(
    x, kernel_size, stride=None, padding=0, mode="xcorr", center=None, ceil_mode=False, count_include_pad=True
):
    """Average-pool with the window placement of max-pooling (zero padding)::

        Y[n,c,i,j] = (1 / M[i,j]) sum_{a,b} Xp[n, c, i*S_h ± (a - c_h), j*S_w ± (b - c_w)]

    ``M[i,j]`` counts the window's cells inside the padded input (``count_include_pad=True``, PyTorch's
    default; padding counts as zeros) or inside the input alone; cells beyond the padded input (``ceil_mode``,
    a far centre) count as neither.  Output size as for :func:`maxpool2d_forward`; ``stride=None`` means the
    window size.  (PyTorch's average pooling has no dilation, and neither has this one.)

    Returns:
        y: (N, C, H_out, W_out), and the cache for :func:`avgpool2d_backward`.
    """
    window = Window.pooling(kernel_size, stride, padding, mode, center, "avgpool2d", ceil_mode=ceil_mode)
    return avgpool2d_window_forward(x, window, count_include_pad)


def avgpool2d_window_forward(x, window: Window, count_include_pad=True):
    """:func:`avgpool2d_forward` with the window's hyper-parameters given as one checked
    :class:`~handgrad.shapes.Window` (a layer builds its window once)."""
    x, out = _pooled(x, window, "avgpool2d")
    n, c, h, w = x.shape
    divisor = _cells_counted(window, (h, w), out, count_include_pad).astype(x.dtype)
    x_c = batch_innermost(x)  # (C, H, W, N)
    y = np.zeros((c, *out, n), dtype=x.dtype)
    for _, _, out_rows, out_cols, in_rows, in_cols in window.cell_reads((h, w), out):
        y[:, out_rows, out_cols] += x_c[:, in_rows, in_cols]
    y /= divisor[:, :, None]
    return to_nchw(y), AvgPool2DCache(divisor, window, x.shape)


def avgpool2d_backward(dy, cache: AvgPool2DCache):
    """Each window's gradient shared equally by the cells it averaged::

    dX[n,c,h,w] = sum_{windows (i,j) that read (h, w)} dY[n,c,i,j] / M[i,j]
    """
    where = "avgpool2d_backward"
    dy = as_float_array(dy, "dy", where)
    n, c, h, w = cache.x_shape
    check_same_shape(dy, (n, c, *cache.divisor.shape), "dy", where)
    share = batch_innermost(dy) / cache.divisor[:, :, None]  # (C, H_out, W_out, N)
    dx_c = np.zeros((c, h, w, n), dtype=dy.dtype)
    for _, _, out_rows, out_cols, in_rows, in_cols in cache.window.cell_reads((h, w), cache.divisor.shape):
        dx_c[:, in_rows, in_cols] += share[:, out_rows, out_cols]
    return to_nchw(dx_c)


def global_avgpool2d_forward(x):
    """``Y[n,c] = (1 / HW) sum_{h,w} X[n,c,h,w]``: (N, C, H, W) -> (N, C).  Cache: the input's shape."""
    x = as_float_array(x, "x", "global_avgpool2d")
    check_shape(x, 4, "(N, C, H, W)", "x", "global_avgpool2d")
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool2d_backward(dy, x_shape):
    """``dX[n,c,h,w] = dY[n,c] / HW`` for every cell."""
    dy = as_float_array(dy, "dy", "global_avgpool2d_backward")
    check_same_shape(dy, x_shape[:2], "dy", "global_avgpool2d_backward")
    dx = np.empty(x_shape, dtype=dy.dtype)
    dx[...] = (dy / (x_shape[2] * x_shape[3]))[:, :, None, None]
    return dx
