"""The fast tier: a plan compiled from a model that runs the formula tier's mathematics faster.

``handgrad.compile(model)`` returns a :class:`CompiledModel` with the model's own parameters, gradients and names.
Its steps (:mod:`.plan`, :mod:`.steps`) keep images in (C, H, W, N) memory, batch innermost (:mod:`._layout`), reuse
their scratch from step to step (:mod:`._scratch`), and fuse what their layers' declarations allow: a convolution of
one input channel with the clamp and max-pooling after it as one product (:mod:`.conv_pool`), a clamp taken into a
max-pooling (:mod:`.pool`), a clamp written over an array the plan owns; and the training loop trains a softmax
layer with cross-entropy as the fused loss (:mod:`.head`). The tests hold every step to the formula tier's layers
(:mod:`handgrad.functional`). This package uses the formula tier; nothing in the formula tier uses this one.
"""

from .plan import CompiledModel, compile

__all__ = ["CompiledModel", "compile"]
