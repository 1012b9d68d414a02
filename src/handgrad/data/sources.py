"""Where a dataset comes from: a name (``fashion-mnist``, ``mnist``, ``mnist-t10k``), a folder of class folders,
or an ``.npz`` file.  A name wins over a folder of the same name in the working directory (write ``./mnist``)."""

from __future__ import annotations

from pathlib import Path

from .arrays import load_npz
from .datasets import DATASETS, load_named
from .folders import load_folder


def load(source, data_dir=None, allow_download: bool = True, *, image_size=None, channels=None, test_split=None):
    """The :class:`Dataset` ``source`` names, loaded and checked.

    ``image_size`` (H, W) and ``channels`` apply to a folder of images, ``test_split`` to a folder or an ``.npz``
    file without a test set of its own, ``data_dir`` and ``allow_download`` to the named datasets.
    """
    source = str(source)
    options = {"--image-size": image_size, "--channels": channels, "--test-split": test_split}
    given = [option for option, value in options.items() if value is not None]
    path = Path(source)
    if source in DATASETS:
        if given:
            raise ValueError(f"{', '.join(given)}: for a folder of images or an .npz file, not {source}")
        data = load_named(source, data_dir, allow_download)
    elif data_dir is not None:
        raise ValueError(f"--data-dir: for the named datasets ({', '.join(DATASETS)}), not the path {source}")
    elif path.is_dir():
        data = load_folder(path, image_size, channels, test_split)
    elif path.suffix.lower() == ".npz" and path.is_file():
        if set(given) - {"--test-split"}:
            raise ValueError(f"{', '.join(sorted(set(given) - {'--test-split'}))}: for a folder of images, not {path}")
        data = load_npz(path, test_split)
    else:
        found = "a file that is not .npz" if path.exists() else "no such file or folder"
        raise ValueError(
            f"dataset {source!r}: expected one of {', '.join(DATASETS)}, a folder of class folders or an .npz file, "
            f"found {found}"
        )
    data.check()
    return data
