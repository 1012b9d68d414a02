"""Parameter-free layers: activations, softmax and flatten."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .base import Layer


class ReLU(Layer):
    """``y = max(x, 0)``; the gradient at x = 0 is 0."""

    def _forward(self, x):
        return F.relu_forward(x)

    def predict(self, x):
        return F.relu(x)

    def _backward(self, dy, cache, input_grad):
        return F.relu_backward(dy, cache), {}


class Sigmoid(Layer):
    """``y = 1 / (1 + e^-x)``, finite and warning-free for any finite x."""

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

    def _forward(self, x):
        return F.softmax_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.softmax_backward(dy, cache), {}


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def flops(self, input_shape):
        return 0

    def _forward(self, x):
        return F.flatten_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.flatten_backward(dy, cache), {}
