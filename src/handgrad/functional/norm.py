"""Batch normalisation: forward in training and evaluation mode, and the hand-derived backward.

Notation: X (N, C) or (N, C, H, W); statistics are taken per channel c over the other axes, M values each
(M = N, or N*H*W).  gamma, beta (C,) the affine parameters; eps a small constant against division by zero.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape


class BatchNormCache(NamedTuple):
    x_hat: np.ndarray  # the normalised input, X's shape
    inv_std: np.ndarray  # 1 / sqrt(var + eps), broadcastable to X: (1, C) or (1, C, 1, 1)
    gamma: np.ndarray | None  # broadcastable like inv_std; None without affine parameters
    training: bool  # the statistics came from the batch (True) or were running constants (False)


def _per_channel(x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The axes a channel's statistics run over, (0,) or (0, 2, 3), and the shape that broadcasts a (C,) vector
    along X, (1, C) or (1, C, 1, 1)."""
    axes = (0,) + tuple(range(2, x.ndim))
    return axes, (1, x.shape[1]) + (1,) * (x.ndim - 2)


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
    axes, channel = _per_channel(x)
    m = x.size // x.shape[1]
    if training:
        if m < 2:
            raise ValueError(
                f"{where}: training needs more than one value per channel to estimate a variance, got x of shape {x.shape}"
            )
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
        running = (new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype))
    else:
        mean, var, running = running_mean, running_var, (running_mean, running_var)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype).reshape(channel)
    x_hat = (x - mean.astype(x.dtype).reshape(channel)) * inv_std
    if gamma is None:
        return x_hat, BatchNormCache(x_hat, inv_std, None, training), running
    g = gamma.reshape(channel)
    return g * x_hat + beta.reshape(channel), BatchNormCache(x_hat, inv_std, g, training), running


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
    check_same_shape(dy, cache.x_hat.shape, "dy", where)
    axes, channel = _per_channel(dy)
    m = dy.size // dy.shape[1]
    dbeta, dgamma = dy.sum(axis=axes), (dy * cache.x_hat).sum(axis=axes)
    scale = cache.inv_std if cache.gamma is None else cache.inv_std * cache.gamma
    if cache.training:
        dx = scale * (dy - dbeta.reshape(channel) / m - cache.x_hat * dgamma.reshape(channel) / m)
    else:
        dx = scale * dy
    if cache.gamma is None:
        return dx, None, None
    return dx, dgamma, dbeta
