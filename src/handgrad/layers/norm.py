"""Batch normalisation layers."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import as_float_array, check_shape, positive_int
from ..declarations import BatchNormalization
from .base import ParamLayer


class _BatchNorm(ParamLayer):
    """Per-channel normalisation with running statistics; see :func:`handgrad.functional.batchnorm_forward`.

    ``weight`` (gamma) starts at ones and ``bias`` (beta) at zeros; ``buffers`` hold ``running_mean``
    (zeros) and ``running_var`` (ones).  In training mode the batch statistics are used and the running
    ones updated; in evaluation mode (``eval()``) the running ones are used.
    """

    ndim: int
    layout: str

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__(dtype)
        name = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must lie in [0, 1], got {momentum}")
        self.eps, self.momentum = float(eps), float(momentum)
        if affine:
            self.params["weight"] = np.ones(self.num_features, dtype=self.dtype)
            self.params["bias"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_mean"] = np.zeros(self.num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(self.num_features, dtype=self.dtype)

    def declaration(self):
        return BatchNormalization(self.eps, self.momentum)

    def check_input(self, x) -> np.ndarray:
        """``x`` in the parameters' dtype, checked to be (N, C) or (N, C, H, W) with this layer's channels."""
        name = type(self).__name__
        x = as_float_array(self.as_input(x), "x", name)
        check_shape(x, self.ndim, self.layout, "x", name)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: x must have {self.num_features} channels, got shape {x.shape}")
        return x

    def _forward(self, x):
        x = self.check_input(x)
        y, cache, running = F.batchnorm_forward(
            x,
            self.params.get("weight"),
            self.params.get("bias"),
            self.buffers["running_mean"],
            self.buffers["running_var"],
            self.training,
            self.momentum,
            self.eps,
        )
        if self.training:  # in place, so that references to the buffers stay valid
            np.copyto(self.buffers["running_mean"], running[0])
            np.copyto(self.buffers["running_var"], running[1])
        return y, cache

    def predict(self, x):
        """Inference with the running statistics (whatever the mode), changing nothing."""
        training, self.training = self.training, False
        try:
            return self._forward(x)[0]
        finally:
            self.training = training

    def _backward(self, dy, cache, input_grad):
        dx, dgamma, dbeta = F.batchnorm_backward(dy, cache)
        return dx, ({} if dgamma is None else {"weight": dgamma, "bias": dbeta})

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={'weight' in self.params}"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of images (N, C, H, W), statistics per channel over N, H and W."""

    ndim, layout = 4, "(N, C, H, W)"


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of features (N, C), statistics per feature over the batch."""

    ndim, layout = 2, "(N, C)"
