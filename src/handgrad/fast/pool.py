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
        return maxpool2d_forward(self.x, self.window, floor=self.floor)[1].route

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


def maxpool2d_forward(x, window: Window, winners=True, floor=None, workspace=None):
    """:func:`handgrad.functional.maxpool2d_forward` (the same maxima, winners and ties) for a checked window, and
    with a floor F, ``Y = maxpool(max(X, F))``: a Clamp such as ReLU (F = 0) before the pooling, taken in.

    With a floor the maxima, winners and ties are those of max-pooling ``max(X, F)``.  The derivative is that of
    the pooling times that of ``max(x*, F)`` at the winner x*, ``[x* > F]``, and ``x* > F`` exactly where
    ``Y > F``: a window whose maximum is not above the floor passes no gradient on (nor one that a NaN won,
    whose ``max(NaN, F)`` is NaN; as ``relu`` in PyTorch, whose derivative is ``[x > 0]``).

    Args:
        x: (N, C, H, W), in any memory order ((C, H, W, N) memory is read without a copy).
        window: the pooling's window.
        winners: False only takes the maxima (inference); the cache then keeps ``x`` and the winners are found
            if a backward pass asks for them.
        floor: pool ``max(X, floor)`` instead of X, without forming ``max(X, floor)`` where it can: the running
            maximum starts at the floor (windows that do not tile clamp X first when the winners are tracked).
        workspace: a dict kept between calls from which temporaries are reused when the winners are tracked
            (inference takes no scratch: it would only add to the peak); optional.

    Returns:
        y: (N, C, H_out, W_out), a view of (C, H_out, W_out, N) memory, and the cache for
        :func:`maxpool2d_backward`.
    """
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


def _window_cells(a: np.ndarray, kernel: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
    """(C, H, W, N) -> the view (kH, kW, C, H_out, W_out, N) with ``[a, b, c, i, j, n] = X[c, i*kH + a, j*kW + b, n]``.

    Splitting an axis is always a view, so writing into the result writes into ``a``.  With the batch
    innermost, each phase is made of contiguous runs of N values.
    """
    (kh, kw), (h_out, w_out) = kernel, out
    c, n = a.shape[0], a.shape[3]
    return a[:, : h_out * kh, : w_out * kw].reshape(c, h_out, kh, w_out, kw, n).transpose(2, 4, 0, 1, 3, 5)


def _tiled_forward(x_c: np.ndarray, kernel: tuple[int, int], out: tuple[int, int], floor=None, workspace=None):
    """The maximum of tiling windows and the cell that won it, both (C, H_out, W_out, N).  Same results and
    ties as the general loop: one whole-batch step per window cell, on the views of :func:`_window_cells`.

    With a floor the running maximum starts at ``max(first cell, floor)``: a later cell wins only where it
    is greater than that, which is where it would win in ``max(X, floor)``.

    The channels go a few at a time (:func:`._scratch.chunks`), so that the running maximum and the winners
    stay in cache while the window cells are compared with them.

    Each chunk's window cells are first copied into one contiguous array (kept in the workspace): a cell's view
    is made of runs of only N values, which NumPy copies faster than it compares them, and contiguous memory is
    compared fastest."""
    phases = _window_cells(x_c, kernel, out)
    y = np.empty(phases.shape[2:], dtype=x_c.dtype)
    cell = np.zeros(y.shape, dtype=_cell_dtype(kernel))
    for part in chunks(x_c.shape[0], x_c[0].nbytes):
        cells = scratch(workspace, "window cells", phases[:, :, part].shape, x_c.dtype)  # (kH, kW, chunk, ...)
        np.copyto(cells, phases[:, :, part])
        cells = cells.reshape(kernel[0] * kernel[1], *cells.shape[2:])  # cell k = a*kW + b first
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
    phases = _window_cells(dx_c, kernel, out)  # (kH, kW, C, H_out, W_out, N), a view into dx_c
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            np.multiply(dy_c, cell == a * kernel[1] + b, out=phases[a, b])
    return dx_c
