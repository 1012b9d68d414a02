"""The softmax + cross-entropy fusion: a model that ends in a softmax layer, trained with cross-entropy on its
probabilities, is trained as the layers before the softmax with the fused loss on their logits.

Both give the same loss, ``L = -(1/N) sum_n ln softmax(Z)[n, t_n]``, and in exact arithmetic the same gradient
``dL/dZ = (Y - T) / N``.  In floating point the unfused pair takes ``dL/dY = -T / (N Y)`` through the softmax's
Jacobian, and once the true class's probability falls below the smallest normal number (a logit gap over about
87 in float32) that class's gradient is lost: at a gap of 100 the pair gives under 1e-5 where the fused form
gives ``-1/N``, and the model stops learning from the very samples it gets most wrong.  The layers keep their own backward passes (the Jacobian
path the formula tier teaches); the training loop takes the fused one.
"""

from __future__ import annotations

from ..layers import Softmax
from ..losses import CrossEntropy, SoftmaxCrossEntropy
from ..model import Sequential


def fused_head(model, loss):
    """``(model, loss)`` to train: ``(model without its last layer, SoftmaxCrossEntropy)`` when the model is a
    :class:`Sequential` ending in a :class:`Softmax` and the loss is :class:`CrossEntropy` (the classes
    themselves: a subclass may compute something else), with the same reduction; otherwise both unchanged.
    The layers are the model's own, so training one trains the other."""
    if (
        isinstance(model, Sequential)
        and len(model.layers) > 1
        and type(model.layers[-1]) is Softmax
        and type(loss) is CrossEntropy
    ):
        return Sequential(model.layers[:-1]), SoftmaxCrossEntropy(loss.reduction)
    return model, loss
