"""handgrad: a convolutional neural network library in NumPy whose every gradient is derived by hand.

- :mod:`handgrad.functional`: the pure kernels, each docstring giving its formula and its gradients;
- :mod:`handgrad.reference`: the same formulas as plain loops;
- :mod:`handgrad.layers` and :mod:`handgrad.losses`: stateful wrappers with ``forward`` and ``backward``;
- :class:`Sequential`, and :func:`gradcheck` to check any layer or model against central differences;
- :func:`compile`: the fast tier (:mod:`handgrad.fast`), a plan that runs a model's mathematics faster;
- :mod:`handgrad.data` and :mod:`handgrad.presets`: datasets (named, folders of images, arrays) and named models;
- :func:`fit`: the training loop of ``handgrad train``; :class:`Classifier` and :func:`load`: a trained model with
  its normaliser and class names, in one file.
"""

from . import data, functional, layers, losses, presets, reference
from .classifier import Classifier, load
from .fast import CompiledModel, compile
from .model import Sequential
from .numgrad import gradcheck, gradcheck_loss, numerical_gradient
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "CompiledModel",
    "Sequential",
    "compile",
    "data",
    "fit",
    "functional",
    "gradcheck",
    "gradcheck_loss",
    "layers",
    "load",
    "losses",
    "numerical_gradient",
    "presets",
    "reference",
]
