"""Stateful layers: they keep parameters, gradients and caches, and call :mod:`handgrad.functional`."""

from .activation import Flatten, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, ParamLayer
from .conv import Conv2D, MaxPool2D
from .linear import Linear

__all__ = ["Conv2D", "Flatten", "Layer", "Linear", "MaxPool2D", "ParamLayer", "ReLU", "Sigmoid", "Softmax", "Tanh"]
