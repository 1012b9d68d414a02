"""Losses and their gradients as plain loops.  Targets here are rows T (N, K) (or any shape for MSE)."""

from __future__ import annotations

import math
from itertools import product

import numpy as np


def _scale(reduction, count):
    return 1 / count if reduction == "mean" else 1.0


def mse(y, t, reduction="mean"):
    """``L = (1/M) sum (y - t)^2`` and ``dy = 2 (y - t) / M``.  Returns (loss, dy)."""
    scale = _scale(reduction, y.size)
    loss, dy = 0.0, np.zeros(y.shape)
    for index in product(*map(range, y.shape)):
        loss += (y[index] - t[index]) ** 2 * scale
        dy[index] = 2 * (y[index] - t[index]) * scale
    return loss, dy


def cross_entropy(y, t, reduction="mean"):
    """``L = -(1/N) sum_{n,k} t ln y`` and ``dy = -t / (N y)`` (0 where t = 0).  Returns (loss, dy)."""
    scale = _scale(reduction, y.shape[0])
    loss, dy = 0.0, np.zeros(y.shape)
    for n, k in product(*map(range, y.shape)):
        if t[n, k] != 0:
            loss -= t[n, k] * math.log(y[n, k]) * scale
            dy[n, k] = -t[n, k] / y[n, k] * scale
    return loss, dy


def softmax_cross_entropy(z, t, reduction="mean"):
    """``L = (1/N) sum_n [ln sum_k e^{z[n,k]} - sum_k t[n,k] z[n,k]]`` and ``dz = (softmax(z) - t) / N``.

    Written with ``m_n = max_k z[n,k]`` subtracted inside the exponentials (same value, no overflow).
    Returns (loss, dz).
    """
    n_, k_ = z.shape
    scale = _scale(reduction, n_)
    loss, dz = 0.0, np.zeros(z.shape)
    for n in range(n_):
        m = max(z[n, k] for k in range(k_))
        total = sum(math.exp(z[n, k] - m) for k in range(k_))
        log_sum_exp = m + math.log(total)
        for k in range(k_):
            loss += t[n, k] * (log_sum_exp - z[n, k]) * scale
            dz[n, k] = (math.exp(z[n, k] - m) / total - t[n, k]) * scale
    return loss, dz


def smoothed_targets(labels, classes, label_smoothing):
    """``t[n,k] = (1 - e) [k == label_n] + e / K`` for integer labels (N,).  Returns t (N, K)."""
    t = np.zeros((len(labels), classes))
    for n, k in product(range(len(labels)), range(classes)):
        t[n, k] = (1 - label_smoothing) * (k == labels[n]) + label_smoothing / classes
    return t
