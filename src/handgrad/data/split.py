"""Holding images out of a set: a fraction or a count of it, drawn by a seeded generator.

The test split of data without a test set of its own (``--test-split``) is drawn by a generator seeded with
``TEST_SEED``, the same for every run, so runs of any seed are tested on the same images; the validation split
(``--val-split``) by one seeded with the run's seed (see :mod:`handgrad.train`).
"""

from __future__ import annotations

import numpy as np

from .._checks import is_number

TEST_SPLIT = 0.2  # the test share of data that has no test set of its own
TEST_SEED = 0


def held_out_count(split, n: int, option: str) -> int:
    """How many of ``n`` images ``split`` holds out: a fraction in [0, 1) of them, rounded, or a count.

    Raises ValueError naming ``option`` for anything else, for a fraction > 0 that rounds to no image, and for a
    split that would leave no image to train on.
    """
    if not is_number(split):
        expected = "a fraction in [0, 1) or a count of images"
        raise ValueError(f"{option}: expected {expected}, got {split!r}")
    if isinstance(split, float):
        if not 0 <= split < 1:
            raise ValueError(f"{option}: a fraction must lie in [0, 1), got {split} (a count is a whole number)")
        count = round(split * n)
        if split and not count:
            raise ValueError(f"{option} {split} of {n:,} images holds out none: give a larger fraction or a count")
    else:
        count = split
        if count < 0:
            raise ValueError(f"{option}: expected a count >= 0, got {count}")
    if count >= n:
        raise ValueError(f"{option} {split} holds out {count:,} of {n:,} images, leaving none to train on")
    return count


def hold_out(n: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held)``: indices of the ``n - count`` images kept and of the ``count`` drawn out, each in order."""
    order = rng.permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])
