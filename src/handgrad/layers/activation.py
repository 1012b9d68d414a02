"""Parameter-free layers: activations, softmax and flatten."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import as_float_array, check_same_shape, is_number
from ..declarations import Clamp, Flattening, InvertedDropout, Logistic, NormalizedExponential
from .base import Layer


class ReLU(Layer):
    """``y = max(x, 0)``; the gradient at x = 0 is 0."""

    def declaration(self):
        return Clamp(0.0)

    def _forward(self, x):
        return F.relu_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.relu_backward(dy, cache), {}


class LeakyReLU(Layer):
    """``y = x`` for x > 0, else ``negative_slope * x``."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _forward(self, x):
        return F.leaky_relu_forward(x, self.negative_slope)

    def _backward(self, dy, cache, input_grad):
        return F.leaky_relu_backward(dy, cache), {}

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Layer):
    """``y = x`` for x > 0, else ``alpha * (e^x - 1)``."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)

    def _forward(self, x):
        return F.elu_forward(x, self.alpha)

    def _backward(self, dy, cache, input_grad):
        return F.elu_backward(dy, cache), {}

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Dropout(Layer):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)``; in evaluation mode (``eval()``) the identity.  Masks are drawn from ``rng``: give it the
    model's generator so that one seed fixes every mask (and a resumed run draws the same ones)."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if not is_number(p) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng() if rng is None else rng

    def declaration(self):
        return InvertedDropout(self.p)

    def _forward(self, x):
        if not self.training:  # the identity; the cache is the shape
            x = as_float_array(x, "x", "dropout")
            return x, x.shape
        return F.dropout_forward(x, self.p, self.rng)

    def _backward(self, dy, cache, input_grad):
        if isinstance(cache, tuple):  # evaluation mode
            dy = as_float_array(dy, "dy", "dropout_backward")
            check_same_shape(dy, cache, "dy", "dropout_backward")
            return dy.copy(), {}
        return F.dropout_backward(dy, cache), {}

    def predict(self, x):
        return as_float_array(x, "x", "dropout")

    def extra_repr(self):
        return f"p={self.p}"


class Sigmoid(Layer):
    """``y = 1 / (1 + e^-x)``, finite and warning-free for any finite x."""

    def declaration(self):
        return Logistic()

    def _forward(self, x):
        return F.sigmoid_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.sigmoid_backward(dy, cache), {}


class Tanh(Layer):
    """``y = tanh(x)``."""

    def _forward(self, x):
        return F.tanh_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.tanh_backward(dy, cache), {}


class Softmax(Layer):
    """Softmax over the features of (N, K) input; backward through each sample's full Jacobian."""

    def declaration(self):
        return NormalizedExponential()

    def _forward(self, x):
        return F.softmax_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.softmax_backward(dy, cache), {}


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def declaration(self):
        return Flattening()

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def flops(self, input_shape):
        return 0

    def _forward(self, x):
        return F.flatten_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.flatten_backward(dy, cache), {}
