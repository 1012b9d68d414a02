"""Checkpoints: named arrays and JSON metadata in a safetensors file, written atomically, read without pickle,
each part covered by a SHA-256 digest that is checked before anything is returned.

A safetensors file is an 8-byte header length, a JSON header (names, dtypes, shapes, offsets, and a
``__metadata__`` map of strings) and the raw bytes of the arrays: nothing in it can execute code.
handgrad stores its own metadata as one JSON document under ``__metadata__["handgrad"]``, and its
SHA-256 under ``__metadata__["handgrad.sha256"]``.  The document holds, besides the caller's metadata,
the SHA-256 of every array (of its dtype, its shape and its little-endian bytes).  Loading recomputes
every digest, so a flipped bit anywhere in the file, a changed name, shape, dtype or offset, a lost or
added array, is refused, never read as a different model.  The digests detect damage, not forgery:
whoever edits a file on purpose can recompute them.

Arrays are float32 or float64 and finite: ``save`` refuses a NaN or an infinity (a diverged model is
never written) and ``load`` refuses one that arrives anyway.

Saving writes a temporary file ``.NAME.PID.tmp`` beside the target, flushes and fsyncs it, then renames
it over the target (an atomic step on POSIX) and fsyncs the directory: a crash at any moment leaves
either the old checkpoint or the new one, never a torn file.  A process killed during a save leaves
its temporary file; the next save beside it removes the temporary files of processes that no longer run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

FORMAT = "handgrad-checkpoint"
VERSION = 2  # version 1 had no digests
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}  # safetensors' names of the dtypes handgrad stores
DIGESTS = "sha256"  # the key of the arrays' digests in the metadata document
METADATA_DIGEST = "handgrad.sha256"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, damaged, not handgrad's, or not matching the model."""


def _temporary(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # no such process, or a number no process can have
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Delete the temporary files ``.NAME.PID.tmp`` beside ``path`` whose process PID no longer runs.

    Returns the paths removed.  A process still running (or a PID already reused) keeps its file.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.tmp")
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and not _running(int(match[1])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and little-endian bytes (what safetensors stores)."""
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    hashed = hashlib.sha256(f"{array.dtype.str} {list(array.shape)}\n".encode())
    hashed.update(array.tobytes())
    return hashed.hexdigest()


def non_finite(arrays: dict[str, np.ndarray]) -> str | None:
    """The name of the first array holding a NaN or an infinity, None if all are finite."""
    return next((name for name, value in arrays.items() if not np.all(np.isfinite(value))), None)


def save(path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    """Save named float arrays and a JSON-ready ``meta`` dict atomically, with their digests.

    Raises ValueError, before writing anything, for an array that is not float32 or float64 or not finite,
    and for ``meta`` that is not strict JSON (NaN and infinities are not JSON).
    """
    from safetensors.numpy import save as to_bytes

    tensors = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    for name, value in tensors.items():
        if value.dtype.newbyteorder("<") not in DTYPES.values():
            raise ValueError(f"checkpoint {path}: array {name!r} is {value.dtype}, expected float32 or float64")
    bad = non_finite(tensors)
    if bad is not None:
        raise ValueError(f"checkpoint {path}: refusing to save {bad!r}, which holds NaN or infinite values")
    document = json.dumps(
        {"format": FORMAT, "version": VERSION, **meta, DIGESTS: {k: digest(v) for k, v in tensors.items()}},
        allow_nan=False,
    )
    header = {"handgrad": document, METADATA_DIGEST: hashlib.sha256(document.encode()).hexdigest()}
    atomic_write(path, to_bytes(tensors, metadata=header))


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint: ``(tensors, meta)``, every digest checked and every array finite.

    ``meta`` is the dict given to :func:`save`.  Raises :class:`CheckpointError` for anything else.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118 (not a dict)
            tensors = {name: f.get_tensor(name) for name, dtype in dtypes.items() if dtype in DTYPES}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint ({error}); it may be truncated, or another format "
            f"(handgrad never unpickles files)"
        ) from None
    odd = {name: dtype for name, dtype in dtypes.items() if dtype not in DTYPES}
    if odd:
        raise CheckpointError(f"{path}: arrays of dtype {odd}, expected F32 or F64 (float32, float64)")
    meta = _metadata(path, header)
    digests = meta.pop(DIGESTS)
    if not isinstance(digests, dict) or set(digests) != set(tensors):
        names = set(digests) if isinstance(digests, dict) else set()
        raise CheckpointError(
            f"{path}: the digests do not list the arrays: arrays without a digest {sorted(set(tensors) - names)}, "
            f"digests without an array {sorted(names - set(tensors))}"
        )
    for name, value in tensors.items():
        if digest(value) != digests[name]:
            raise CheckpointError(f"{path}: array {name!r} is damaged: its SHA-256 does not match the one stored")
    bad = non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{path}: array {bad!r} holds NaN or infinite values")
    return tensors, meta


def _metadata(path: Path, header: dict) -> dict:
    """handgrad's metadata document, its digest, format and version checked; without format and version."""
    document = header.get("handgrad")
    if not isinstance(document, str):
        raise CheckpointError(f"{path}: a safetensors file without handgrad's metadata")
    stored = header.get(METADATA_DIGEST)
    if stored is not None and hashlib.sha256(document.encode()).hexdigest() != stored:
        raise CheckpointError(f"{path}: the metadata is damaged: its SHA-256 does not match the one stored")
    meta = json_object(document, f"{path}: the metadata", CheckpointError)
    found = (meta.pop("format", None), meta.pop("version", None))
    if found != (FORMAT, VERSION):
        raise CheckpointError(
            f"{path}: format {found[0]!r} version {found[1]!r}, expected {FORMAT!r} version {VERSION}"
            + (" (version 1 files have no digests: train them again)" if found == (FORMAT, 1) else "")
        )
    if stored is None or DIGESTS not in meta:
        raise CheckpointError(f"{path}: the digests of the metadata or of the arrays are missing")
    return meta


def json_object(text: str, where: str, error: type[Exception] = ValueError) -> dict:
    """``text`` parsed as JSON, which must be an object; otherwise ``error`` says so, naming ``where``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{where}: expected a JSON object, found {text[:40]!r}, which is not JSON ({problem})") from None
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, found a {type(value).__name__}")
    return value


def strip_prefix(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose names start with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def check_params(params: dict[str, np.ndarray], saved: dict[str, np.ndarray], where) -> None:
    """The saved arrays must have exactly the model's names, shapes and dtypes."""
    missing, extra = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
    if missing or extra:
        raise CheckpointError(f"{where}: parameters do not match the model: missing {missing}, unexpected {extra}")
    for name, value in params.items():
        if saved[name].shape != value.shape or saved[name].dtype != value.dtype:
            raise CheckpointError(
                f"{where}: parameter {name!r} is {saved[name].dtype}{list(saved[name].shape)}, "
                f"the model expects {value.dtype}{list(value.shape)}"
            )


def copy_params(params: dict[str, np.ndarray], saved: dict[str, np.ndarray], where) -> None:
    """Check everything first, then copy into the model's arrays in place (so optimisers keep theirs)."""
    check_params(params, saved, where)
    for name, value in params.items():
        np.copyto(value, saved[name])
