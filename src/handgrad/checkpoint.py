"""Checkpoints: named arrays and JSON metadata in a safetensors file, written atomically, read without pickle.

A safetensors file is an 8-byte header length, a JSON header (names, dtypes, shapes, offsets, and a
``__metadata__`` map of strings) and the raw bytes of the arrays: nothing in it can execute code.
handgrad stores its own metadata as one JSON document under ``__metadata__["handgrad"]``.

Saving writes a temporary file beside the target, flushes and fsyncs it, then renames it over the
target (an atomic step on POSIX) and fsyncs the directory: a crash at any moment leaves either the old
checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FORMAT = "handgrad-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not handgrad's, or not matching the model."""


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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


def save(path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    """Save named arrays and a JSON-ready ``meta`` dict atomically."""
    from safetensors.numpy import save as to_bytes

    header = {"handgrad": json.dumps({"format": FORMAT, "version": VERSION, **meta})}
    atomic_write(path, to_bytes({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=header))


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint: ``(tensors, meta)``.  Raises :class:`CheckpointError` for anything else."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint ({error}); it may be truncated, or another format "
            f"(handgrad never unpickles files)"
        ) from None
    try:
        meta = json.loads(header["handgrad"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: a safetensors file without handgrad's metadata") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, expected {FORMAT!r} version {VERSION}"
        )
    return tensors, meta


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
