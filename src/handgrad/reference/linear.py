"""The fully connected layer as plain loops."""

from __future__ import annotations

from itertools import product

import numpy as np


def linear_forward(x, w, b=None):
    """``Y[n,k] = B[k] + sum_m X[n,m] * W[m,k]``."""
    (n_, m_), k_ = x.shape, w.shape[1]
    y = np.zeros((n_, k_))
    for n, k in product(range(n_), range(k_)):
        y[n, k] = 0.0 if b is None else b[k]
        for m in range(m_):
            y[n, k] += x[n, m] * w[m, k]
    return y


def linear_backward(dy, x, w, bias=True):
    """``dX[n,m] = sum_k dY[n,k] W[m,k]``, ``dW[m,k] = sum_n X[n,m] dY[n,k]``, ``dB[k] = sum_n dY[n,k]``."""
    (n_, m_), k_ = x.shape, w.shape[1]
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), np.zeros(k_)
    for n, m, k in product(range(n_), range(m_), range(k_)):
        dx[n, m] += dy[n, k] * w[m, k]
        dw[m, k] += x[n, m] * dy[n, k]
    for n, k in product(range(n_), range(k_)):
        db[k] += dy[n, k]
    return dx, dw, (db if bias else None)
