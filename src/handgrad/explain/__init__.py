"""Derivations shown on real numbers: each layer's forward and backward pass worked out by hand on a small
example with readable integers, every result checked against the kernel.

An :class:`Explanation` holds the inputs and a list of :class:`Step`: a formula, the worked terms, the
result computed here by hand, and the same result from :mod:`handgrad.functional`.  ``text()`` and
``markdown()`` (LaTeX formulas) render it; ``handgrad explain conv|pool|linear|softmax|batchnorm`` prints it,
and :mod:`handgrad.figures` draws it.
"""

from .activations import activations, softmax
from .batchnorm import batchnorm
from .conv import conv
from .explanation import Explanation, Step, grid_text, number
from .linear import linear, residual
from .pool import pool

EXPLAINERS = {
    "conv": conv,
    "pool": pool,
    "linear": linear,
    "activations": activations,
    "softmax": softmax,
    "batchnorm": batchnorm,
    "residual": residual,
}

__all__ = [
    "EXPLAINERS",
    "Explanation",
    "Step",
    "activations",
    "batchnorm",
    "conv",
    "grid_text",
    "linear",
    "number",
    "pool",
    "residual",
    "softmax",
]
