"""Loss objects: ``loss.forward(prediction, target) -> float`` then ``loss.backward() -> dprediction``."""

from __future__ import annotations

from . import functional as F
from .functional.losses import REDUCTIONS


class Loss:
    """Calls a pure loss kernel and keeps its cache for ``backward``."""

    _kernels: tuple  # (forward, backward) from handgrad.functional

    def __init__(self, reduction="mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def forward(self, prediction, target) -> float:
        loss, self._cache = type(self)._kernels[0](prediction, target, self.reduction)
        return loss

    __call__ = forward

    def backward(self):
        """The gradient of the last forward's loss with respect to its prediction."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward: run forward(pred, target) first")
        return type(self)._kernels[1](self._cache)

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class MSE(Loss):
    """``(1/M) sum (y - t)^2`` (PyTorch's ``F.mse_loss``); ``reduction="sum"`` drops the 1/M."""

    _kernels = (F.mse_forward, F.mse_backward)


class CrossEntropy(Loss):
    """``-(1/N) sum t ln max(y, tiny)`` on probabilities (after a :class:`~handgrad.layers.Softmax` layer): finite
    where a probability underflowed to 0; the fused :class:`SoftmaxCrossEntropy` is exact at any logits."""

    _kernels = (F.cross_entropy_forward, F.cross_entropy_backward)


class SoftmaxCrossEntropy(Loss):
    """Softmax and cross-entropy fused on logits (PyTorch's ``F.cross_entropy``); gradient ``(y - t) / N``."""

    _kernels = (F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward)
