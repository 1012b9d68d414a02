"""Images: PNG and JPEG files, IDX files of images, or folders of them, read without trusting them.

A PNG file is a signature and a chain of chunks, each ``length (4 bytes, big-endian), type (4), data,
CRC-32 of type and data (4)``, from ``IHDR`` (width, height, bit depth, ...) to ``IEND``.  Before Pillow
decodes anything, every chunk's CRC is checked (Pillow skips those of the image data), the chain must
end in ``IEND``, and the size in ``IHDR`` must be at most ``MAX_PIXELS``: a damaged or truncated file
is an error, never a different picture, and a header claiming 100000 x 100000 pixels allocates nothing.

A JPEG file has no checksum: Pillow decodes it, after its header's size was checked against ``MAX_PIXELS``.

Pixels become uint8, ``(H, W)`` for one channel and ``(3, H, W)`` for three (red, green, blue): 8-bit images
as they are, 16-bit grey scaled by ``255 / 65535`` (not clipped), colour to grey through Pillow's luminance
``L = 0.299 R + 0.587 G + 0.114 B``, grey to colour by repeating it, transparency dropped.  To classify,
each image is resized to the model's input if needed, and inverted with ``invert``.  A model of one channel
trained on MNIST-style data expects light objects on a dark background: a grey image whose border is light
on average gets a note suggesting ``--invert`` (or, when it was inverted, not to).
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
JPEG_MAGIC = b"\xff\xd8\xff"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
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
    """uint8 images (N, H, W) or (N, C, H, W), a name for each, and notes for the user (resizing, a light
    background)."""

    pixels: np.ndarray
    names: list[str]
    notes: list[str] = field(default_factory=list)


def images_in(folder: Path) -> list[Path]:
    """The PNG and JPEG files of a folder (by suffix), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def image_files(path) -> list[Path]:
    """``[path]`` for a file; the PNG and JPEG files of a folder (by suffix), sorted by name."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = images_in(path)
    if not files:
        raise ImageError(
            path, "a PNG, JPEG or IDX file, or a folder of .png or .jpg files", "a folder without such files"
        )
    return files


def _head(path: Path) -> bytes:
    """The file's bytes, or only its first ones for a file that is neither PNG nor JPEG."""
    try:
        with open(path, "rb") as f:
            data = f.read(len(PNG_MAGIC))
            if data.startswith((PNG_MAGIC, JPEG_MAGIC)):
                data += f.read(MAX_FILE_BYTES)
    except OSError as error:
        raise ImageError(path, "a readable file", error.strerror or str(error)) from None
    return data


def read_image(path, channels: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """One PNG or JPEG file as uint8 pixels: (H, W) for one channel, (3, H, W) for three.

    ``channels=None`` keeps the file's own: one for grey, three for colour.  ``size=(H, W)`` resizes (Lanczos).

    Raises:
        ImageError: for a file that is neither, damaged, truncated or too large.
    """
    path = Path(path)
    data = _head(path)
    if not data.startswith((PNG_MAGIC, JPEG_MAGIC)):
        raise ImageError(path, "a PNG or JPEG image", f"neither (the file begins with {data[:8]!r})")
    image = _decode(path, data)
    if channels is not None:
        image = _with_channels(image, channels)
    return _planes(image if size is None else _resized(image, size))


def _planes(image: np.ndarray) -> np.ndarray:
    """(H, W) stays; (H, W, 3) becomes (3, H, W), a plane per channel."""
    return image if image.ndim == 2 else image.transpose(2, 0, 1)


def read_images(path, size: tuple[int, int], invert: bool = False, channels: int = 1) -> Images:
    """One PNG or JPEG image or the images of an IDX file, as uint8 (N, H, W) of ``size`` for one channel,
    (N, C, H, W) for ``channels`` C > 1.

    Raises:
        ImageError: for a file that is none of these, or an image that is damaged, truncated or too large.
        IDXError: for a damaged IDX file, or one that does not hold uint8 images of ``size`` (one channel only).
    """
    path = Path(path)
    data = _head(path)
    notes = []
    if data.startswith((PNG_MAGIC, JPEG_MAGIC)):
        image = _with_channels(_decode(path, data), channels)
        if image.shape[:2] != tuple(size):
            notes.append(f"{path}: resized from {image.shape[1]}x{image.shape[0]} to {size[1]}x{size[0]}")
        pixels, names = _planes(_resized(image, size))[None], [str(path)]
    elif data.startswith((IDX_MAGIC, GZIP_MAGIC)) and channels == 1:
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
        kinds = "a PNG or JPEG image" + (" or an IDX file" if channels == 1 else f" (of {channels} channels)")
        raise ImageError(path, kinds, f"none of these (the file begins with {data[:8]!r})")
    if invert:
        pixels = 255 - pixels
    if channels == 1:
        notes += _background_notes(path, pixels, invert)
    return Images(pixels, names, notes)


def _background_notes(path: Path, pixels: np.ndarray, invert: bool) -> list[str]:
    """A note suggesting ``--invert`` (or not) for grey images (N, H, W) whose border is light on average."""
    border = np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1).mean()
    if border >= LIGHT_BORDER:
        advice = "without --invert" if invert else "with --invert"
        return [
            (
                f"{path}: the background looks light (mean border grey level {border:.0f} of 255) where the model "
                f"expects light objects on a dark background: try {advice}"
            )
        ]
    return []


GREY_MODES = ("1", "L", "LA", "La", *SIXTEEN_BIT)  # Pillow's modes of grey images, with or without alpha


def _decode(path: Path, data: bytes) -> np.ndarray:
    """The uint8 pixels of a PNG file whose chunks are checked first, or of a JPEG file: (H, W) for a grey
    image, (H, W, 3) for a colour one."""
    from PIL import Image

    kind = "PNG" if data.startswith(PNG_MAGIC) else "JPEG"
    if len(data) >= MAX_FILE_BYTES:
        raise ImageError(path, f"a {kind} file of less than {MAX_FILE_BYTES:,} bytes", "a larger file")
    if kind == "PNG":
        _check_size(path, kind, *_check_chunks(path, data))
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            _check_size(path, kind, *image.size)
            image.load()
            if image.mode in SIXTEEN_BIT:
                levels = np.asarray(image).astype(np.float64)
                return np.clip(np.rint(levels * (255 / 65535)), 0, 255).astype(np.uint8)
            return np.asarray(image.convert("L" if image.mode in GREY_MODES else "RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(path, f"a {kind} image Pillow can decode", f"{type(error).__name__}: {error}") from None


def _check_size(path: Path, kind: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(path, f"a {kind} image of at most {MAX_PIXELS:,} pixels", f"{width}x{height} pixels")


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) grey or (H, W, 3) colour pixels as ``channels`` 1 (luminance) or 3 (grey repeated)."""
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
    if channels == 1:
        return image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"), dtype=np.uint8)
    return image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)


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
    """(H, W) or (H, W, 3) uint8 pixels resized to ``size`` (H, W) with a Lanczos filter (unchanged at that size)."""
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.LANCZOS), dtype=np.uint8)
