"""Mini-batches: seeded shuffling, a last partial batch, and conversion of uint8 images to float."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .._checks import is_number

NORMALIZATIONS = ("unit", "standard")


@dataclass(frozen=True)
class Normalizer:
    """uint8 images (N, H, W) -> float (N, 1, H, W), or (N, C, H, W) -> (N, C, H, W): ``x / 255``, then
    ``(x - mean) / std``, one mean and one standard deviation for every channel.

    ``mean = 0, std = 1`` gives values in [0, 1] ("unit"); :meth:`fit` with ``"standard"`` takes the
    training images' mean and standard deviation, so the inputs have mean 0 and variance 1.
    """

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not is_number(value) or not math.isfinite(value):
                raise ValueError(f"Normalizer: {name} must be a finite number, got {value!r}")
        if not self.std > 0:
            raise ValueError(f"Normalizer: std must be > 0, got {self.std} (images that are all one grey level?)")

    @classmethod
    def fit(cls, images: np.ndarray, kind: str) -> Normalizer:
        if kind not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
        if kind == "unit":
            return cls()
        if images.size == 0 or images.min() == images.max():  # exact on the pixels (a float std is ~1e-17)
            raise ValueError(
                f"normalization 'standard' needs images that are not all one grey level, got {images.shape[0]} "
                f"images of {'one grey level' if images.size else 'no pixels'}: use normalization 'unit'"
            )
        scaled = images.astype(np.float64) / 255
        return cls(float(scaled.mean()), float(scaled.std()))

    def __call__(self, images: np.ndarray, dtype=np.float32) -> np.ndarray:
        planes = images[:, None] if images.ndim == 3 else images  # (N, H, W) -> (N, 1, H, W): one channel
        x = planes.astype(dtype) / 255  # Python floats keep dtype
        return x if (self.mean, self.std) == (0.0, 1.0) else (x - self.mean) / self.std


def batch_indices(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index arrays of ``batch_size`` (the last one may be smaller); shuffled with ``rng`` if one is given."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.arange(n) if rng is None else rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
