"""Stateful layers: they keep parameters, gradients and caches, and call :mod:`handgrad.functional`."""

from .activation import ELU, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, ParamLayer
from .conv import Conv2D
from .linear import Linear
from .norm import BatchNorm1D, BatchNorm2D
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .residual import Residual

__all__ = [
    "ELU",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv2D",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPool2D",
    "ParamLayer",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
