"""The formulas of :mod:`handgrad.functional` transcribed as plain Python loops, index by index.

Slow on purpose: they are what the fast kernels are tested against and what a reader checks the
derivations with.  Inputs are float64 arrays; outputs are float64.  :mod:`.derivation` adds the
convolution's backward pass written with whole arrays exactly as the derivation states it (dilate, pad,
correlate with the rotated kernel).
"""

from . import activation, conv, derivation, linear, losses, norm, pool
from .activation import (
    dropout_backward,
    dropout_forward,
    elu_backward,
    elu_forward,
    flatten_backward,
    flatten_forward,
    leaky_relu_backward,
    leaky_relu_forward,
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
from .losses import cross_entropy, mse, smoothed_targets, softmax_cross_entropy
from .norm import batchnorm_backward, batchnorm_forward
from .pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

__all__ = [
    "activation",
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "conv",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy",
    "derivation",
    "dropout_backward",
    "dropout_forward",
    "elu_backward",
    "elu_forward",
    "flatten_backward",
    "flatten_forward",
    "global_avgpool2d_backward",
    "global_avgpool2d_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear",
    "linear_backward",
    "linear_forward",
    "losses",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse",
    "norm",
    "pool",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "smoothed_targets",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_forward",
    "softmax_jacobian",
    "tanh_backward",
    "tanh_forward",
]
