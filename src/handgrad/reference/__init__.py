"""The formulas of :mod:`handgrad.functional` transcribed as plain Python loops, index by index.

Slow on purpose: they are what the fast kernels are tested against and what a reader checks the
derivations with.  Inputs are float64 arrays; outputs are float64.  :mod:`.derivation` adds the
convolution's backward pass written with whole arrays exactly as the derivation states it (dilate, pad,
correlate with the rotated kernel).
"""

from . import activation, conv, derivation, linear, losses, pool
from .activation import (
    flatten_backward,
    flatten_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    softmax_jacobian,
    tanh_backward,
    tanh_forward,
)
from .conv import conv2d_backward, conv2d_forward
from .linear import linear_backward, linear_forward
from .losses import cross_entropy, mse, softmax_cross_entropy
from .pool import maxpool2d_backward, maxpool2d_forward

__all__ = [
    "activation",
    "conv",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy",
    "derivation",
    "flatten_backward",
    "flatten_forward",
    "linear",
    "linear_backward",
    "linear_forward",
    "losses",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse",
    "pool",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_forward",
    "softmax_jacobian",
    "tanh_backward",
    "tanh_forward",
]
