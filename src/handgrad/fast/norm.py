"""Batch normalisation in the fast tier: :func:`handgrad.functional.batchnorm_forward` with fewer passes over memory.

Images (N, C, H, W) in (C, H, W, N) memory are, without a copy, a matrix of C rows of M = N*H*W values each, one
contiguous row per channel (features (N, C) are its transpose).  Each pass below reads or writes such rows.

Forward, in training: the mean (a pass), the centred input ``Xc = X - mu`` (a pass, kept for the backward pass),
``var = sum Xc^2 / M`` (a pass; the sums are BLAS's), then ``Y = a Xc + beta`` with ``a = gamma / sqrt(var + eps)`` (two passes),
where the formula tier forms ``X_hat`` and then ``gamma X_hat + beta`` in more.  Backward, with
``X_hat = Xc / sqrt(var + eps)`` written out, the formula tier's ::

    dX = a * (dY - dbeta / M - X_hat * dgamma / M)     dgamma = sum dY * X_hat = (sum dY * Xc) / sqrt(var + eps)

becomes ``dX = a dY - k Xc - a dbeta / M`` with ``k = a dgamma / (M sqrt(var + eps))`` per channel: two sums (one a
dot product of each row of dY with Xc's) and three passes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape
from ._layout import to_chwn, to_nchw


class BatchNormCache(NamedTuple):
    centred: np.ndarray  # (C, M): Xc = X - mu, one row per channel
    inv_std: np.ndarray  # (C,): 1 / sqrt(var + eps)
    scale: np.ndarray  # (C,): a = gamma * inv_std (inv_std without affine parameters)
    affine: bool
    training: bool
    shape: tuple  # X's shape


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C) or (N, C, H, W) -> (C, M): one row per channel (free for images in (C, H, W, N) memory)."""
    return a.T if a.ndim == 2 else to_chwn(a).reshape(a.shape[1], -1)


def _unrows(rows: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of :func:`_rows`."""
    if len(shape) == 2:
        return rows.T
    n, c, h, w = shape
    return to_nchw(rows.reshape(c, h, w, n))


def _row_sums(a: np.ndarray) -> np.ndarray:
    """``sum_m A[c, m]``: a matrix-vector product, which BLAS sums accurately (and on every core)."""
    return a @ np.ones(a.shape[1], dtype=a.dtype)


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_m A[c, m] B[c, m]``: one dot product per row, by BLAS (accurate in float32, where ``einsum``'s
    running sums over a hundred thousand values lose digits)."""
    return np.matmul(a[:, None, :], b[:, :, None]).reshape(-1)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """:func:`handgrad.functional.batchnorm_forward` (the same values, to rounding): y, the cache for
    :func:`batchnorm_backward` and the new running statistics."""
    rows = _rows(x)  # (C, M)
    m = rows.shape[1]
    if training:
        if m < 2:
            raise ValueError(
                f"batchnorm: training needs more than one value per channel to estimate a variance, got x of shape {x.shape}"
            )
        mean = _row_sums(rows) / m
        centred = rows - mean[:, None]
        var = _row_dots(centred, centred) / m
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
        running = (new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype))
    else:
        mean, var, running = running_mean, running_var, (running_mean, running_var)
        centred = rows - mean.astype(rows.dtype)[:, None]
    inv_std = (1 / np.sqrt(var + eps)).astype(rows.dtype)
    scale = inv_std if gamma is None else inv_std * gamma
    y = np.multiply(centred, scale[:, None])
    if beta is not None:
        y += beta[:, None]
    return _unrows(y, x.shape), BatchNormCache(centred, inv_std, scale, gamma is not None, training, x.shape), running


def batchnorm_backward(dy, cache: BatchNormCache):
    """:func:`handgrad.functional.batchnorm_backward` (the same values, to rounding): dx, dgamma, dbeta (None for
    the last two without affine parameters)."""
    dy = as_float_array(dy, "dy", "batchnorm_backward")
    check_same_shape(dy, cache.shape, "dy", "batchnorm_backward")
    rows, m = _rows(dy), cache.centred.shape[1]
    dbeta = _row_sums(rows)
    dgamma = _row_dots(rows, cache.centred) * cache.inv_std
    dx = np.multiply(rows, cache.scale[:, None])
    if cache.training:
        correction = np.multiply(cache.centred, (cache.scale * cache.inv_std * dgamma / m)[:, None])
        dx -= correction
        dx -= (cache.scale * dbeta / m)[:, None]
    dx = _unrows(dx, cache.shape)
    return (dx, dgamma, dbeta) if cache.affine else (dx, None, None)


def folded(weight: np.ndarray, bias, gamma, beta, running_mean, running_var, eps: float, axis: int):
    """A layer's weight and bias with the evaluation-mode batch normalisation after it taken in:
    ``BN(W x + b) = (a W) x + (a (b - mu) + beta)`` with ``a = gamma / sqrt(var + eps)`` per output feature, which
    lies along ``axis`` of the weight (0 for a convolution's (O, C, kH, kW), 1 for an affine (in, out))."""
    a = 1 / np.sqrt(running_var.astype(np.float64) + eps)
    if gamma is not None:
        a = a * gamma
    shape = [1] * weight.ndim
    shape[axis] = -1
    w = (weight * a.reshape(shape)).astype(weight.dtype)
    b = a * ((0 if bias is None else bias) - running_mean)
    if beta is not None:
        b = b + beta
    return w, b.astype(weight.dtype)
