"""Element-wise activations, softmax and flatten.

Each backward takes dY and returns dX; where the derivative is written in terms of the output
(sigmoid, tanh, softmax) the cache is the output Y.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape


def relu(x):
    """``Y = max(X, 0)``, the value alone (for inference)."""
    return np.maximum(as_float_array(x, "x", "relu"), 0)


def relu_forward(x):
    """``Y = max(X, 0)``.  Returns y and the cache: the mask ``[X > 0]``, all the derivative needs
    (a quarter of Y's size, so Y itself may be freed once the next layer is done with it)."""
    x = as_float_array(x, "x", "relu")
    return relu(x), x > 0


def relu_backward(dy, positive):
    """``dX = dY * [X > 0]``: the derivative at the kink X = 0 is taken to be 0 (as in PyTorch)."""
    dy = as_float_array(dy, "dy", "relu_backward")
    check_same_shape(dy, positive.shape, "dy", "relu_backward")
    return dy * positive


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
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dy, x_shape):
    """The inverse reshape: (N, d1*d2*...) -> (N, d1, d2, ...)."""
    dy = as_float_array(dy, "dy", "flatten_backward")
    check_same_shape(dy, (x_shape[0], int(np.prod(x_shape[1:]))), "dy", "flatten_backward")
    return dy.reshape(x_shape)
