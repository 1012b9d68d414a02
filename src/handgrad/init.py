"""Weight initialisers.

Each initialiser is ``init(rng, weight_shape, bias_shape, fan_in, fan_out, dtype) -> (weight, bias)`` and
draws from the NumPy ``Generator`` it is given, so one seed fixes a whole model.  ``bias_shape`` is
None for a layer without bias, and so is the returned bias.  For a convolution
``fan_in = C_in * kH * kW`` and ``fan_out = C_out * kH * kW``; for ``Linear`` they are in and out.

==========  ===========================================  ==========================
name        weight                                       bias
==========  ===========================================  ==========================
default     U(-1/sqrt(fan_in), 1/sqrt(fan_in))           the same (PyTorch's default)
he          N(0, 2 / fan_in)   (He et al., for ReLU)     0
xavier      U(-sqrt(6/(fan_in+fan_out)), +...) (Glorot)  0
normal      0.01 * N(0, 1)   (the tutorials' scale*randn) 0
==========  ===========================================  ==========================
"""

from __future__ import annotations

import numpy as np


def _zeros(shape, dtype):
    return None if shape is None else np.zeros(shape, dtype=dtype)


def default(rng, weight_shape, bias_shape, fan_in, fan_out, dtype):
    """PyTorch's default for ``Conv2d`` and ``Linear``: weight and bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1 / np.sqrt(fan_in)
    weight = rng.uniform(-bound, bound, size=weight_shape).astype(dtype)
    bias = None if bias_shape is None else rng.uniform(-bound, bound, size=bias_shape).astype(dtype)
    return weight, bias


def he(rng, weight_shape, bias_shape, fan_in, fan_out, dtype):
    """He (Kaiming) normal: ``N(0, 2 / fan_in)``, which keeps activations' variance through ReLUs."""
    return (rng.standard_normal(weight_shape) * np.sqrt(2 / fan_in)).astype(dtype), _zeros(bias_shape, dtype)


def xavier(rng, weight_shape, bias_shape, fan_in, fan_out, dtype):
    """Xavier (Glorot) uniform: ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``."""
    bound = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=weight_shape).astype(dtype), _zeros(bias_shape, dtype)


def scaled_normal(scale: float):
    """The tutorials' ``scale * randn``: weights ``scale * N(0, 1)``, biases zero."""

    def init(rng, weight_shape, bias_shape, fan_in, fan_out, dtype):
        return (scale * rng.standard_normal(weight_shape)).astype(dtype), _zeros(bias_shape, dtype)

    init.__name__ = f"scaled_normal({scale})"
    return init


INITIALIZERS = {"default": default, "he": he, "xavier": xavier, "normal": scaled_normal(0.01)}


def get(init, where: str):
    """An initialiser by name, or a callable with the initialiser signature, as given."""
    if callable(init):
        return init
    if init not in INITIALIZERS:
        raise ValueError(f"{where}: init must be one of {tuple(INITIALIZERS)} or a callable, got {init!r}")
    return INITIALIZERS[init]
