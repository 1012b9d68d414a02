"""Where datasets are found, how they are downloaded (from a local server: tests never use the network),
the fixed MNIST split, and batching."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from test_idx import MNIST, idx_bytes, write

from handgrad.data import Normalizer, batch_indices, datasets, load, read_idx

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def fake_dataset(directory: Path, n: int, compress=True) -> Path:
    """A valid four-file dataset of n train and n test images whose first label is ``n % 10``."""
    directory.mkdir(parents=True, exist_ok=True)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) + n) % 10
    for name in FILES:
        data = idx_bytes(images if "images" in name else labels.astype(np.uint8))
        write(directory / (name if compress else name.removesuffix(".gz")), data, compress)
    return directory


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty data places: $HANDGRAD_DATA, the user cache and the system directory all under tmp_path."""
    root = {name: tmp_path / name for name in ("env", "cache", "system", "user")}
    monkeypatch.setenv("HANDGRAD_DATA", str(root["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root["cache"]))
    spec = dataclasses.replace(datasets.DATASETS["fashion-mnist"], system_dirs=(str(root["system"]),))
    monkeypatch.setitem(datasets.DATASETS, "fashion-mnist", spec)
    return root


def _first_label(data):
    return int(data.train_labels[0])


def test_lookup_order(places, monkeypatch):
    fake_dataset(places["system"], 4)
    assert _first_label(load("fashion-mnist")) == 4
    fake_dataset(places["cache"] / "handgrad" / "fashion-mnist", 5)
    assert _first_label(load("fashion-mnist")) == 5
    fake_dataset(places["env"], 6, compress=False)
    assert _first_label(load("fashion-mnist")) == 6
    fake_dataset(places["user"] / "fashion-mnist", 7)
    data = load("fashion-mnist", data_dir=places["user"])
    assert _first_label(data) == 7 and data.source == places["user"] / "fashion-mnist"


def test_offline_with_no_files_says_where_to_put_them(places, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as error:
        load("fashion-mnist")
    message = str(error.value)
    assert "Fashion-MNIST is not on this machine and could not be downloaded" in message
    assert "no network" in message and "train-images-idx3-ubyte.gz" in message
    assert str(places["env"]) in message and str(places["system"]) in message
    assert "dataset-fashion-mnist" in message
    assert not list((places["cache"] / "handgrad" / "fashion-mnist").iterdir())  # no partial files left


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving a fake dataset, as a stand-in for the official mirror."""
    served = fake_dataset(tmp_path / "served", 3)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def _spec_served_by(monkeypatch, served, url, corrupt=None):
    spec = datasets.DATASETS["fashion-mnist"]
    files = {}
    for role, (name, _) in spec.files.items():
        md5 = hashlib.md5((served / name).read_bytes()).hexdigest()
        files[role] = (name, "0" * 32 if name == corrupt else md5)
    monkeypatch.setitem(datasets.DATASETS, "fashion-mnist", dataclasses.replace(spec, files=files, mirrors=(url,)))


def test_download_checks_each_file_against_its_md5(places, server, monkeypatch):
    served, url = server
    _spec_served_by(monkeypatch, served, url)
    data = load("fashion-mnist")
    assert _first_label(data) == 3 and data.source == places["cache"] / "handgrad" / "fashion-mnist"
    assert load("fashion-mnist").source == data.source  # found in the cache the second time


def test_a_download_with_the_wrong_checksum_is_not_kept(places, server, monkeypatch):
    served, url = server
    _spec_served_by(monkeypatch, served, url, corrupt="t10k-images-idx3-ubyte.gz")
    with pytest.raises(FileNotFoundError, match=r"checksum: expected MD5 0{32}, found [0-9a-f]{32}"):
        load("fashion-mnist")
    assert not (places["cache"] / "handgrad" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_real_fashion_mnist_from_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = load("fashion-mnist", allow_download=False)
    assert data.source == Path("/usr/share/datasets/fashion-mnist")
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.classes[9] == "Ankle boot"


def test_real_mnist_digits_split_8000_2000():
    data = load("mnist-t10k", data_dir=MNIST, allow_download=False)
    assert data.train_images.shape == (8000, 28, 28) and data.test_images.shape == (2000, 28, 28)
    all_labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    order = np.random.default_rng(0).permutation(10000)
    np.testing.assert_array_equal(data.train_labels, all_labels[order[:8000]])
    np.testing.assert_array_equal(data.test_labels, all_labels[order[8000:]])


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"dataset 'cifar': expected one of fashion-mnist, mnist, mnist-t10k, a fold"):
        load("cifar")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes.txt': expected one of .*, found a file that is not .npz"):
        load(tmp_path / "notes.txt")


def test_batches_cover_every_index_once_with_a_last_partial_batch():
    batches = list(batch_indices(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = list(batch_indices(10, 4, np.random.default_rng(0)))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # seeded
    assert [b.tolist() for b in batch_indices(5, 2)] == [[0, 1], [2, 3], [4]]  # no generator: in order
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        list(batch_indices(5, 0))


def test_normalization():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    unit = Normalizer.fit(images, "unit")(images)
    assert unit.dtype == np.float32 and unit.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(unit[0, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    standard = Normalizer.fit(images, "standard")
    x = standard(images, np.float64)
    assert x.dtype == np.float64 and abs(x.mean()) < 1e-12 and abs(x.std() - 1) < 1e-12
    with pytest.raises(ValueError, match="normalization must be one of"):
        Normalizer.fit(images, "minmax")
