"""The formula tier's kernels: ``*_forward(x, ...) -> (y, cache)`` and ``*_backward(dy, cache) -> gradients``.

Each kernel is one short function whose body reads like the formula in its docstring, on plain (N, C, H, W)
arrays.  :mod:`handgrad.layers` keeps their parameters and caches, :mod:`handgrad.reference` transcribes the same
formulas as plain loops, and :mod:`handgrad.fast` runs the same mathematics faster for a compiled model.
"""

from . import padding
from .activation import (
    dropout_backward,
    dropout_forward,
    dropout_keep,
    dropout_scale,
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
from .conv import col2im, conv2d_backward, conv2d_forward, im2col
from .linear import linear_backward, linear_forward
from .losses import (
    class_targets,
    cross_entropy_backward,
    cross_entropy_forward,
    mse_backward,
    mse_forward,
    smoothed_targets,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .norm import batchnorm_backward, batchnorm_forward
from .padding import filled, filled_backward, pad, pad_backward
from .pool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

__all__ = [
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "class_targets",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dropout_backward",
    "dropout_forward",
    "dropout_keep",
    "dropout_scale",
    "elu_backward",
    "elu_forward",
    "filled",
    "filled_backward",
    "flatten_backward",
    "flatten_forward",
    "global_avgpool2d_backward",
    "global_avgpool2d_forward",
    "im2col",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "mse_backward",
    "mse_forward",
    "pad",
    "pad_backward",
    "padding",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "smoothed_targets",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "softmax_forward",
    "softmax_jacobian",
    "tanh_backward",
    "tanh_forward",
]
