"""Matrix products, with the one shape NumPy's matmul is slow on taken another way."""

from __future__ import annotations

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for a (m, k) and b (k, n), into ``out`` if given.

    With k = 1 the product is the outer product ``P[i, j] = a[i, 0] * b[0, j]``, one multiplication per
    entry, taken as the broadcast ``a * b``: the same values, where ``np.matmul`` is several times slower at
    this shape.  That is the shape
    of a linear layer's dW for a batch of one and of dX for one output feature, and of a depthwise
    convolution's column gradient.
    """
    if a.shape[1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)
