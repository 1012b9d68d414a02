"""Loss functions and their gradients with respect to the prediction.

Notation: Y (N, K) predictions (probabilities for cross-entropy), Z (N, K) logits, T (N, K) targets.
Class targets are integer labels (N,) or rows of class probabilities (N, K), one-hot rows included;
labels become one-hot rows ``T[n, k] = [k == label_n]``.  ``reduction="mean"`` divides by the number
of elements for MSE and by the batch size N for cross-entropy, as PyTorch's defaults do; ``"sum"`` does not.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import as_float_array, check_shape, is_number

REDUCTIONS = ("mean", "sum")
ROW_SUM_TOLERANCE = 1e-5  # how far from 1 a row of target probabilities may sum


class LossCache(NamedTuple):
    y: np.ndarray  # (N, K) or any shape for MSE: the prediction (softmax(Z) for the fused loss)
    t: np.ndarray  # the targets as rows (N, K), or the regression targets
    scale: float  # 1/M or 1/N for reduction="mean", 1 for "sum"


def _check_reduction(reduction: str, where: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_not_empty(y: np.ndarray, where: str) -> None:
    """A loss of an empty batch is refused: a mean over no sample is undefined (every layer passes an empty
    batch on as an empty array; the loss is where it stops)."""
    if y.shape[0] == 0 or y.size == 0:
        raise ValueError(f"{where}: the batch is empty (prediction of shape {y.shape}): a loss needs a sample")


def class_targets(target, shape: tuple, dtype, where: str) -> np.ndarray:
    """Integer labels (N,) or probability rows (N, K) -> rows T (N, K) of ``dtype``, checked."""
    n, k = shape
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        if target.shape != (n,):
            raise ValueError(f"{where}: integer labels must have shape ({n},), got {target.shape}")
        if target.size and (target.min() < 0 or target.max() >= k):
            raise ValueError(
                f"{where}: labels must lie in [0, {k - 1}] for {k} classes, "
                f"got values from {target.min()} to {target.max()}"
            )
        rows = np.zeros(shape, dtype=dtype)
        rows[np.arange(n), target] = 1
        return rows
    if target.dtype.kind != "f" or target.shape != shape:
        raise ValueError(
            f"{where}: target must be integer labels of shape ({n},) or probability rows of shape {shape}, "
            f"got dtype {target.dtype} and shape {target.shape}"
        )
    sums = target.sum(axis=1)
    if np.any(target < 0) or np.any(np.abs(sums - 1) > ROW_SUM_TOLERANCE):
        raise ValueError(f"{where}: target rows must be non-negative and sum to 1, got row sums {sums}")
    return target.astype(dtype, copy=False)


def check_label_smoothing(label_smoothing, where: str) -> None:
    """The share of each target taken from its class and spread over all K: a number in [0, 1]."""
    if not is_number(label_smoothing) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{where}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")


def smoothed_targets(target, classes: int, label_smoothing: float, dtype=np.float32) -> np.ndarray:
    """Label smoothing: integer labels (N,) as rows ``T[n,k] = (1 - e) [k == label_n] + e / K`` (N, K)
    (probability rows are smoothed alike: ``(1 - e) T + e / K``).

    Each row still sums to 1: the true class keeps ``1 - e + e/K`` and every other class gets ``e/K``.  With
    these rows the fused loss's gradient stays ``dZ = (softmax(Z) - T) / N``, so no logit is pushed without end
    towards a probability of exactly 1: the loss is smallest where ``softmax(Z) = T``.  ``e = 0`` gives the
    one-hot rows.  The same as PyTorch's ``F.cross_entropy(z, labels, label_smoothing=e)``.
    """
    where = "smoothed_targets"
    check_label_smoothing(label_smoothing, where)
    target = np.asarray(target)
    rows = class_targets(target, (target.shape[0] if target.ndim else 0, classes), dtype, where)
    e = rows.dtype.type(label_smoothing)
    return (1 - e) * rows + e / rows.dtype.type(classes)


def mse_forward(y, t, reduction="mean"):
    """Mean squared error, ``L = (1/M) sum_m (Y_m - T_m)^2`` over all M elements (``"sum"``: no 1/M).

    Returns (loss, cache) for :func:`mse_backward`.
    """
    where = "mse"
    _check_reduction(reduction, where)
    y, t = as_float_array(y, "prediction", where), as_float_array(t, "target", where)
    if y.shape != t.shape:
        raise ValueError(f"{where}: target must have the prediction's shape {y.shape}, got {t.shape}")
    _check_not_empty(y, where)
    scale = 1 / y.size if reduction == "mean" else 1.0
    diff = y - t
    return float(np.sum(diff * diff) * scale), LossCache(y, t, scale)


def mse_backward(cache: LossCache) -> np.ndarray:
    """``dY = 2 (Y - T) / M`` (``"sum"``: no 1/M)."""
    return 2 * cache.scale * (cache.y - cache.t)


def cross_entropy_forward(y, target, reduction="mean"):
    """Cross-entropy of probabilities, ``L = -(1/N) sum_{n,k} T[n,k] ln max(Y[n,k], tiny)``.

    ``tiny`` is the dtype's smallest normal number (1.2e-38 in float32, 2.2e-308 in float64).  Above it the
    formula is the plain ``-T ln Y``.  A softmax output below it has underflowed (a logit gap over about 87
    in float32): it costs ``-ln tiny`` (87.3 in float32, 708.4 in float64) instead of infinity, and the
    gradient stays finite.  Cells with ``T = 0`` contribute nothing (no ``0 * ln 0``).
    Use it after a :class:`Softmax` layer to backpropagate through the softmax Jacobian; the fused
    :func:`softmax_cross_entropy_forward` is exact at any logits.  Returns (loss, cache) for
    :func:`cross_entropy_backward`.
    """
    where = "cross_entropy"
    _check_reduction(reduction, where)
    y = as_float_array(y, "prediction", where)
    check_shape(y, 2, "(N, K) probabilities", "prediction", where)
    _check_not_empty(y, where)
    t = class_targets(target, y.shape, y.dtype, where)
    scale = 1 / y.shape[0] if reduction == "mean" else 1.0
    hit = t > 0
    loss = -np.sum(t[hit] * np.log(_floored(y[hit]))) * scale
    return float(loss), LossCache(y, t, scale)


def cross_entropy_backward(cache: LossCache) -> np.ndarray:
    """``dY[n,k] = -T[n,k] / (N max(Y[n,k], tiny))``, and 0 where ``T[n,k] = 0``.

    At most ``1 / tiny`` in size (8.5e37 in float32), so finite; through the softmax Jacobian, whose row k
    is ``Y[n,k] (delta_kj - Y[n,j])``, an underflowed ``Y[n,k]`` then contributes 0 instead of NaN.
    """
    hit = cache.t > 0
    dy = np.zeros_like(cache.y)
    dy[hit] = -cache.scale * cache.t[hit] / _floored(cache.y[hit])
    return dy


def _floored(y: np.ndarray) -> np.ndarray:
    """``max(Y, tiny)``: probabilities that underflowed (to 0 or a subnormal) raised to the smallest normal number."""
    return np.maximum(y, np.finfo(y.dtype).tiny)


def softmax_cross_entropy_forward(z, target, reduction="mean"):
    """Softmax and cross-entropy fused, on logits Z.

    ``L = (1/N) sum_n [ logsumexp_k Z[n,k] - sum_k T[n,k] Z[n,k] ]`` (rows of T sum to 1), with
    ``logsumexp_k Z[n,k] = m_n + ln sum_k e^{Z[n,k] - m_n}`` and ``m_n = max_k Z[n,k]``: no exponent is positive.

    Returns (loss, cache) for :func:`softmax_cross_entropy_backward`.
    """
    where = "softmax_cross_entropy"
    _check_reduction(reduction, where)
    z = as_float_array(z, "logits", where)
    check_shape(z, 2, "(N, K) logits", "logits", where)
    _check_not_empty(z, where)
    t = class_targets(target, z.shape, z.dtype, where)
    scale = 1 / z.shape[0] if reduction == "mean" else 1.0
    m = z.max(axis=1, keepdims=True)  # (N, 1)
    e = np.exp(z - m)  # (N, K), every entry in (0, 1]
    total = e.sum(axis=1, keepdims=True)  # (N, 1)
    lse = m + np.log(total)  # (N, 1)
    loss = np.sum(t * (lse - z)) * scale
    return float(loss), LossCache(e / total, t, scale)


def softmax_cross_entropy_backward(cache: LossCache) -> np.ndarray:
    """``dZ = (softmax(Z) - T) / N``: the softmax Jacobian and the cross-entropy gradient multiplied out."""
    return cache.scale * (cache.y - cache.t)
