"""Padding modes other than zeros: reflect, replicate and circular, as PyTorch's ``padding_mode``.

Padding is linear and acts on each axis alone: ``Xp = P_h X P_w^T`` with a 0/1 matrix ``P`` (padded size
x size) whose row ``u`` picks the input cell that padded cell ``u`` copies.  Its adjoint is the transpose,
``dX = P_h^T dXp P_w``: every padded cell hands its gradient back to the cell it copied.

For a padded index ``u - P0`` outside ``[0, H)`` (with ``P0`` cells before the input):

============  ======================  ======================
mode          before the input        after the input
============  ======================  ======================
reflect       ``x[-k]``  (edge once)  ``x[H-1-k]``
replicate     ``x[0]``                ``x[H-1]``
circular      ``x[H+k]`` (wraps)      ``x[k-H]``
============  ======================  ======================
"""

from __future__ import annotations

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position, the input index it copies: (before + size + after,) integers."""
    k = np.arange(-before, size + after)
    if mode == "reflect":
        return np.where(k < 0, -k, np.where(k >= size, 2 * (size - 1) - k, k))
    if mode == "replicate":
        return np.clip(k, 0, size - 1)
    if mode == "circular":
        return k % size
    raise ValueError(f"padding_mode must be one of {PADDING_MODES[1:]} here, got {mode!r}")


def check(size: tuple[int, int], sides, mode: str, where: str) -> None:
    """PyTorch's limits: reflect needs padding < size (one reflection), circular padding <= size."""
    for n, (before, after) in zip(size, sides):
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(
                f"{where}: padding_mode='reflect' needs padding < input size, got padding {sides} for input {size}"
            )
        if mode == "circular" and max(before, after) > n:
            raise ValueError(
                f"{where}: padding_mode='circular' needs padding <= input size, got padding {sides} for input {size}"
            )


def _matrix(size: int, before: int, after: int, mode: str, dtype) -> np.ndarray:
    """``P``: (before + size + after, size), ``P[u, k] = 1`` when padded cell u copies input cell k."""
    index = source_index(size, before, after, mode)
    matrix = np.zeros((len(index), size), dtype=dtype)
    matrix[np.arange(len(index)), index] = 1
    return matrix


def pad(x: np.ndarray, sides, mode: str, where: str = "pad") -> np.ndarray:
    """``Xp = P_h X P_w^T``: x (N, C, H, W) -> (N, C, H + P0_h + P1_h, W + P0_w + P1_w), for ``sides``
    ``((top, bottom), (left, right))``; ``ValueError`` naming ``where`` past PyTorch's limits (see :func:`check`)."""
    check(x.shape[2:], sides, mode, where)
    (top, bottom), (left, right) = sides
    p_h = _matrix(x.shape[2], top, bottom, mode, x.dtype)
    p_w = _matrix(x.shape[3], left, right, mode, x.dtype)
    return p_h @ x @ p_w.T


def pad_backward(dxp: np.ndarray, sides, mode: str, size: tuple[int, int]) -> np.ndarray:
    """``dX = P_h^T dXp P_w``: each padded cell's gradient added onto the cell it copied, (N, C, H, W) for an
    input of ``size`` (H, W)."""
    (top, bottom), (left, right) = sides
    p_h = _matrix(size[0], top, bottom, mode, dxp.dtype)
    p_w = _matrix(size[1], left, right, mode, dxp.dtype)
    return p_h.T @ dxp @ p_w


def filled(x: np.ndarray, window, mode: str, where: str):
    """``(Xp, window)`` for a convolution over ``window`` (a :class:`~handgrad.shapes.Window`) whose padding holds
    ``mode``'s values: for zeros, ``x`` and ``window`` as they are (the convolution pads with zeros itself);
    otherwise ``x`` with the window's padding filled (:func:`pad`) and the window without padding."""
    if mode == "zeros":
        return x, window
    return pad(x, window.padding, mode, where), window.without_padding()


def filled_backward(dxp, window, mode: str, size: tuple[int, int]):
    """dX from the gradient of :func:`filled`'s Xp: ``dxp`` itself for zeros (or when it is None), otherwise each
    padded cell's gradient added onto the cell it copied (:func:`pad_backward`)."""
    if dxp is None or mode == "zeros":
        return dxp
    return pad_backward(dxp, window.padding, mode, size)
