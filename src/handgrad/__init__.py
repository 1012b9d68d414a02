"""handgrad: a convolutional neural network library in NumPy whose every gradient is derived by hand.

- :mod:`handgrad.functional`: the pure kernels, each docstring giving its formula and its gradients;
- :mod:`handgrad.reference`: the same formulas as plain loops;
- :mod:`handgrad.layers` and :mod:`handgrad.losses`: stateful wrappers with ``forward`` and ``backward``;
- :class:`Sequential`, and :func:`gradcheck` to check any layer or model against central differences;
- :func:`compile`: the fast tier (:mod:`handgrad.fast`), a plan that runs a model's mathematics faster.
"""

from . import functional, layers, losses, reference
from .fast import CompiledModel, compile
from .model import Sequential
from .numgrad import gradcheck, gradcheck_loss, numerical_gradient

__version__ = "0.1.0"

__all__ = [
    "CompiledModel",
    "Sequential",
    "compile",
    "functional",
    "gradcheck",
    "gradcheck_loss",
    "layers",
    "losses",
    "numerical_gradient",
    "reference",
]
