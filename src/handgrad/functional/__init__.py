"""Pure kernels: ``*_forward(x, ...) -> (y, cache)`` and ``*_backward(dy, cache) -> gradients``.

They hold every formula of handgrad; :mod:`handgrad.layers` only keeps their parameters and caches,
and :mod:`handgrad.reference` transcribes the same formulas as plain loops.
"""

from . import padding
from .activation import (
    dropout_backward,
    dropout_forward,
    elu_backward,
    elu_forward,
    flatten_backward,
    flatten_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu,
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
from .losses import (
    class_targets,
    cross_entropy_backward,
    cross_entropy_forward,
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .norm import batchnorm_backward, batchnorm_forward
from .pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    windows_tile,
)

__all__ = [
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "class_targets",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
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
    "linear_backward",
    "linear_forward",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse_backward",
    "mse_forward",
    "padding",
    "relu",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "softmax_forward",
    "softmax_jacobian",
    "tanh_backward",
    "tanh_forward",
    "windows_tile",
]
