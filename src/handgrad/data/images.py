"""Images to classify: PNG files, IDX files of images, or folders of PNG files, read without trusting them.

A PNG file is a signature and a chain of chunks, each ``length (4 bytes, big-endian), type (4), data,
CRC-32 of type and data (4)``, from ``IHDR`` (width, height, bit depth, ...) to ``IEND``.  Before Pillow
decodes anything, every chunk's CRC is checked (Pillow skips those of the image data), the chain must
end in ``IEND``, and the size in ``IHDR`` must be at most ``MAX_PIXELS``: a damaged or truncated file
is an error, never a different picture, and a header claiming 100000 x 100000 pixels allocates nothing.

Grey levels become uint8: 8-bit images as they are (colour through Pillow's luminance), 16-bit grey
scaled by ``255 / 65535`` (not clipped).  Each image is resized to the model's input if needed, and
inverted with ``invert``.  The model expects light objects on a dark background, as in MNIST: an image
whose border is light on average gets a note suggesting ``--invert`` (or, when it was inverted, not to).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .idx import GZIP_MAGIC, IDXError, read_idx

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IDX_MAGIC = b"\x00\x00"  # the first two bytes of every IDX file
MAX_PIXELS = 1 << 24  # 4096 x 4096
MAX_FILE_BYTES = 1 << 28
LIGHT_BORDER = 128  # a mean border grey level from here up reads as a light background
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")  # Pillow's modes of 16-bit grey PNG files


class ImageError(ValueError):
    """A file that cannot be read as an image; the message names the file, what was expected and what was found."""

    def __init__(self, path, expected: str, found: str):
        super().__init__(f"{path}: expected {expected}, found {found}")
        self.path = path


@dataclass
class Images:
    """uint8 images (N, H, W), a name for each, and notes for the user (resizing, a light background)."""

    pixels: np.ndarray
    names: list[str]
    notes: list[str] = field(default_factory=list)


def image_files(path) -> list[Path]:
    """``[path]`` for a file; the ``.png`` files of a folder, sorted by name."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise ImageError(path, "a PNG file or an IDX file, or a folder of .png files", "a folder without .png files")
    return files


def read_images(path, size: tuple[int, int], invert: bool = False) -> Images:
    """One PNG image or the images of an IDX file, as (N, H, W) uint8 of ``size``.

    Raises:
        ImageError: for a file that is neither, or a PNG file that is damaged, truncated or too large.
        IDXError: for a damaged IDX file, or one that does not hold uint8 images of ``size``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(len(PNG_MAGIC))
            if data == PNG_MAGIC:
                data += f.read(MAX_FILE_BYTES)
    except OSError as error:
        raise ImageError(path, "a readable file", error.strerror or str(error)) from None
    notes = []
    if data.startswith(PNG_MAGIC):
        image = _decode_png(path, data)
        if image.shape != size:
            notes.append(f"{path}: resized from {image.shape[1]}x{image.shape[0]} to {size[1]}x{size[0]}")
            image = _resized(image, size)
        pixels, names = image[None], [str(path)]
    elif data.startswith((IDX_MAGIC, GZIP_MAGIC)):
        pixels = read_idx(path)
        if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or pixels.shape[-2:] != size:
            raise IDXError(
                path,
                "images",
                f"uint8 images of {size[0]}x{size[1]}, shape (N, H, W) or (H, W)",
                f"{pixels.dtype} {pixels.shape}",
            )
        pixels = pixels.reshape(-1, *size)
        if not len(pixels):
            raise IDXError(path, "images", "at least one image", "none")
        names = [f"{path}[{i}]" for i in range(len(pixels))]
    else:
        raise ImageError(path, "a PNG image or an IDX file", f"neither (the file begins with {data[:8]!r})")
    if invert:
        pixels = 255 - pixels
    border = np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1).mean()
    if border >= LIGHT_BORDER:
        advice = "without --invert" if invert else "with --invert"
        notes.append(
            f"{path}: the background looks light (mean border grey level {border:.0f} of 255) where the model "
            f"expects light objects on a dark background: try {advice}"
        )
    return Images(pixels, names, notes)


def _decode_png(path: Path, data: bytes) -> np.ndarray:
    """(H, W) uint8 grey levels of a PNG file whose chunks are checked first."""
    from PIL import Image

    if len(data) >= MAX_FILE_BYTES:
        raise ImageError(path, f"a PNG file of less than {MAX_FILE_BYTES:,} bytes", "a larger file")
    width, height = _check_chunks(path, data)
    if width * height > MAX_PIXELS:
        raise ImageError(path, f"a PNG image of at most {MAX_PIXELS:,} pixels", f"{width}x{height} pixels")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            if image.mode in SIXTEEN_BIT:
                levels = np.asarray(image).astype(np.float64)
                return np.clip(np.rint(levels * (255 / 65535)), 0, 255).astype(np.uint8)
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(path, "a PNG image Pillow can decode", f"{type(error).__name__}: {error}") from None


def _check_chunks(path: Path, data: bytes) -> tuple[int, int]:
    """Walk the chunks from the signature to IEND, checking each CRC; return IHDR's (width, height)."""
    offset, first, size = len(PNG_MAGIC), True, None
    while True:
        if offset + 8 > len(data):
            raise ImageError(path, "PNG chunks up to IEND", f"the file ends at byte {len(data):,} (truncated)")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length + 4
        if end > len(data):
            raise ImageError(path, f"a {kind!r} chunk of {length:,} bytes", f"the file ends at byte {len(data):,}")
        body = data[offset + 4 : end - 4]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(body) != crc:
            raise ImageError(path, f"chunk {kind!r} at byte {offset:,} to match its CRC-32", "a mismatch (damaged)")
        if first != (kind == b"IHDR"):
            raise ImageError(path, "IHDR as the first chunk and only there", f"{kind!r} at byte {offset:,}")
        if first:
            if length != 13:
                raise ImageError(path, "an IHDR chunk of 13 bytes", f"{length}")
            size = struct.unpack(">II", body[4:12])
        if kind == b"IEND":
            return size
        offset, first = end, False


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.LANCZOS), dtype=np.uint8)
