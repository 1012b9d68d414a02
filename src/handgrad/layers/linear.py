"""The fully connected layer."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import positive_int
from ..init import fan_in_uniform
from .base import ParamLayer


class Linear(ParamLayer):
    """``Y = X W + B`` with ``weight`` (in_features, out_features) and ``bias`` (out_features,).

    The matrix form of the derivations (note: PyTorch stores the transpose, (out, in)).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__(dtype)
        self.in_features = positive_int(in_features, "in_features", "Linear")
        self.out_features = positive_int(out_features, "out_features", "Linear")
        rng = np.random.default_rng() if rng is None else rng
        self.params["weight"] = fan_in_uniform(rng, (self.in_features, self.out_features), self.in_features, self.dtype)
        if bias:
            self.params["bias"] = fan_in_uniform(rng, (self.out_features,), self.in_features, self.dtype)

    def _forward(self, x):
        return F.linear_forward(self.as_input(x), self.params["weight"], self.params.get("bias"))

    def _backward(self, dy, cache):
        dx, dw, db = F.linear_backward(dy, cache)
        return dx, ({"weight": dw} if db is None else {"weight": dw, "bias": db})

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={'bias' in self.params}"
