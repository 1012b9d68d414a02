"""The fully connected layer in the matrix form of the derivations: ``Y = X W + B``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_same_shape, check_shape


class LinearCache(NamedTuple):
    x: np.ndarray  # (N, in)
    w: np.ndarray  # (in, out)
    has_bias: bool


def linear_forward(x, w, b=None):
    """``Y = X W + B``, row by row ``Y[n,k] = B[k] + sum_m X[n,m] * W[m,k]``.

    Shapes ``(N x out) = (N x in)(in x out) + (1 x out)``: one sample per row, B broadcast over the batch.

    Args:
        x: (N, in).  w: (in, out).  b: (out,) or None.

    Returns:
        y: (N, out), and the cache for :func:`linear_backward`.
    """
    where = "linear"
    x, w = as_float_array(x, "x", where), as_float_array(w, "w", where)
    check_shape(x, 2, "(N, in_features)", "x", where)
    check_shape(w, 2, "(in_features, out_features)", "w", where)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"{where}: x must have {w.shape[0]} features (w is {w.shape}), got x of shape {x.shape}")
    y = x @ w  # (N, out)
    if b is not None:
        b = as_float_array(b, "b", where)
        check_same_shape(b, (w.shape[1],), "b", where)
        y += b
    return y, LinearCache(x, w, b is not None)


def linear_backward(dy, cache: LinearCache, input_grad: bool = True):
    """Batch-aware gradients of ``Y = X W + B``::

        dX = dY W^T          (N, in)  = (N, out)(out, in)
        dW = X^T dY          (in, out) = (in, N)(N, out)     summed over the batch by the product
        dB = sum_n dY[n, :]  (out,)

    ``input_grad=False`` skips dX (a first layer's input needs none) and returns None for it.

    Returns:
        dx, dw, db (None when the forward had no bias).
    """
    where = "linear_backward"
    dy = as_float_array(dy, "dy", where)
    check_same_shape(dy, (cache.x.shape[0], cache.w.shape[1]), "dy", where)
    db = dy.sum(axis=0) if cache.has_bias else None
    dx = dy @ cache.w.T if input_grad else None
    return dx, cache.x.T @ dy, db
