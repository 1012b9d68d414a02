"""The fully connected layer."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import init as initializers
from .._checks import positive_int
from ..declarations import Affine
from .base import ParamLayer


class Linear(ParamLayer):
    """``Y = X W + B`` with ``weight`` (in_features, out_features) and ``bias`` (out_features,).

    The matrix form of the derivations (note: PyTorch stores the transpose, (out, in)).  The parameters
    are drawn by ``init`` (see :mod:`handgrad.init`) from ``rng``.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, *, init="default", rng=None):
        super().__init__(dtype)
        self.in_features = positive_int(in_features, "in_features", "Linear")
        self.out_features = positive_int(out_features, "out_features", "Linear")
        weight, b = initializers.get(init, "Linear")(
            np.random.default_rng() if rng is None else rng,
            (self.in_features, self.out_features),
            (self.out_features,) if bias else None,
            self.in_features,
            self.out_features,
            self.dtype,
        )
        self.params["weight"] = weight
        if bias:
            self.params["bias"] = b

    def declaration(self):
        return Affine()

    def output_shape(self, input_shape):
        if tuple(input_shape[1:]) != (self.in_features,):
            raise ValueError(f"Linear: input must be (N, {self.in_features}), got shape {tuple(input_shape)}")
        return (input_shape[0], self.out_features)

    def flops(self, input_shape):
        """Two per multiply-add, ``in_features`` of them per output, plus the bias."""
        return input_shape[0] * self.out_features * (2 * self.in_features + ("bias" in self.params))

    def _forward(self, x):
        return F.linear_forward(self.as_input(x), self.params["weight"], self.params.get("bias"))

    def _backward(self, dy, cache, input_grad):
        dx, dw, db = F.linear_backward(dy, cache, input_grad)
        return dx, ({"weight": dw} if db is None else {"weight": dw, "bias": db})

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={'bias' in self.params}"
