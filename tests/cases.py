"""The one table of layer cases that the oracle files share: each row says how to make a float64 layer, the inputs
to try, its loop reference and its PyTorch twin, and every oracle (the loops, the numerical gradient, PyTorch,
the compiled model) runs over every row.  Adding a layer is adding a row.

The windowed layers (Conv2D, MaxPool2D, AvgPool2D) have option sweeps of their own in each oracle file, and
BatchNorm's running statistics and Dropout's masks have tests of their own beside these rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF
from helpers import off_kinks

from handgrad import reference as R
from handgrad.layers import (
    ELU,
    BatchNorm1D,
    BatchNorm2D,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)

IMAGES, FEATURES = [(1, 1, 1, 1), (2, 3, 4, 5)], [(1, 1), (3, 4), (6, 10)]


@dataclass(frozen=True)
class Case:
    name: str  # as the oracle report names it
    make: Callable  # (rng) -> a float64 layer
    shapes: list  # input shapes to try
    reference: Callable  # (x, layer, dy) -> (y, dx, {param: gradient}) by the loops of handgrad.reference
    torch: Callable  # (layer) -> f(x, *parameters as tensors, in the layer's order) with PyTorch's operations
    scale: float = 3.0  # inputs are scale * uniform(-1, 1) kept off 0 (the kinks)

    def input(self, rng, shape) -> np.ndarray:
        return self.scale * off_kinks(rng, shape)

    def __str__(self) -> str:
        return self.name


def _elementwise(forward, backward):
    """The reference of a parameter-free layer whose loops take x: ``forward(x)``, ``backward(dy, x)``."""
    return lambda x, layer, dy: (forward(x), backward(dy, x), {})


def _linear(x, layer, dy):
    w, b = layer.params["weight"], layer.params.get("bias")
    dx, dw, db = R.linear_backward(dy, x, w, b is not None)
    return R.linear_forward(x, w, b), dx, {"weight": dw} if b is None else {"weight": dw, "bias": db}


def _batchnorm(x, layer, dy):
    gamma, beta = layer.params["weight"], layer.params["bias"]
    running = layer.buffers["running_mean"], layer.buffers["running_var"]
    y, _, _ = R.batchnorm_forward(x, gamma, beta, *running, layer.training, layer.momentum, layer.eps)
    dx, dgamma, dbeta = R.batchnorm_backward(dy, x, gamma, *running, layer.training, layer.eps)
    return y, dx, {"weight": dgamma, "bias": dbeta}


def _torch_batchnorm(layer):
    running = [torch.tensor(layer.buffers[k].copy()) for k in ("running_mean", "running_var")]
    return lambda a, g, b: TF.batch_norm(a, *running, g, b, layer.training, layer.momentum, layer.eps)


def _batchnorm_layer(cls, channels, training):
    def make(rng):
        layer = cls(channels, eps=1e-3, momentum=0.2, dtype=np.float64)
        layer.params["weight"][:], layer.params["bias"][:] = rng.standard_normal((2, channels))
        layer.buffers["running_mean"][:] = rng.standard_normal(channels)
        layer.buffers["running_var"][:] = rng.uniform(0.5, 2, channels)
        return layer.train(training)

    return make


CASES = [
    Case(
        "ReLU",
        lambda rng: ReLU(),
        FEATURES + IMAGES,
        _elementwise(R.relu_forward, R.relu_backward),
        lambda _: torch.relu,
    ),
    Case(
        "LeakyReLU",
        lambda rng: LeakyReLU(0.15),
        FEATURES + IMAGES,
        lambda x, layer, dy: (R.leaky_relu_forward(x, 0.15), R.leaky_relu_backward(dy, x, 0.15), {}),
        lambda _: torch.nn.LeakyReLU(0.15),
    ),
    Case(
        "ELU",
        lambda rng: ELU(1.3),
        FEATURES + IMAGES,
        lambda x, layer, dy: (R.elu_forward(x, 1.3), R.elu_backward(dy, x, 1.3), {}),
        lambda _: torch.nn.ELU(1.3),
    ),
    Case(
        "Sigmoid",
        lambda rng: Sigmoid(),
        FEATURES + IMAGES,
        _elementwise(R.sigmoid_forward, R.sigmoid_backward),
        lambda _: torch.sigmoid,
    ),
    Case(
        "Tanh",
        lambda rng: Tanh(),
        FEATURES + IMAGES,
        _elementwise(R.tanh_forward, R.tanh_backward),
        lambda _: torch.tanh,
    ),
    Case(
        "Softmax",
        lambda rng: Softmax(),
        FEATURES,
        _elementwise(R.softmax_forward, R.softmax_backward),
        lambda _: lambda a: torch.softmax(a, dim=1),
    ),
    Case(
        "Flatten",
        lambda rng: Flatten(),
        FEATURES + IMAGES,
        lambda x, layer, dy: (R.flatten_forward(x), R.flatten_backward(dy, x.shape), {}),
        lambda _: lambda a: a.flatten(1),
    ),
    Case(
        "Linear",
        lambda rng: Linear(4, 3, dtype=np.float64, rng=rng),
        [(1, 4), (7, 4)],
        _linear,
        lambda _: lambda a, w, b: TF.linear(a, w.T, b),  # PyTorch stores the weight as (out, in)
    ),
    Case(
        "Linear",
        lambda rng: Linear(5, 1, bias=False, dtype=np.float64, rng=rng),
        [(1, 5), (6, 5)],
        _linear,
        lambda _: lambda a, w: TF.linear(a, w.T),
    ),
    Case(
        "GlobalAvgPool2D",
        lambda rng: GlobalAvgPool2D(),
        IMAGES,
        lambda x, layer, dy: (R.global_avgpool2d_forward(x), R.global_avgpool2d_backward(dy, x.shape), {}),
        lambda _: lambda a: TF.adaptive_avg_pool2d(a, 1).flatten(1),
    ),
    Case("BatchNorm", _batchnorm_layer(BatchNorm2D, 3, True), [(4, 3, 5, 6)], _batchnorm, _torch_batchnorm),
    Case(
        "BatchNorm", _batchnorm_layer(BatchNorm2D, 3, False), [(1, 3, 2, 2), (4, 3, 5, 6)], _batchnorm, _torch_batchnorm
    ),
    Case("BatchNorm", _batchnorm_layer(BatchNorm1D, 5, True), [(7, 5)], _batchnorm, _torch_batchnorm),
    Case("BatchNorm", _batchnorm_layer(BatchNorm1D, 5, False), [(1, 5), (7, 5)], _batchnorm, _torch_batchnorm),
    Case(
        "Dropout",
        lambda rng: Dropout(0.4).eval(),  # evaluation mode: the identity; training masks have their own tests
        FEATURES + IMAGES,
        lambda x, layer, dy: (x, dy, {}),
        lambda _: lambda a: TF.dropout(a, 0.4, training=False),
    ),
]
