"""Batch normalisation: forward in training and evaluation mode, and the hand-derived backward.

Notation: X (N, C) or (N, C, H, W); statistics are taken per channel c over the other axes, M values each
(M = N, or N*H*W).  gamma, beta (C,) the affine parameters; eps a small constant against division by zero.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape
from ._layout import to_chwn, to_nchw


class BatchNormCache(NamedTuple):
    x_hat: np.ndarray  # (C, M): the normalised input, one row per channel
    inv_std: np.ndarray  # (C, 1): 1 / sqrt(var + eps)
    gamma: np.ndarray | None  # (C, 1); None without affine parameters
    training: bool  # the statistics came from the batch (True) or were running constants (False)
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


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Normalise each channel, then scale and shift::

        mu_c = (1/M) sum X          var_c = (1/M) sum (X - mu_c)^2          (the biased variance)
        X_hat = (X - mu_c) / sqrt(var_c + eps)          Y = gamma_c X_hat + beta_c

    In training the statistics are the batch's, and the running ones move towards them, as PyTorch does::

        running_mean <- (1 - momentum) running_mean + momentum mu_c
        running_var  <- (1 - momentum) running_var  + momentum var_c * M / (M - 1)   (the unbiased variance)

    In evaluation mode ``mu_c`` and ``var_c`` are the running statistics, which stay as they are.

    Args:
        x: (N, C) or (N, C, H, W).  gamma, beta: (C,), or None for no affine parameters.
        running_mean, running_var: (C,).  training: which statistics to use.

    Returns:
        y, the cache for :func:`batchnorm_backward`, and the new running statistics ``(mean, var)``.
    """
    where = "batchnorm"
    x = as_float_array(x, "x", where)
    rows = _rows(x)  # (C, M)
    m = rows.shape[1]
    if training:
        if m < 2:
            raise ValueError(
                f"{where}: training needs more than one value per channel to estimate a variance, got x of shape {x.shape}"
            )
        mean = rows.mean(axis=1)
        x_hat = rows - mean[:, None].astype(x.dtype)  # centred, normalised in place below
        var = np.einsum("cm,cm->c", x_hat, x_hat) / m
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
        running = (new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype))
    else:
        mean, var, running = running_mean, running_var, (running_mean, running_var)
        x_hat = rows - mean[:, None].astype(x.dtype)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)[:, None]  # (C, 1)
    x_hat *= inv_std
    if gamma is None:
        return _unrows(x_hat, x.shape), BatchNormCache(x_hat, inv_std, None, training, x.shape), running
    g = gamma[:, None]
    y = x_hat * g
    y += beta[:, None]
    return _unrows(y, x.shape), BatchNormCache(x_hat, inv_std, g, training, x.shape), running


def batchnorm_backward(dy, cache: BatchNormCache):
    """Gradients of :func:`batchnorm_forward`::

        dbeta_c  = sum dY          dgamma_c = sum dY * X_hat          dX_hat = gamma_c dY

    In training mu and var depend on every X of the channel, and the chain rule through them gives::

        dX = (1 / sqrt(var + eps)) * (dX_hat - mean(dX_hat) - X_hat * mean(dX_hat * X_hat))
           = (gamma_c / sqrt(var + eps)) * (dY - dbeta_c / M - X_hat * dgamma_c / M)

    (means per channel over its M values; the second line is the first with ``dX_hat = gamma dY``, and is
    what is computed).  In evaluation mode they are constants: ``dX = gamma_c dY / sqrt(var + eps)``.

    Returns:
        dx, dgamma, dbeta (None for the last two without affine parameters).
    """
    where = "batchnorm_backward"
    dy = as_float_array(dy, "dy", where)
    check_same_shape(dy, cache.shape, "dy", where)
    rows = _rows(dy)  # (C, M)
    m = rows.shape[1]
    dbeta, dgamma = rows.sum(axis=1), np.einsum("cm,cm->c", rows, cache.x_hat)
    scale = cache.inv_std if cache.gamma is None else cache.inv_std * cache.gamma  # (C, 1)
    if cache.training:
        dx = cache.x_hat * (-dgamma / m)[:, None]
        dx += rows
        dx -= (dbeta / m)[:, None]
        dx *= scale
    else:
        dx = rows * scale
    if cache.gamma is None:
        return _unrows(dx, cache.shape), None, None
    return _unrows(dx, cache.shape), dgamma, dbeta
