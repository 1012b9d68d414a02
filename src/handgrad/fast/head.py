"""The softmax + cross-entropy fusion: a model that ends in a softmax, trained or scored with cross-entropy on
its probabilities, runs as the layers before the softmax with the fused loss on their logits.

Both give the same loss, ``L = -(1/N) sum_n ln softmax(Z)[n, t_n]``, and in exact arithmetic the same gradient
``dL/dZ = (Y - T) / N``.  In floating point the unfused pair takes ``dL/dY = -T / (N Y)`` through the softmax's
Jacobian, and once the true class's probability falls below the smallest normal number (a logit gap over about
87 in float32) that class's gradient is lost: at a gap of 100 the pair gives under 1e-5 where the fused form
gives ``-1/N``, and the model stops learning from the very samples it gets most wrong; its loss is floored at
``-ln tiny`` (87.3) where the fused one is exact.  The layers keep their own backward passes (the Jacobian path
the formula tier teaches); the training loop and the classifier take the fused one.
"""

from __future__ import annotations

from ..declarations import NormalizedExponential
from ..losses import CrossEntropy, SoftmaxCrossEntropy
from ..model import Sequential
from .plan import CompiledModel, declared


def ends_in_softmax(model) -> bool:
    """Whether ``model`` is a :class:`Sequential` whose last layer declares a softmax."""
    layers = model.layers if isinstance(model, Sequential) else []
    return bool(layers) and isinstance(declared(layers[-1]), NormalizedExponential)


def fused_head(model, loss):
    """``(model, loss)`` to run: ``(the model without its last layer, SoftmaxCrossEntropy)`` when the model is a
    :class:`Sequential` whose last layer declares a softmax and the loss is :class:`CrossEntropy` itself (a
    subclass may compute something else), with the same reduction; otherwise both unchanged.  The layers are
    the model's own, so training one trains the other."""
    if ends_in_softmax(model) and len(model.layers) > 1 and type(loss) is CrossEntropy:
        return Sequential(model.layers[:-1]), SoftmaxCrossEntropy(loss.reduction)
    return model, loss


def compile_with_loss(model, loss) -> tuple[CompiledModel, object]:
    """``(compiled model, loss)`` as training and scoring run them: :func:`fused_head`'s pair, the model compiled
    (:func:`handgrad.compile`)."""
    run, objective = fused_head(model, loss)
    return CompiledModel(run), objective
