"""The IDX reader trusts nothing: each kind of bad file is built here and must be refused clearly."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from handgrad.data import IDXError, read_idx, read_images_and_labels

MNIST = Path(__file__).parent / "data" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return header + array.astype(big_endian).tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_of_every_dtype(tmp_path, compress):
    for code, dtype in [
        (0x08, np.uint8),
        (0x09, np.int8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ]:
        array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
        if code == 0x08:
            array = IMAGES
        got = read_idx(write(tmp_path / f"a{code}", idx_bytes(array, code), compress))
        assert got.dtype == dtype and got.dtype.isnative
        np.testing.assert_array_equal(got, array)


def test_the_official_mnist_files_pass_their_checksums_and_read():
    for line in (MNIST / "MD5SUMS").read_text().splitlines():
        md5, name = line.split()
        assert hashlib.md5((MNIST / name).read_bytes()).hexdigest() == md5
    images, labels = read_images_and_labels(
        MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz", 10
    )
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test digits


def test_the_system_fashion_mnist_files_read():
    images, labels = read_images_and_labels(
        FASHION / "train-images-idx3-ubyte.gz", FASHION / "train-labels-idx1-ubyte.gz", 10
    )
    assert images.shape == (60000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10


BAD_FILES = [
    ("magic number", lambda: b"\x01\x00\x08\x03" + bytes(12), r"magic number: expected two zero bytes"),
    (
        "dtype code",
        lambda: b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"x",
        r"dtype code: expected one of 0x08, .*found 0x07",
    ),
    ("rank", lambda: b"\x00\x00\x08\x00", r"rank: expected 1 to 8, found 0"),
    *(
        (f"rank {rank}", lambda r=rank: bytes([0, 0, 8, r]) + bytes(4 * r), rf"rank: expected 1 to 8, found {rank}")
        for rank in (9, 65, 100, 255)
    ),
    ("short header", lambda: b"\x00\x00", r"magic number: expected 4 bytes, found only 2"),
    (
        "short dimensions",
        lambda: b"\x00\x00\x08\x03" + struct.pack(">I", 2),
        r"dimensions: expected 12 bytes, found only 4",
    ),
    (
        "truncated",
        lambda: idx_bytes(IMAGES)[:-1],
        r"expected 40 bytes for dimensions \(2, 3, 4\), found 39 \(truncated\)|data: expected 24 bytes, found only 23",
    ),
    ("oversized", lambda: idx_bytes(IMAGES) + b"\x00", r"found 41 \(oversized\)|more \(oversized\)"),
    (
        "absurd count",
        lambda: b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 28, 28) + bytes(100),
        r"dimensions: expected at most 1,073,741,824 bytes of data, found \(4294967295, 28, 28\)",
    ),
    (
        "zero beside huge dimensions",
        lambda: b"\x00\x00\x08\x03" + struct.pack(">3I", 0, 2**32 - 1, 2**32 - 1),
        r"dimensions: expected at most .* found \(0, 4294967295, 4294967295\) = .* \(each dimension 0 counted as 1\)",
    ),
]


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("name, make, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused(tmp_path, compress, name, make, message):
    path = write(tmp_path / "bad.idx", make(), compress)
    with pytest.raises(IDXError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A small header and gigabytes of zeros: the reader stops one byte after the data it expects."""
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as f:
        f.write(idx_bytes(IMAGES))
        block = bytes(1 << 20)
        for _ in range(64):  # 64 MiB of zeros compress to ~64 KiB
            f.write(block)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(IDXError, match=r"data length: .* more \(oversized\)"):
        read_idx(path)


def test_a_size_limit_applies_before_any_allocation(tmp_path):
    path = write(tmp_path / "images", idx_bytes(IMAGES))
    with pytest.raises(IDXError, match=r"at most 10 bytes of data, found \(2, 3, 4\) = 24 bytes"):
        read_idx(path, max_bytes=10)


def test_corrupt_gzip_streams(tmp_path):
    data = gzip.compress(idx_bytes(IMAGES))
    crc_broken = data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]
    with pytest.raises(
        IDXError, match=r"gzip stream: expected a complete, valid gzip stream, found BadGzipFile: CRC check failed"
    ):
        read_idx(write(tmp_path / "crc.gz", crc_broken))
    with pytest.raises(IDXError, match=r"gzip stream: .*EOFError"):
        read_idx(write(tmp_path / "cut.gz", data[: len(data) // 2]))
    with pytest.raises(IDXError, match=r"gzip stream"):
        read_idx(write(tmp_path / "trailing.gz", data + b"garbage"))


def test_images_and_labels_must_agree(tmp_path):
    images = write(tmp_path / "images", idx_bytes(IMAGES))
    two_labels = write(tmp_path / "labels2", idx_bytes(np.array([1, 2], dtype=np.uint8)))
    three_labels = write(tmp_path / "labels3", idx_bytes(np.array([1, 2, 3], dtype=np.uint8)))
    bad_label = write(tmp_path / "labels_bad", idx_bytes(np.array([1, 10], dtype=np.uint8)))
    int_labels = write(tmp_path / "labels_int", idx_bytes(np.array([1, 2], dtype=np.int32), 0x0C))
    read_images_and_labels(images, two_labels, 10)
    with pytest.raises(IDXError, match=r"label count: expected 2 labels, one per image in .*, found 3"):
        read_images_and_labels(images, three_labels, 10)
    with pytest.raises(IDXError, match=r"labels: expected values in \[0, 9\], found 10 at index 1"):
        read_images_and_labels(images, bad_label, 10)
    with pytest.raises(IDXError, match=r"labels: expected uint8 data of rank 1 \(N,\), found int32"):
        read_images_and_labels(images, int_labels, 10)
    with pytest.raises(
        IDXError, match=r"images: expected uint8 data of rank 3 \(N, H, W\), found uint8 of shape \(2,\)"
    ):
        read_images_and_labels(two_labels, two_labels, 10)
