"""Weight initialisers.  Each draws from the NumPy ``Generator`` it is given, so one seed fixes a model."""

from __future__ import annotations

import numpy as np


def fan_in_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, dtype) -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, PyTorch's default for ``Conv2d`` and ``Linear``."""
    bound = 1 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
