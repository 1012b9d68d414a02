"""The convolution layer."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import init as initializers
from .._checks import positive_int
from ..declarations import Convolution
from ..shapes import Window
from .base import ParamLayer


class Conv2D(ParamLayer):
    """Cross-correlation (``mode="xcorr"``) or true convolution (``mode="conv"``) with a chosen centre.

    ``weight`` is (out_channels, in_channels/groups, kH, kW) and ``bias`` (out_channels,), drawn by ``init`` (see
    :mod:`handgrad.init`) from ``rng``.  The formulas, output size and backward are those of
    :func:`handgrad.functional.conv2d_forward` and ``conv2d_backward``; a ``padding_mode`` other than zeros fills
    the padding first (:func:`handgrad.functional.pad`), and its adjoint hands the padding's gradient back.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        mode="xcorr",
        center=None,
        bias=True,
        dtype=np.float32,
        *,
        dilation=1,
        groups=1,
        padding_mode="zeros",
        init="default",
        rng=None,
    ):
        super().__init__(dtype)
        self.in_channels = positive_int(in_channels, "in_channels", "Conv2D")
        self.out_channels = positive_int(out_channels, "out_channels", "Conv2D")
        self.groups = positive_int(groups, "groups", "Conv2D")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"Conv2D: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        if padding_mode not in F.padding.PADDING_MODES:
            raise ValueError(f"Conv2D: padding_mode must be one of {F.padding.PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.window = Window.of(kernel_size, stride, padding, mode, center, "Conv2D", dilation)
        area = self.window.kernel[0] * self.window.kernel[1]
        weight, b = initializers.get(init, "Conv2D")(
            np.random.default_rng() if rng is None else rng,
            (self.out_channels, self.in_channels // self.groups, *self.window.kernel),
            (self.out_channels,) if bias else None,
            self.in_channels // self.groups * area,
            self.out_channels // self.groups * area,
            self.dtype,
        )
        self.params["weight"] = weight
        if bias:
            self.params["bias"] = b

    def declaration(self):
        return Convolution(self.window, self.groups, self.padding_mode)

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"Conv2D: input must have {self.in_channels} channels, got shape {tuple(input_shape)}")
        return (n, self.out_channels, *self.window.output_size(h, w, "Conv2D"))

    def flops(self, input_shape):
        """Two per multiply-add, ``C/G * kH * kW`` multiply-adds per output element, plus the bias."""
        macs = self.in_channels // self.groups * self.window.kernel[0] * self.window.kernel[1]
        return int(np.prod(self.output_shape(input_shape))) * (2 * macs + ("bias" in self.params))

    def _forward(self, x):
        x, weight, bias, window = self.as_input(x), self.params["weight"], self.params.get("bias"), self.window
        if weight.shape[2:] != window.kernel:
            raise ValueError(
                f"Conv2D: weight must have the window's {window.kernel} kernel, got weight of shape {weight.shape}"
            )
        size = x.shape[2:]
        x, window = F.filled(x, window, self.padding_mode, "Conv2D")  # the padding's values, when not zeros
        y, cache = F.conv2d_forward(
            x, weight, bias, window.stride, window.padding, window.mode, window.center, window.dilation, self.groups
        )
        return y, (cache, size)

    def _backward(self, dy, cache, input_grad):
        cache, size = cache
        dx, dw, db = F.conv2d_backward(dy, cache, input_grad)
        dx = F.filled_backward(dx, self.window, self.padding_mode, size)
        return dx, ({"weight": dw} if db is None else {"weight": dw, "bias": db})

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, {self.window.describe()}, bias={'bias' in self.params}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text
