"""The IDX file format of MNIST and Fashion-MNIST, read without trusting anything in the file.

Layout (all integers big-endian)::

    offset 0   2 bytes   zero
    offset 2   1 byte    dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    offset 3   1 byte    rank R
    offset 4   R x 4     dimensions d_1 .. d_R (uint32)
    then       d_1 * ... * d_R items, row-major, and nothing after them

A file may be gzip-compressed (recognised by its first two bytes, 1f 8b).  The reader checks each field,
refuses a rank over ``MAX_RANK`` and sizes over ``max_bytes`` before allocating anything (a header that
claims 2^32-1 images, a gzip bomb), checks that the data has exactly the length the header implies, and
reads a gzip stream to its end so that its CRC and length are verified.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 1 << 30  # 1 GiB: the full MNIST training images take 47 MB
MAX_RANK = 8  # labels have rank 1, images rank 3; the format allows 255, NumPy at most 64


class IDXError(ValueError):
    """A file that is not a valid IDX file; the message names the file, the field, expected and found."""

    def __init__(self, path, field: str, expected: str, found: str):
        super().__init__(f"{path}: {field}: expected {expected}, found {found}")
        self.path, self.field = path, field


def _read_exact(stream, size: int, path, field: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise IDXError(path, field, f"{size} bytes", f"only {len(data)} (the file is truncated)")
    return data


def _parse_header(stream, path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = _read_exact(stream, 4, path, "magic number")
    if magic[:2] != b"\x00\x00":
        raise IDXError(path, "magic number", "two zero bytes, a dtype code and a rank", f"bytes {magic.hex(' ')}")
    code, rank = magic[2], magic[3]
    if code not in DTYPES:
        codes = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise IDXError(path, "dtype code", f"one of {codes}", f"0x{code:02X}")
    if not 1 <= rank <= MAX_RANK:
        raise IDXError(path, "rank", f"1 to {MAX_RANK}", str(rank))
    dims = struct.unpack(f">{rank}I", _read_exact(stream, 4 * rank, path, "dimensions"))
    return np.dtype(DTYPES[code]), dims


def read_idx(path, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its dtype in native byte order.

    Raises:
        IDXError: for any field that is wrong, a size over ``max_bytes``, a length that does not match
            the header (truncated or oversized), or a corrupt gzip stream.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            dtype, dims = _parse_header(stream, path)
            header_bytes = 4 + 4 * len(dims)
            nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
            # the bound holds for the shape with each zero dimension read as 1: an empty array (0, 2^32-1, 2^32-1)
            # has no data but a shape no array can take
            bound = int(np.prod([max(d, 1) for d in dims], dtype=object)) * dtype.itemsize
            if bound > max_bytes:
                found = f"{dims} = {bound:,} bytes" + (" (each dimension 0 counted as 1)" if 0 in dims else "")
                raise IDXError(path, "dimensions", f"at most {max_bytes:,} bytes of data", found)
            if not compressed:
                size = os.fstat(raw.fileno()).st_size
                if size != header_bytes + nbytes:
                    state = "truncated" if size < header_bytes + nbytes else "oversized"
                    raise IDXError(
                        path,
                        "file length",
                        f"{header_bytes + nbytes:,} bytes for dimensions {dims}",
                        f"{size:,} ({state})",
                    )
            data = _read_exact(stream, nbytes, path, "data")
            if stream.read(1):  # at the end of a gzip stream this read also checks its CRC and length
                raise IDXError(
                    path,
                    "data length",
                    f"the data to end after {nbytes:,} bytes for dimensions {dims}",
                    "more (oversized)",
                )
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise IDXError(
                path, "gzip stream", "a complete, valid gzip stream", f"{type(error).__name__}: {error}"
            ) from None
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def read_images_and_labels(images_path, labels_path, num_classes: int, max_bytes: int = MAX_BYTES):
    """Images (N, H, W) uint8 and labels (N,) uint8 of one split, checked against each other."""
    images, labels = read_idx(images_path, max_bytes), read_idx(labels_path, max_bytes)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise IDXError(
            images_path, "images", "uint8 data of rank 3 (N, H, W)", f"{images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXError(labels_path, "labels", "uint8 data of rank 1 (N,)", f"{labels.dtype} of shape {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(
            labels_path, "label count", f"{len(images):,} labels, one per image in {images_path}", f"{len(labels):,}"
        )
    if labels.size and labels.max() >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise IDXError(labels_path, "labels", f"values in [0, {num_classes - 1}]", f"{labels[bad]} at index {bad}")
    return images, labels
