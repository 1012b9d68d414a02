"""The affine layer's backward pass in the order the layers below work in."""

from __future__ import annotations

from .._checks import as_float_array, check_same_shape
from ..functional.linear import LinearCache
from ._products import matmul


def linear_backward(dy, cache: LinearCache, input_grad: bool = True):
    """:func:`handgrad.functional.linear_backward` (``dX = dY W^T``, ``dW = X^T dY``, ``dB = sum_n dY``), with dX
    in X's memory order: for an X stored as X^T (feature maps flattened with the batch innermost) as the transpose
    of ``dX^T = W dY^T``, so that the layers below receive their gradient in the order they work in; and the
    products of inner size 1 taken by :func:`._products.matmul`."""
    dy = as_float_array(dy, "dy", "linear_backward")
    check_same_shape(dy, (cache.x.shape[0], cache.w.shape[1]), "dy", "linear_backward")
    db = dy.sum(axis=0) if cache.has_bias else None
    dx = None
    if input_grad:
        transposed = cache.x.flags.f_contiguous and not cache.x.flags.c_contiguous
        dx = matmul(cache.w, dy.T).T if transposed else matmul(dy, cache.w.T)
    return dx, matmul(cache.x.T, dy), db
