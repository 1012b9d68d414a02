"""Property-based tests: valid IDX files, PNG images and checkpoints, mutated at random (bit flips, truncations,
insertions, deletions, overwritten bytes, edited headers), must each read correctly or fail with the reader's
documented error, whose message names the file.  Never another exception, never a silently different result.

A "correct read" is what the bytes mean by the format's definition: for IDX files (which carry no checksum,
so a flipped data byte is a different valid file) the array an independent parser written here from the
format's description finds; for PNG files and checkpoints, whose chunks and arrays are covered by CRCs and
digests, exactly what the unmutated file holds.

The suite runs a few hundred examples of each property (the ``handgrad`` profile of conftest.py,
derandomised so that it is reproducible).  For thousands, with fresh random draws::

    .venv/bin/python -m pytest tests/test_mutated_files.py --hypothesis-profile thorough
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import struct
import zlib
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st
from PIL import Image

from handgrad import checkpoint, presets, runs
from handgrad.checkpoint import CheckpointError
from handgrad.data import IDXError, ImageError, Normalizer, read_idx, read_images
from handgrad.data.idx import DTYPES, MAX_BYTES, MAX_RANK
from handgrad.optim import make_optimizer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("mutated")


# --- mutations -------------------------------------------------------------------------------------------


@st.composite
def mutated(draw, data: bytes, header: int = 32) -> bytes:
    """``data`` after one to three random edits, each in the first ``header`` bytes, after them, or anywhere;
    or with bytes appended."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite", "append"]))
        if kind == "append":
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        if not data:
            continue
        end = len(data) - 1
        at = draw(st.sampled_from([(0, min(header, len(data)) - 1), (min(header, end), end), (0, end)]).flatmap(
            lambda bounds: st.integers(*bounds)))  # fmt: skip
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            replacement = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(replacement)] = replacement
    return bytes(data)


def _outcome(error: Exception, path) -> None:
    """Count an error by its class and the start of its message, names and numbers left out."""
    message = re.sub(r"b'[^']*'|'[^']*'|\d[\d,]*", "_", str(error)[len(str(path)) + 2 :])
    event(f"{type(error).__name__}: {message[:40]}")


# --- IDX -------------------------------------------------------------------------------------------------

CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@st.composite
def idx_files(draw) -> bytes:
    code = draw(st.sampled_from(sorted(CODES)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    values = draw(st.binary(min_size=math.prod(shape) * np.dtype(CODES[code]).itemsize, max_size=4096))
    array = np.frombuffer(values[: math.prod(shape) * np.dtype(CODES[code]).itemsize], CODES[code]).reshape(shape)
    data = bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + array.tobytes()
    return gzip.compress(data) if draw(st.booleans()) else data


def idx_oracle(data: bytes) -> np.ndarray | None:
    """The array an IDX file holds, from the format's description; None where the file is not valid."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in CODES or not 1 <= data[3] <= MAX_RANK:
        return None
    rank, dtype = data[3], np.dtype(CODES[data[2]])
    if len(data) < 4 + 4 * rank:
        return None
    dims = struct.unpack(f">{rank}I", data[4 : 4 + 4 * rank])
    if math.prod(max(d, 1) for d in dims) * dtype.itemsize > MAX_BYTES:
        return None
    if len(data) != 4 + 4 * rank + math.prod(dims) * dtype.itemsize:
        return None
    return np.frombuffer(data[4 + 4 * rank :], dtype).reshape(dims)


def test_the_oracle_reads_what_the_reader_reads(workdir):
    """The oracle itself: it agrees with the reader on a valid file and refuses a cut one."""
    data = bytes([0, 0, 0x0B, 2]) + struct.pack(">2I", 2, 3) + np.arange(6, dtype=">i2").tobytes()
    (workdir / "a.idx").write_bytes(data)
    np.testing.assert_array_equal(idx_oracle(data), read_idx(workdir / "a.idx"))
    assert idx_oracle(data[:-1]) is None and idx_oracle(gzip.compress(data)[:-1]) is None


@given(data=idx_files().flatmap(mutated))
def test_a_mutated_idx_file_reads_as_the_format_says_or_raises_idx_error(workdir, data):
    path = workdir / "mutated.idx"
    path.write_bytes(data)
    expected = idx_oracle(data)
    try:
        got = read_idx(path)
    except IDXError as error:
        assert str(error).startswith(f"{path}: ") and expected is None, (str(error), expected)
        _outcome(error, path)
        return
    event("read")
    assert expected is not None, f"read {got.dtype} {got.shape} from a file the format calls invalid"
    assert got.dtype == expected.dtype.newbyteorder("=") and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert set(DTYPES) == set(CODES)


# --- PNG -------------------------------------------------------------------------------------------------


@st.composite
def png_files(draw) -> bytes:
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    mode = draw(st.sampled_from(["L", "I;16", "RGB", "LA"]))
    modes = {"L": (np.uint8, ()), "I;16": (np.uint16, ()), "RGB": (np.uint8, (3,)), "LA": (np.uint8, (2,))}
    dtype, channels = modes[mode]
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, (height, width, *channels)).astype(dtype)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@given(original=png_files(), data=st.data())
def test_a_mutated_png_reads_as_the_original_or_raises_image_error(workdir, original, data):
    mutant = data.draw(mutated(original, header=64))
    clean, path = workdir / "original.png", workdir / "mutated.png"
    clean.write_bytes(original)
    path.write_bytes(mutant)
    expected = read_images(clean, (28, 28))
    try:
        got = read_images(path, (28, 28))
    except (ImageError, IDXError) as error:
        assert str(error).startswith(f"{path}: "), str(error)
        _outcome(error, path)
        return
    event("read")
    np.testing.assert_array_equal(got.pixels, expected.pixels)


# --- checkpoints ----------------------------------------------------------------------------------------


class Saved(NamedTuple):
    data: bytes
    tensors: dict
    meta: dict

    def __repr__(self):  # Hypothesis prints its arguments with a failing example: not 100 kB of bytes
        return f"Saved(<{len(self.data):,} bytes: {sorted(self.tensors)}>)"


@pytest.fixture(scope="module")
def saved(workdir) -> Saved:
    """A small run's checkpoint (strided-conv, momentum state after one step): its bytes, arrays and metadata."""
    rng = np.random.default_rng(0)
    model, loss = presets.build("strided-conv", rng)
    optimizer = make_optimizer("momentum", model.params, 0.01)
    loss.forward(model.forward(rng.random((2, 1, 28, 28), dtype=np.float32)), np.array([3, 7]))
    model.backward(loss.backward())
    optimizer.step(model.grads)
    config = runs.TrainConfig(model="strided-conv", optimizer="momentum", epochs=2)
    classes = [str(i) for i in range(10)]
    rows = [{**dict.fromkeys(runs.TRAIN_COLUMNS + runs.VAL_COLUMNS, 0.125), "epoch": 1}]
    about = {"normalizer": Normalizer(0.25, 0.5), "classes": classes, "input_shape": (1, 28, 28)}
    path = runs.save_state(workdir, model, loss, optimizer, config, rng, about, runs.History(rows, best=1))
    return Saved(path.read_bytes(), *checkpoint.load(path))


def _restore(path):
    """Everything a resume does with a checkpoint, into fresh objects."""
    state = runs.load_state(path)
    name = state.config.model or "strided-conv"  # None: a model of fit's own, given again to resume (the same)
    model, _ = presets.build(name, np.random.default_rng(1), np.dtype(state.config.dtype))
    optimizer = make_optimizer(state.config.optimizer, model.params, state.config.lr, state.config.momentum)
    runs.restore(state, model, optimizer, np.random.default_rng(2), where=str(path))
    runs.load_model(path)
    return state


def _check(path, expected=None):
    """A CheckpointError naming the file, or a read equal to ``expected`` (if given)."""
    try:
        state = _restore(path)
    except CheckpointError as error:
        assert str(error).startswith(str(path)), str(error)
        _outcome(error, path)
        return
    event("read")
    if expected is not None:
        tensors, meta = expected
        assert state.tensors.keys() == tensors.keys() and state.meta == meta
        for name, value in tensors.items():
            assert state.tensors[name].dtype == value.dtype and state.tensors[name].shape == value.shape
            np.testing.assert_array_equal(state.tensors[name], value)


@given(data=st.data())
def test_a_mutated_checkpoint_reads_exactly_or_raises_checkpoint_error(workdir, saved, data):
    original, tensors, meta = saved
    (length,) = struct.unpack("<Q", original[:8])
    mutant = data.draw(mutated(original, header=8 + length))
    path = workdir / "mutated.safetensors"
    path.write_bytes(mutant)
    _check(path, (tensors, meta))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every key path into nested dicts and lists."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from _paths(inner, (*prefix, key))


def _set(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@st.composite
def header_edits(draw, header: dict):
    """The safetensors header with one field (a dtype, a shape, an offset, a name, a metadata entry) replaced,
    deleted, or renamed."""
    header = json.loads(json.dumps(header))
    path = draw(st.sampled_from([p for p in _paths(header) if p]))
    choice = draw(st.sampled_from(["value", "delete", "rename"]))
    if choice == "rename" and isinstance(path[-1], str):
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        parent[draw(st.text(max_size=12))] = parent.pop(path[-1])
    else:
        value = _DELETE if choice == "delete" else draw(JSON_VALUES | st.sampled_from(["BF16", "F16", "I64"]))
        _set(header, path, value)
    return header


def _with_header(original: bytes, header: dict) -> bytes:
    (length,) = struct.unpack("<Q", original[:8])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + original[8 + length :]


@given(data=st.data())
def test_an_edited_checkpoint_header_reads_exactly_or_raises_checkpoint_error(workdir, saved, data):
    original, tensors, meta = saved
    (length,) = struct.unpack("<Q", original[:8])
    header = json.loads(original[8 : 8 + length])
    path = workdir / "edited.safetensors"
    path.write_bytes(_with_header(original, data.draw(header_edits(header))))
    _check(path, (tensors, meta))


@given(data=st.data())
def test_forged_metadata_with_correct_digests_restores_or_raises_checkpoint_error(workdir, saved, data):
    """Metadata edited by hand, its digests recomputed: every field is still checked before it is used."""
    from test_checkpoint import _forge

    _, tensors, meta = saved
    meta = json.loads(json.dumps(meta))
    path = data.draw(st.sampled_from([p for p in _paths(meta) if p]))
    _set(meta, path, data.draw(st.just(_DELETE) | JSON_VALUES))
    assume(path != ("config", "epochs") or not isinstance(meta["config"].get("epochs"), int))  # a longer run is valid
    target = workdir / "forged.safetensors"
    _forge(target, tensors, meta)
    _check(target)
