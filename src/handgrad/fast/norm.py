"""Batch normalisation on the fast tier's layout: the formula tier's kernel, given one column per channel.

:func:`handgrad.functional.batchnorm_forward` takes (N, C) features, statistics over the batch axis.  Images
(N, C, H, W) in (C, H, W, N) memory are already, without a copy, a matrix of M = N*H*W rows and C columns whose
columns are contiguous, so the kernel runs on that view and every reduction reads contiguous memory.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ._layout import to_chwn, to_nchw


def _features(a: np.ndarray) -> np.ndarray:
    """(N, C) as it is, or (N, C, H, W) -> (N*H*W, C): one column per channel (free in (C, H, W, N) memory)."""
    return a if a.ndim == 2 else to_chwn(a).reshape(a.shape[1], -1).T


def _images(features: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of :func:`_features` for an input of ``shape``."""
    if len(shape) == 2:
        return features
    n, c, h, w = shape
    return to_nchw(features.T.reshape(c, h, w, n))


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """:func:`handgrad.functional.batchnorm_forward` on (N, C) or (N, C, H, W) input, computed per channel column."""
    y, cache, running = F.batchnorm_forward(
        _features(x), gamma, beta, running_mean, running_var, training, momentum, eps
    )
    return _images(y, x.shape), cache, running


def batchnorm_backward(dy, cache, shape: tuple):
    """:func:`handgrad.functional.batchnorm_backward` for an input of ``shape``."""
    dx, dgamma, dbeta = F.batchnorm_backward(_features(np.asarray(dy)), cache)
    return _images(dx, shape), dgamma, dbeta
