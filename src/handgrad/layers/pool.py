"""Pooling layers: max, average and global average."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..declarations import MaxPooling
from ..shapes import Window
from .base import Layer


class _Pool(Layer):
    """What the windowed pooling layers share: a window, its output size, and its description."""

    window: Window

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c, *self.window.pooled_size(h, w, type(self).__name__))

    def extra_repr(self):
        return self.window.describe()


class MaxPool2D(_Pool):
    """Max-pooling with Conv2D's window placement; ``stride=None`` means the window size.

    After a forward, ``indices`` (N, C, H_out, W_out) holds ``h*W + w`` of each window's maximum.
    """

    def __init__(self, kernel_size, stride=None, padding=0, mode="xcorr", center=None, *, dilation=1, ceil_mode=False):
        super().__init__()
        self.window = Window.pooling(kernel_size, stride, padding, mode, center, "MaxPool2D", dilation, ceil_mode)

    def declaration(self):
        return MaxPooling(self.window)

    def flops(self, input_shape):
        """One comparison per window cell."""
        return int(np.prod(self.output_shape(input_shape))) * self.window.kernel[0] * self.window.kernel[1]

    @property
    def indices(self):
        if self._cache is None:
            raise RuntimeError("MaxPool2D.indices exist after a forward pass")
        return self._cache.indices

    def _forward(self, x):
        w = self.window
        return F.maxpool2d_forward(x, w.kernel, w.stride, w.padding, w.mode, w.center, w.dilation, w.ceil_mode)

    def _backward(self, dy, cache, input_grad):
        return F.maxpool2d_backward(dy, cache), {}


class AvgPool2D(_Pool):
    """Average-pooling with MaxPool2D's window placement; padding counts as zeros (``count_include_pad``)."""

    def __init__(
        self, kernel_size, stride=None, padding=0, mode="xcorr", center=None, *, ceil_mode=False, count_include_pad=True
    ):
        super().__init__()
        self.window = Window.pooling(kernel_size, stride, padding, mode, center, "AvgPool2D", ceil_mode=ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def flops(self, input_shape):
        """One addition per window cell, and a division per output."""
        return int(np.prod(self.output_shape(input_shape))) * (self.window.kernel[0] * self.window.kernel[1] + 1)

    def _forward(self, x):
        w = self.window
        return F.avgpool2d_forward(
            x, w.kernel, w.stride, w.padding, w.mode, w.center, w.ceil_mode, self.count_include_pad
        )

    def _backward(self, dy, cache, input_grad):
        return F.avgpool2d_backward(dy, cache), {}

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")


class GlobalAvgPool2D(Layer):
    """The mean of each feature map: (N, C, H, W) -> (N, C)."""

    def output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def flops(self, input_shape):
        return int(np.prod(input_shape))

    def _forward(self, x):
        return F.global_avgpool2d_forward(x)

    def _backward(self, dy, cache, input_grad):
        return F.global_avgpool2d_backward(dy, cache), {}
