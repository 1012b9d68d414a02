"""Images to classify: PNG files checked chunk by chunk before Pillow decodes them, IDX files of images,
folders, 16-bit grey levels scaled, and a hint when the background is light."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from test_idx import idx_bytes

from handgrad.data import IDXError, ImageError, image_files, read_images

SIZE = (28, 28)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def digit(rng) -> np.ndarray:
    """A light object on a dark background, as the models are trained on."""
    pixels = np.zeros(SIZE, np.uint8)
    pixels[6:22, 10:18] = rng.integers(100, 256, size=(16, 8))
    return pixels


def test_a_png_reads_exactly_and_an_idx_file_reads_every_image(tmp_path, rng):
    pixels = digit(rng)
    (tmp_path / "a.png").write_bytes(png_bytes(pixels))
    images = read_images(tmp_path / "a.png", SIZE)
    np.testing.assert_array_equal(images.pixels, pixels[None])
    assert images.names == [str(tmp_path / "a.png")] and images.notes == []
    (tmp_path / "three").write_bytes(idx_bytes(np.stack([pixels] * 3)))
    images = read_images(tmp_path / "three", SIZE, invert=True)
    np.testing.assert_array_equal(images.pixels, 255 - np.stack([pixels] * 3))
    assert images.names[2] == f"{tmp_path / 'three'}[2]"


def test_sixteen_bit_grey_levels_are_scaled_not_clipped(tmp_path):
    levels = np.linspace(0, 65535, 28 * 28).round().astype(np.uint16).reshape(SIZE)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    got = read_images(tmp_path / "deep.png", SIZE).pixels[0]
    np.testing.assert_array_equal(got, np.rint(levels / 65535 * 255).astype(np.uint8))
    assert got.max() == 255 and len(np.unique(got)) == 256  # every level used, not 255 from 256 on


def test_a_light_background_gets_a_hint_of_invert(tmp_path, rng):
    dark_on_light = 255 - digit(rng)
    (tmp_path / "light.png").write_bytes(png_bytes(dark_on_light))
    notes = read_images(tmp_path / "light.png", SIZE).notes
    assert len(notes) == 1 and "background looks light (mean border grey level 255 of 255)" in notes[0]
    assert notes[0].endswith("try with --invert")
    assert read_images(tmp_path / "light.png", SIZE, invert=True).notes == []
    (tmp_path / "dark.png").write_bytes(png_bytes(digit(rng)))
    assert read_images(tmp_path / "dark.png", SIZE, invert=True).notes[0].endswith("try without --invert")


def test_a_folder_means_its_png_and_jpeg_files(tmp_path, rng):
    for name in ("b.png", "a.PNG", "c.txt", "d.jpg"):
        (tmp_path / name).write_bytes(png_bytes(digit(rng)))
    assert image_files(tmp_path) == [tmp_path / "a.PNG", tmp_path / "b.png", tmp_path / "d.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="empty: expected .* a folder of .png or .jpg files, found a folder without"):
        image_files(tmp_path / "empty")


def _bad_files(tmp_path, rng):
    good = png_bytes(digit(rng))
    big_header = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 29)
    first_data = good.index(b"IDAT") + 8
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    return {
        "truncated.png": (good[: len(good) // 2], ImageError, r"expected PNG chunks up to IEND|chunk of"),
        "no-end.png": (good[:-12], ImageError, r"expected PNG chunks up to IEND, found the file ends"),
        "flipped.png": (
            good[:first_data] + bytes([good[first_data] ^ 1]) + good[first_data + 1 :],
            ImageError,
            r"expected chunk b'IDAT' at byte \d+ to match its CRC-32, found a mismatch \(damaged\)",
        ),
        "huge.png": (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", big_header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""),
            ImageError,
            r"expected a PNG image of at most 16,777,216 pixels, found 100000x100000 pixels",
        ),
        "liar.png": (  # a valid chain of chunks claiming more pixels than its data holds
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 400, 400, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""),
            ImageError,
            r"expected a PNG image Pillow can decode, found",
        ),
        "photo.png": (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(100), ImageError, r"a JPEG image Pillow can decode"),
        "notes.png": (b"hello, world\n", ImageError, r"found none of these \(the file begins with b'hello, w'\)"),
        "labels.idx": (idx_bytes(np.arange(10, dtype=np.uint8)), IDXError, r"expected uint8 images of 28x28"),
        "none.idx": (idx_bytes(np.zeros((0, 28, 28), np.uint8)), IDXError, r"images: expected at least one image"),
        "loop": (None, ImageError, r"loop: expected a readable file, found Too many levels of symbolic links"),
        "folder": (None, ImageError, r"folder: expected a readable file, found Is a directory"),
    }


def test_bad_files_are_one_clear_error(tmp_path, rng):
    (tmp_path / "folder").mkdir()
    for name, (data, error, message) in _bad_files(tmp_path, rng).items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(error, match=message):
            read_images(tmp_path / name, SIZE)
