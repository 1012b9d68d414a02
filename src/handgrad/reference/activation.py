"""Activations, softmax (with its Jacobian) and flatten as plain loops over elements."""

from __future__ import annotations

import math
from itertools import product

import numpy as np


def _elementwise(f, *arrays):
    out = np.zeros(arrays[0].shape)
    for index in product(*map(range, out.shape)):
        out[index] = f(*(a[index] for a in arrays))
    return out


def relu_forward(x):
    """``y = max(x, 0)``."""
    return _elementwise(lambda v: v if v > 0 else 0.0, x)


def relu_backward(dy, x):
    """``dx = dy`` where ``x > 0``, else 0 (the kink x = 0 included)."""
    return _elementwise(lambda g, v: g if v > 0 else 0.0, dy, x)


def leaky_relu_forward(x, negative_slope=0.01):
    """``y = x if x > 0 else alpha x``."""
    return _elementwise(lambda v: v if v > 0 else negative_slope * v, x)


def leaky_relu_backward(dy, x, negative_slope=0.01):
    """``dx = dy if x > 0 else alpha dy``."""
    return _elementwise(lambda g, v: g if v > 0 else negative_slope * g, dy, x)


def elu_forward(x, alpha=1.0):
    """``y = x if x > 0 else alpha (e^x - 1)``."""
    return _elementwise(lambda v: v if v > 0 else alpha * (math.exp(v) - 1), x)


def elu_backward(dy, x, alpha=1.0):
    """``dx = dy if x > 0 else dy alpha e^x``."""
    return _elementwise(lambda g, v: g if v > 0 else g * alpha * math.exp(v), dy, x)


def dropout_forward(x, keep, p):
    """``y = x * keep / (1 - p)`` for a given 0/1 mask ``keep``."""
    return _elementwise(lambda v, k: v * k / (1 - p) if p < 1 else 0.0, x, keep)


def dropout_backward(dy, keep, p):
    """``dx = dy * keep / (1 - p)``."""
    return _elementwise(lambda g, k: g * k / (1 - p) if p < 1 else 0.0, dy, keep)


def sigmoid_forward(x):
    """``y = 1 / (1 + e^-x)``."""
    return _elementwise(lambda v: 1 / (1 + math.exp(-v)), x)


def sigmoid_backward(dy, x):
    """``dx = dy * s(x) * (1 - s(x))``."""

    def grad(g, v):
        s = 1 / (1 + math.exp(-v))
        return g * s * (1 - s)

    return _elementwise(grad, dy, x)


def tanh_forward(x):
    """``y = tanh(x)``."""
    return _elementwise(math.tanh, x)


def tanh_backward(dy, x):
    """``dx = dy * (1 - tanh(x)^2)``."""
    return _elementwise(lambda g, v: g * (1 - math.tanh(v) ** 2), dy, x)


def softmax_forward(x):
    """``y[n,k] = e^{x[n,k]} / sum_j e^{x[n,j]}``."""
    n_, k_ = x.shape
    y = np.zeros(x.shape)
    for n in range(n_):
        total = sum(math.exp(x[n, j]) for j in range(k_))
        for k in range(k_):
            y[n, k] = math.exp(x[n, k]) / total
    return y


def softmax_jacobian(x):
    """``J[n,k,j] = y[n,k] * (delta_kj - y[n,j])``, entry by entry."""
    y = softmax_forward(x)
    n_, k_ = x.shape
    jac = np.zeros((n_, k_, k_))
    for n, k, j in product(range(n_), range(k_), range(k_)):
        jac[n, k, j] = y[n, k] * ((1.0 if k == j else 0.0) - y[n, j])
    return jac


def softmax_backward(dy, x):
    """``dx[n,j] = sum_k dy[n,k] * J[n,k,j]``."""
    jac = softmax_jacobian(x)
    n_, k_ = x.shape
    dx = np.zeros(x.shape)
    for n, j, k in product(range(n_), range(k_), range(k_)):
        dx[n, j] += dy[n, k] * jac[n, k, j]
    return dx


def flatten_forward(x):
    """``y[n, (c*H + h)*W + w] = x[n, c, h, w]`` for images; row-major order in general."""
    y = np.zeros((x.shape[0], int(np.prod(x.shape[1:]))))
    for index in product(*map(range, x.shape)):
        flat = 0
        for axis in range(1, x.ndim):
            flat = flat * x.shape[axis] + index[axis]
        y[index[0], flat] = x[index]
    return y


def flatten_backward(dy, x_shape):
    """Each gradient goes back to the element it came from."""
    dx = np.zeros(x_shape)
    for index in product(*map(range, x_shape)):
        flat = 0
        for axis in range(1, len(x_shape)):
            flat = flat * x_shape[axis] + index[axis]
        dx[index] = dy[index[0], flat]
    return dx
