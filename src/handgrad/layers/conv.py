"""Convolution and max-pooling layers."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import init as initializers
from .._checks import positive_int
from ..shapes import Window
from .base import Layer, ParamLayer


class Conv2D(ParamLayer):
    """Cross-correlation (``mode="xcorr"``) or true convolution (``mode="conv"``) with a chosen centre.

    ``weight`` is (out_channels, in_channels, kH, kW) and ``bias`` (out_channels,), drawn by ``init``
    (see :mod:`handgrad.init`) from ``rng``.  The formulas, output size and backward are those of
    :func:`handgrad.functional.conv2d_forward` and ``conv2d_backward``.
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
        self.workspace = {}  # scratch memory the kernels reuse from step to step

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"Conv2D: input must have {self.in_channels} channels, got shape {tuple(input_shape)}")
        return (n, self.out_channels, *self.window.output_size(h, w, "Conv2D"))

    def flops(self, input_shape):
        """Two per multiply-add, ``C/G * kH * kW`` multiply-adds per output element, plus the bias."""
        macs = self.in_channels // self.groups * self.window.kernel[0] * self.window.kernel[1]
        return int(np.prod(self.output_shape(input_shape))) * (2 * macs + ("bias" in self.params))

    def predict(self, x):
        """``forward`` for inference, with temporaries of the call's own instead of the layer's ``workspace``.
        Kept scratch pays between a forward pass and its backward pass and from step to step; in inference it
        only adds every layer's scratch to the peak (the wide CNN's inference peak: 34-37 MiB kept, 25 MiB
        not), and allocating the temporaries was no slower (benchmarks/rounds.md, eighth round).  Nor does an
        inference pass then write over the columns a forward pass left for its backward."""
        return self._forward(x, keep_scratch=False)[0]

    def _forward(self, x, keep_scratch=True):
        x, weight, bias = self.as_input(x), self.params["weight"], self.params.get("bias")
        workspace = self.workspace if keep_scratch else None
        return F.conv2d_window_forward(x, weight, bias, self.window, self.groups, self.padding_mode, workspace)

    def pools_in_one_product(self, pool, input_shape) -> bool:
        """Whether ``forward_pooled`` takes this convolution and the max-pooling ``pool`` after it as one product
        for an input of ``input_shape``: where the geometry allows it (:func:`handgrad.functional.fusable`), and
        where it pays, a convolution of one input channel (a first layer on grey images): its products are small
        beside the memory work of its columns and of the pooling, which the product over the windows' phases
        shrinks.  In training, that is: inference takes only the maxima, and there it did not pay
        (benchmarks/rounds.md, fifteenth round)."""
        return (
            self.in_channels == 1
            and len(input_shape) == 4
            and F.fusable(self.window, pool.window, tuple(input_shape[2:]), self.groups, self.padding_mode)
        )

    def forward_pooled(self, x, pool, floor=None):
        """``pool.forward(max(self.forward(x), floor))`` as one product over the pooling windows' phases
        (:func:`handgrad.functional.conv2d_maxpool2d_forward`; ``floor=0`` for a ReLU in between), where
        :meth:`pools_in_one_product`.  ``backward`` then returns the gradient of the whole, and ``pool``'s
        ``indices`` are those of this pass."""
        x, weight, bias = self.as_input(x), self.params["weight"], self.params.get("bias")
        y, self._cache = F.conv2d_maxpool2d_forward(x, weight, bias, self.window, pool.window, floor, self.workspace)
        pool._cache = self._cache.pooling_cache()
        return y

    def _backward(self, dy, cache, input_grad):
        if isinstance(cache, F.ConvPoolCache):  # the last forward was forward_pooled
            dx, dw, db = F.conv2d_maxpool2d_backward(dy, cache, input_grad)
        else:
            dx, dw, db = F.conv2d_backward(dy, cache, input_grad)
        grads = {"weight": dw} if db is None else {"weight": dw, "bias": db}
        return dx, grads

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, {_window_repr(self.window)}, bias={'bias' in self.params}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class _Pool(Layer):
    """What the pooling layers share: a window, its output size, and its description."""

    window: Window

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c, *self.window.pooled_size(h, w, type(self).__name__))

    def extra_repr(self):
        return _window_repr(self.window)


class MaxPool2D(_Pool):
    """Max-pooling with Conv2D's window placement; ``stride=None`` means the window size.

    After a forward, ``indices`` (N, C, H_out, W_out) holds ``h*W + w`` of each window's maximum.  In
    evaluation mode the forward pass only takes the maxima; the winners are found when asked for.
    """

    def __init__(self, kernel_size, stride=None, padding=0, mode="xcorr", center=None, *, dilation=1, ceil_mode=False):
        super().__init__()
        self.window = Window.pooling(kernel_size, stride, padding, mode, center, "MaxPool2D", dilation, ceil_mode)
        self.workspace = {}  # scratch memory the kernels reuse from step to step (in training)

    def flops(self, input_shape):
        """One comparison per window cell."""
        return int(np.prod(self.output_shape(input_shape))) * self.window.kernel[0] * self.window.kernel[1]

    @property
    def indices(self):
        if self._cache is None:
            raise RuntimeError("MaxPool2D.indices exist after a forward pass")
        return self._cache.indices

    def windows_tile(self, input_shape) -> bool:
        """Whether the windows tile an input of this shape (N, C, H, W): side by side, each inside the input."""
        h, w = input_shape[2:]
        return F.windows_tile(self.window, (h, w), self.window.pooled_size(h, w, "MaxPool2D"))

    def forward_rectified(self, x):
        """``forward(relu(x))`` without forming ``relu(x)``: the maxima of ``max(x, 0)``, with its winners and
        ties, and a backward pass that is the derivative of the two, ReLU's ``[x > 0]`` at each winner included
        (see the ``floor`` of :func:`handgrad.functional.maxpool2d_forward`)."""
        y, self._cache = self._forward(x, floor=0.0)
        return y

    def predict_rectified(self, x):
        """``predict(relu(x))`` without forming ``relu(x)``."""
        return self._forward(x, winners=False, floor=0.0)[0]

    def _forward(self, x, winners=None, floor=None):
        winners = self.training if winners is None else winners
        return F.maxpool2d_window_forward(x, self.window, winners, floor, self.workspace)

    def predict(self, x):
        return self._forward(x, winners=False)[0]

    def _backward(self, dy, cache, input_grad):
        return F.maxpool2d_backward(dy, cache), {}

    def extra_repr(self):
        return _window_repr(self.window)


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
        return F.avgpool2d_window_forward(x, self.window, self.count_include_pad)

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


def _window_repr(w: Window) -> str:
    """The window's options, with padding written as PyTorch would take it when both sides agree."""
    padding = tuple(p[0] for p in w.padding) if all(p[0] == p[1] for p in w.padding) else w.padding
    text = f"kernel_size={w.kernel}, stride={w.stride}, padding={padding}, mode={w.mode!r}, center={w.center}"
    if w.dilation != (1, 1):
        text += f", dilation={w.dilation}"
    if w.ceil_mode:
        text += ", ceil_mode=True"
    return text
