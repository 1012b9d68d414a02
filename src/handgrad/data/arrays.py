"""Data from arrays: NumPy arrays in memory, or an ``.npz`` file of them, checked before anything trains.

An ``.npz`` file holds ``x``, uint8 images (N, H, W) or (N, C, H, W), and ``y``, their integer labels (N,);
optionally ``x_test`` and ``y_test`` (both or neither), and ``classes``, an array of class names (text, or bytes
read as UTF-8).  Without ``classes`` the classes are named ``"0"`` to ``"K-1"``, K one more than the largest label,
and K may not exceed the number of images.  It is read with ``allow_pickle=False``: nothing in it can run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .._checks import kind_of
from .datasets import Dataset
from .split import TEST_SEED, TEST_SPLIT, held_out_count, hold_out

NPZ_KEYS = ("x", "y", "x_test", "y_test", "classes")


def from_arrays(x, y, x_test=None, y_test=None, classes=None, *, test_split=None, title="arrays", source=None):
    """A :class:`Dataset` of uint8 images ``x`` (N, H, W) or (N, C, H, W) and integer labels ``y`` (N,).

    Without ``x_test`` and ``y_test``, ``test_split`` (a fraction or a count, by default ``TEST_SPLIT``) of the
    images is held out as the test set, drawn by a generator seeded with ``TEST_SEED``.  ``classes`` names the
    classes (by default ``"0"`` to ``"K-1"``, K one more than the largest label and at most the number of
    images).  Errors name ``title``.
    """
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{title}: expected both x_test and y_test or neither, got only one")
    x, y = _images(x, "x", title), _labels(y, "y", len(x), title)
    if x_test is None:
        count = held_out_count(TEST_SPLIT if test_split is None else test_split, len(x), f"{title}: test split")
        if not count:
            raise ValueError(f"{title}: a test split of 0 leaves no test images: give a fraction or a count > 0")
        kept, held = hold_out(len(x), count, np.random.default_rng(TEST_SEED))
        x, y, x_test, y_test = x[kept], y[kept], x[held], y[held]
    else:
        if test_split is not None:
            raise ValueError(f"{title}: it has its own test set (x_test, y_test), so no test split is drawn")
        x_test = _images(x_test, "x_test", title)
        y_test = _labels(y_test, "y_test", len(x_test), title)
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"{title}: x_test must hold images of x's shape {x.shape[1:]}, got {x_test.shape[1:]}")
    largest = int(max(y.max(), y_test.max()))
    names = _class_names(classes, largest, len(y) + len(y_test), title)
    return Dataset(title, names, x, y, x_test, y_test, source)


def _images(x, name: str, title: str) -> np.ndarray:
    """uint8 (N, H, W) or (N, C, H, W) of at least one image; (N, 1, H, W) becomes (N, H, W)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim not in (3, 4) or not len(x):
        found = kind_of(x)
        raise ValueError(
            f"{title}: {name} must be uint8 pixels (N, H, W) or (N, C, H, W) of at least one image, got {found} "
            f"(convert images in [0, 1] with (x * 255).round().astype(np.uint8))"
        )
    return x[:, 0] if x.ndim == 4 and x.shape[1] == 1 else x


def _labels(y, name: str, n: int, title: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (n,):
        found = kind_of(y)
        raise ValueError(f"{title}: {name} must be integer labels ({n},), one per image, got {found}")
    if y.min() < 0:
        raise ValueError(f"{title}: {name} must hold labels >= 0, got {y.min()}")
    return y


def _class_names(classes, largest: int, image_count: int, title: str) -> tuple[str, ...]:
    """The names of classes 0 to K-1: ``classes``, or without them the labels themselves, K the largest + 1 (at
    most one class per image: more means labels that are not numbered from 0)."""
    if classes is None:
        if largest >= image_count:
            raise ValueError(
                f"{title}: labels go up to {largest}, more classes than the {image_count:,} images; number them 0 to "
                f"K-1, or give classes"
            )
        names = tuple(str(k) for k in range(largest + 1))
    else:
        names = tuple(_name(c, title) for c in np.asarray(classes).ravel()) if np.ndim(classes) == 1 else ()
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{title}: classes must be a list of distinct names, got {classes!r:.80}")
        if largest >= len(names):
            raise ValueError(
                f"{title}: labels go up to {largest}, outside the {len(names)} classes (labels 0 to {len(names) - 1})"
            )
    if len(names) < 2:
        raise ValueError(f"{title}: every label is 0, a single class: a classifier needs at least two")
    return names


def _name(value, title: str) -> str:
    """A class name: text as it is, bytes read as UTF-8."""
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{title}: class name {bytes(value)!r} is not UTF-8 text") from None


def load_npz(path, test_split=None) -> Dataset:
    """The arrays of an ``.npz`` file (see the module's docstring) as a :class:`Dataset`; errors name the file."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: expected an .npz file (a zip archive of arrays), found another kind of file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    except ValueError as error:  # an array of Python objects, which only pickle could read
        raise ValueError(
            f"{path}: an array needs pickle, which handgrad never uses ({error}); store names as strings"
        ) from None
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown arrays {unknown}; expected x, y and optionally x_test, y_test, classes")
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise ValueError(f"{path}: expected arrays x (images) and y (labels), missing {missing}")
    return from_arrays(**arrays, test_split=test_split, title=str(path), source=path)
