"""MNIST-style datasets: where their files are looked up, how they are downloaded, and how they are split.

Each dataset's four files (``train-images-idx3-ubyte.gz`` ...) are looked up in the directory the user
names (``--data-dir``) and nowhere else: a named directory that does not exist or lacks a file is an
error.  Without one they are looked up, in this order, in:

1. ``$HANDGRAD_DATA``,
2. the user cache, ``$XDG_CACHE_HOME/handgrad`` (by default ``~/.cache/handgrad``),
3. the system copy (``/usr/share/datasets/fashion-mnist``, from the Debian package ``dataset-fashion-mnist``),

each directory holding the files itself or in a sub-directory named after the dataset, compressed or
not.  Where none has them, they are downloaded from the official mirrors into the user cache, each file
checked against its published MD5 before it is kept.  Local files are not checksummed (the Debian
package recompresses them), but the IDX reader checks every byte of their structure.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import kind_of
from .idx import read_images_and_labels

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    classes: tuple[str, ...]
    files: dict  # role -> (file name, MD5 of the official .gz)
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    roles: tuple[str, ...] = ROLES
    split: tuple[int, int, int] | None = None  # (train count, test count, seed): split the one set given
    flips: bool = True  # whether an image mirrored left to right keeps its class (not a digit's)


@dataclass
class Dataset:
    """uint8 images, (N, H, W) of one channel or (N, C, H, W) of C, and their labels (N,) for training and
    testing, with the class names, where they came from, and whether a mirrored image keeps its class."""

    title: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path | None = None
    flips: bool = True

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image as the models take it: (C, H, W)."""
        shape = self.train_images.shape[1:]
        return (1, *shape) if len(shape) == 2 else tuple(shape)

    def check(self) -> None:
        """Raise ValueError unless each split is at least one uint8 image of the training images' shape, (H, W) or
        (C, H, W), with one label in [0, K) per image, K >= 2 the number of classes."""
        k, where = len(self.classes), f"dataset {self.title}"
        if k < 2:
            raise ValueError(f"{where}: expected at least two classes, got {list(self.classes)}")
        pixels = self.train_images.shape[1:] if isinstance(self.train_images, np.ndarray) else ()
        if len(pixels) not in (2, 3):
            found = kind_of(self.train_images)
            raise ValueError(f"{where}: train_images must be uint8 (N, H, W) or (N, C, H, W), got {found}")
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if not _is_array(images, "u", (len(images), *pixels)) or images.dtype != np.uint8:
                shape = f"(N, {', '.join(map(str, pixels))})"
                raise ValueError(f"{where}: {split}_images must be uint8 {shape}, got {kind_of(images)}")
            if not _is_array(labels, "iu", (len(images),)):
                expected = f"integers ({len(images)},), one per image"
                raise ValueError(f"{where}: {split}_labels must be {expected}, got {kind_of(labels)}")
            if len(labels) == 0:
                raise ValueError(f"{where}: no {split} images")
            if labels.min() < 0 or labels.max() >= k:
                low, high = labels.min(), labels.max()
                raise ValueError(f"{where}: {split}_labels must lie in [0, {k - 1}], got values from {low} to {high}")


def _is_array(value, kinds: str, shape: tuple) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in kinds and value.shape == shape


_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")
_DIGITS = tuple(str(d) for d in range(10))

DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="fashion-mnist",
            title="Fashion-MNIST",
            classes=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
            files={
                "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
            },
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            system_dirs=("/usr/share/datasets/fashion-mnist",),
        ),
        DatasetSpec(
            name="mnist", title="MNIST", classes=_DIGITS, files=_MNIST_FILES, mirrors=_MNIST_MIRRORS, flips=False
        ),
        # The 10,000 official MNIST test digits alone, split by a fixed permutation (seed 0): the first
        # 8,000 train and the other 2,000 are held out.  For machines that have only the test set.
        DatasetSpec(
            name="mnist-t10k",
            title="MNIST test set, split 8,000 / 2,000",
            classes=_DIGITS,
            files=_MNIST_FILES,
            mirrors=_MNIST_MIRRORS,
            roles=("test_images", "test_labels"),
            split=(8000, 2000, 0),
            flips=False,
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/handgrad``, by default ``~/.cache/handgrad``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "handgrad"


def search_dirs(spec: DatasetSpec, data_dir=None) -> list[Path]:
    """The places looked in, in order; each is tried as it is and with the dataset's name appended.

    A named ``data_dir`` is the only place; it must be a directory.
    """
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"--data-dir {data_dir}: expected a folder holding {spec.title}, found no folder")
        roots = [Path(data_dir)]
    else:
        roots = [Path(d) for d in (os.environ.get("HANDGRAD_DATA"),) if d] + [cache_dir(), *map(Path, spec.system_dirs)]
    return [place for root in roots for place in (root, root / spec.name)]


def _file_in(directory: Path, file_name: str) -> Path | None:
    for candidate in (directory / file_name, directory / file_name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _any_file(spec: DatasetSpec, data_dir) -> bool:
    return any(_file_in(place, spec.files[role][0]) for place in search_dirs(spec, data_dir) for role in spec.roles)


def find_files(spec: DatasetSpec, data_dir=None) -> dict[str, Path] | None:
    """The first directory that holds every file the dataset needs, as role -> path; None if there is none."""
    for directory in search_dirs(spec, data_dir):
        paths = {role: _file_in(directory, spec.files[role][0]) for role in spec.roles}
        if all(paths.values()):
            return paths
    return None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, md5: str) -> None:
    """Fetch ``url`` with a progress bar into ``target``, kept only if its MD5 is ``md5``."""
    from tqdm import tqdm

    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        found = _md5(partial)
        if found != md5:
            raise OSError(f"{url}: checksum: expected MD5 {md5}, found {found}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def download(spec: DatasetSpec) -> dict[str, Path]:
    """Download the dataset's files into the user cache, trying each mirror in turn."""
    target_dir = cache_dir() / spec.name
    target_dir.mkdir(parents=True, exist_ok=True)
    paths, errors = {}, []
    for role in spec.roles:
        file_name, md5 = spec.files[role]
        target = target_dir / file_name
        for mirror in spec.mirrors:
            try:
                _download(mirror + file_name, target, md5)
                break
            except OSError as error:  # URLError included
                errors.append(f"{mirror + file_name}: {getattr(error, 'reason', error)}")
        else:
            places = "\n  ".join(str(d) for d in search_dirs(spec))
            names = ", ".join(spec.files[r][0] for r in spec.roles)
            raise FileNotFoundError(
                f"{spec.title} is not on this machine and could not be downloaded:\n  "
                + "\n  ".join(errors)
                + f"\nPut its files ({names}) in --data-dir or in one of:\n  {places}"
                + ("\nor install the Debian package dataset-fashion-mnist." if spec.system_dirs else "")
            )
        paths[role] = target
    return paths


def load_named(name: str, data_dir=None, allow_download: bool = True) -> Dataset:
    """Load a dataset by name, from the first place that has it, downloading it if none has."""
    spec = get_spec(name)
    paths = find_files(spec, data_dir)
    if paths is None and data_dir is not None:
        names = ", ".join(spec.files[role][0] for role in spec.roles)
        raise FileNotFoundError(
            f"--data-dir {data_dir}: expected {spec.title}'s files ({names}, compressed or not) in it or in its "
            f"sub-folder {spec.name}, found {'not all of them' if _any_file(spec, data_dir) else 'none'}"
        )
    if paths is None:
        if not allow_download:
            raise FileNotFoundError(f"{spec.title}: no files in any of {[str(d) for d in search_dirs(spec, data_dir)]}")
        paths = download(spec)
    n = len(spec.classes)
    test_images, test_labels = read_images_and_labels(paths["test_images"], paths["test_labels"], n)
    source = paths["test_images"].parent
    if spec.split is None:
        train_images, train_labels = read_images_and_labels(paths["train_images"], paths["train_labels"], n)
        splits = (train_images, train_labels, test_images, test_labels)
        return Dataset(spec.title, spec.classes, *splits, source, spec.flips)
    n_train, n_test, seed = spec.split
    if len(test_images) != n_train + n_test:
        raise ValueError(
            f"{paths['test_images']}: {spec.title} expects {n_train + n_test:,} images to split, "
            f"found {len(test_images):,}"
        )
    order = np.random.default_rng(seed).permutation(len(test_images))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    splits = (test_images[train], test_labels[train], test_images[test], test_labels[test])
    return Dataset(spec.title, spec.classes, *splits, source, spec.flips)
