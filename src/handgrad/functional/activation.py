"""Element-wise activations, softmax and flatten.

Each backward takes dY and returns dX; where the derivative is written in terms of the output
(sigmoid, tanh, softmax) the cache is the output Y.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape


def relu_forward(x):
    """``Y = max(X, 0)``.  Returns y and the cache: the mask ``[X > 0]``, all the derivative needs."""
    x = as_float_array(x, "x", "relu")
    return np.maximum(x, 0), x > 0


def relu_backward(dy, positive):
    """``dX = dY * [X > 0]``: the derivative at the kink X = 0 is taken to be 0 (as in PyTorch)."""
    dy = as_float_array(dy, "dy", "relu_backward")
    check_same_shape(dy, positive.shape, "dy", "relu_backward")
    return dy * positive


def leaky_relu_forward(x, negative_slope=0.01):
    """``Y = X`` where ``X > 0``, else ``alpha X``.  Cache: the mask ``[X > 0]`` and alpha."""
    x = as_float_array(x, "x", "leaky_relu")
    positive = x > 0
    return np.where(positive, x, negative_slope * x), (positive, negative_slope)


def leaky_relu_backward(dy, cache):
    """``dX = dY`` where ``X > 0``, else ``alpha dY`` (alpha at the kink X = 0, as in PyTorch)."""
    positive, negative_slope = cache
    dy = as_float_array(dy, "dy", "leaky_relu_backward")
    check_same_shape(dy, positive.shape, "dy", "leaky_relu_backward")
    return np.where(positive, dy, negative_slope * dy)


def elu_forward(x, alpha=1.0):
    """``Y = X`` where ``X > 0``, else ``alpha (e^X - 1)``.  Cache: Y and alpha (the derivative is written in Y)."""
    x = as_float_array(x, "x", "elu")
    y = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))  # expm1 of the clipped x: no overflow
    return y, (y, alpha)


def elu_backward(dy, cache):
    """``dX = dY`` where ``X > 0``, else ``dY alpha e^X = dY (Y + alpha)`` (so alpha at X = 0, as in PyTorch)."""
    y, alpha = cache
    dy = as_float_array(dy, "dy", "elu_backward")
    check_same_shape(dy, y.shape, "dy", "elu_backward")
    return np.where(y > 0, dy, dy * (y + alpha))


def dropout_keep(shape: tuple, p: float, rng: np.random.Generator) -> np.ndarray:
    """The mask ``M = [U >= p]`` of ``shape``, U drawn uniform in [0, 1) as float32 from ``rng`` (nothing is drawn
    for p = 0)."""
    return rng.random(shape, dtype=np.float32) >= p if p > 0 else np.ones(shape, dtype=bool)


def dropout_scale(p: float) -> float:
    """``1 / (1 - p)``, and 0 for p = 1 (everything dropped)."""
    return 0.0 if p == 1 else 1 / (1 - p)


def dropout_forward(x, p, rng: np.random.Generator):
    """Inverted dropout: ``Y = X * M / (1 - p)`` with ``M ~ Bernoulli(1 - p)`` drawn from ``rng`` (p is the
    probability to drop), so ``E[Y] = X`` and nothing changes at evaluation time.  ``p = 1`` drops everything.

    Cache: the scaled mask ``M / (1 - p)``.
    """
    x = as_float_array(x, "x", "dropout")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}")
    mask = dropout_keep(x.shape, p, rng).astype(x.dtype) * x.dtype.type(dropout_scale(p))
    return x * mask, mask


def dropout_backward(dy, mask):
    """``dX = dY * M / (1 - p)``: the same mask as the forward pass."""
    dy = as_float_array(dy, "dy", "dropout_backward")
    check_same_shape(dy, mask.shape, "dy", "dropout_backward")
    return dy * mask


def sigmoid_forward(x):
    """``Y = 1 / (1 + e^-X)``, evaluated as ``e^X / (1 + e^X)`` for X < 0 so no exponential overflows."""
    x = as_float_array(x, "x", "sigmoid")
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return y, y


def sigmoid_backward(dy, y):
    """``dX = dY * Y * (1 - Y)``."""
    dy = as_float_array(dy, "dy", "sigmoid_backward")
    check_same_shape(dy, y.shape, "dy", "sigmoid_backward")
    return dy * y * (1 - y)


def tanh_forward(x):
    """``Y = tanh(X)``."""
    y = np.tanh(as_float_array(x, "x", "tanh"))
    return y, y


def tanh_backward(dy, y):
    """``dX = dY * (1 - Y^2)``."""
    dy = as_float_array(dy, "dy", "tanh_backward")
    check_same_shape(dy, y.shape, "dy", "tanh_backward")
    return dy * (1 - y * y)


def softmax_forward(x):
    """``Y[n,k] = e^{X[n,k]} / sum_j e^{X[n,j]}`` over the feature axis of (N, K) input.

    Computed with ``X - max_j X[n,j]``, which leaves Y unchanged and keeps every exponent <= 0.
    """
    x = as_float_array(x, "x", "softmax")
    check_shape(x, 2, "(N, K)", "x", "softmax")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    return y, y


def softmax_jacobian(y):
    """``J[n,k,j] = dY[n,k]/dX[n,j] = Y[n,k] * (delta_kj - Y[n,j])``: each output depends on every input.

    y: (N, K) -> (N, K, K).
    """
    return y[:, :, None] * (np.eye(y.shape[1], dtype=y.dtype) - y[:, None, :])


def softmax_backward(dy, y):
    """Through the full Jacobian of each sample: ``dX[n,j] = sum_k dY[n,k] * J[n,k,j]``."""
    dy = as_float_array(dy, "dy", "softmax_backward")
    check_same_shape(dy, y.shape, "dy", "softmax_backward")
    return np.einsum("nk,nkj->nj", dy, softmax_jacobian(y))


def flatten_forward(x):
    """(N, d1, d2, ...) -> (N, d1*d2*...), row-major (C, H, W order for images).  Cache: the input shape."""
    x = as_float_array(x, "x", "flatten")
    if x.ndim < 2:
        raise ValueError(f"flatten: x must be (N, ...) with at least 2 axes, got shape {x.shape}")
    return x.reshape(x.shape[0], math.prod(x.shape[1:])), x.shape


def flatten_backward(dy, x_shape):
    """The inverse reshape: (N, d1*d2*...) -> (N, d1, d2, ...)."""
    dy = as_float_array(dy, "dy", "flatten_backward")
    check_same_shape(dy, (x_shape[0], math.prod(x_shape[1:])), "dy", "flatten_backward")
    return dy.reshape(x_shape)
