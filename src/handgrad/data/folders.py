"""Data from a folder of images: one sub-folder per class, as torchvision's ``ImageFolder`` and Keras'
``image_dataset_from_directory`` read it.

::

    flowers/                    or    flowers/
      daisy/  a.png b.jpg ...           train/  daisy/ ...  rose/ ...
      rose/   c.jpeg ...                test/   daisy/ ...  rose/ ...

The classes are the sub-folders' names, sorted; the images are the PNG and JPEG files in them (by suffix; other
files and hidden folders are passed over).  Every image is converted to ``channels`` (1: grey, 3: colour) and
resized to ``image_size`` (H, W); without them, the first image's channels and size are taken, and an image of
another size is an error.  With ``train/`` and ``test/`` sub-folders those are the two splits; otherwise a test
split is drawn from the images (:func:`~handgrad.data.split.hold_out`, seeded with ``TEST_SEED``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .arrays import from_arrays
from .images import ImageError, images_in, read_image


def load_folder(path, image_size=None, channels=None, test_split=None):
    """The images of a folder of class folders as a :class:`~handgrad.data.Dataset` (see the module's docstring).

    Raises:
        ValueError: naming the folder or file at fault: a folder without class folders, a single class, an empty
            class folder, an unreadable image, images of mixed sizes without ``image_size``.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: expected a folder of class folders, found no folder")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
    parts = [root / "train", root / "test"]
    if not all(part.is_dir() for part in parts):
        classes, files, labels = _listing(root, None)
        x = _read(files, image_size, channels)
        return from_arrays(x, labels, classes=classes, test_split=test_split, title=str(root), source=root)
    if test_split is not None:
        raise ValueError(f"{root}: it has its own test/ folder, so no test split is drawn (drop --test-split)")
    classes, train_files, train_labels = _listing(parts[0], None)
    _, test_files, test_labels = _listing(parts[1], classes)
    x = _read(train_files, image_size, channels)
    x_test = _read(test_files, image_size, 1 if x.ndim == 3 else 3, (x[0], train_files[0]))
    return from_arrays(x, train_labels, x_test, test_labels, classes, title=str(root), source=root)


def _listing(folder: Path, classes) -> tuple[list[str], list[Path], np.ndarray]:
    """The class names, the image files in class order and their labels.  ``classes`` given (a test folder):
    every class folder must be one of them."""
    folders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        found = "image files but no sub-folders" if images_in(folder) else "no sub-folders"
        raise ValueError(f"{folder}: expected one sub-folder of images per class, found {found}")
    names = [p.name for p in folders]
    if classes is None:
        if len(folders) < 2:
            raise ValueError(f"{folder}: found one class folder ({names[0]}): a classifier needs at least two")
        classes = names
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise ValueError(f"{folder}: class folders {unknown} are not among the training classes {classes}")
    files, labels = [], []
    for class_folder in folders:
        images = images_in(class_folder)
        if not images:
            raise ValueError(f"{class_folder}: an empty class folder: expected PNG or JPEG images in it")
        files += images
        labels += [classes.index(class_folder.name)] * len(images)
    return classes, files, np.array(labels, dtype=np.int64)


def _read(files: list[Path], image_size, channels, like=None) -> np.ndarray:
    """Every file as uint8 pixels (N, H, W) or (N, 3, H, W), each of the shape of ``like`` (pixels, their file),
    by default of the first file: without ``image_size`` an image of another size is an error."""
    reference, origin = like if like is not None else (read_image(files[0], channels, image_size), files[0])
    pixels = np.empty((len(files), *reference.shape), np.uint8)
    for i, path in enumerate(files):
        image = reference if path == origin else read_image(path, 1 if reference.ndim == 2 else 3, image_size)
        if image.shape != reference.shape:
            raise ImageError(
                path,
                f"an image of {reference.shape[-1]}x{reference.shape[-2]} pixels like {origin} (or give "
                f"--image-size HxW to resize every image)",
                f"{image.shape[-1]}x{image.shape[-2]}",
            )
        pixels[i] = image
    return pixels
