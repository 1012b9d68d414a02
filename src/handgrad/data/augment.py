"""Augmentation: random crops of zero-padded images and horizontal flips, drawn per image.

For an image X (C, H, W) padded with P zeros on every side (Xp), a crop at offset (a, b), with or without a flip::

    Y[c, i, j] = Xp[c, a + i, b + j]                  (kept as it is)
    Y[c, i, j] = Xp[c, a + i, b + W - 1 - j]          (mirrored left to right)

with a and b drawn uniformly from {0, ..., 2P} and the flip with probability 1/2; P is an eighth of the larger
side, rounded (4 pixels for 28x28 and for 32x32), or 0 for flips alone (``"flip"``).  The draws come from the generator given, the run's one, so
a resumed run draws what an uninterrupted one does.  Flips are left out for images whose class a mirror
changes (digits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("none", "crop", "flip", "crop+flip", "auto")  # auto: crop, and flip unless mirroring changes a class
PADDING = 1 / 8  # of the larger side


@dataclass(frozen=True)
class Augmentation:
    padding: int
    flips: bool

    @classmethod
    def of(cls, kind: str, image_size: tuple[int, int], mirror_keeps_class: bool) -> Augmentation | None:
        """The augmentation ``kind`` names for images of ``image_size`` (H, W); None for ``"none"``."""
        if kind not in KINDS:
            raise ValueError(f"augment must be one of {KINDS}, got {kind!r}")
        if kind == "none":
            return None
        if kind == "flip":  # mirrors alone: no crop (a padding of 0 leaves one offset, (0, 0))
            return cls(0, True)
        flips = kind == "crop+flip" or (kind == "auto" and mirror_keeps_class)
        return cls(max(1, round(PADDING * max(image_size))), flips)

    def describe(self) -> str:
        parts = [f"random crops of images padded by {self.padding}"] if self.padding else []
        return ", ".join(parts + ["horizontal flips"] * self.flips)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets (n, 2), flips (n,))`` for n images: each crop's (a, b) and whether it is mirrored."""
        offsets = rng.integers(0, 2 * self.padding + 1, size=(n, 2))
        flips = rng.random(n) < 0.5 if self.flips else np.zeros(n, bool)
        return offsets, flips

    def apply(self, images: np.ndarray, offsets: np.ndarray, flips: np.ndarray) -> np.ndarray:
        """uint8 images (N, H, W) or (N, C, H, W) cropped at ``offsets`` of their padded copies and mirrored where
        ``flips``; one gather does both (a mirrored crop reads its columns in reverse)."""
        planes = images[:, None] if images.ndim == 3 else images  # (N, C, H, W)
        n, c, h, w = planes.shape
        p = self.padding
        padded = np.pad(planes, ((0, 0), (0, 0), (p, p), (p, p)))  # (N, C, H + 2P, W + 2P)
        rows = offsets[:, :1] + np.arange(h)  # (N, H): a + i
        cols = offsets[:, 1:] + np.where(flips[:, None], np.arange(w)[::-1], np.arange(w))  # (N, W): b + j or b + W-1-j
        index = (np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None])
        out = padded[(*index, rows[:, None, :, None], cols[:, None, None, :])]  # (N, C, H, W)
        return out[:, 0] if images.ndim == 3 else out

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(images, *self.draw(rng, len(images)))
