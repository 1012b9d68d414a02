"""Scratch memory that a compiled model lends its kernels from one call to the next.

Large temporaries allocated and freed at every step are expensive: the C allocator hands big blocks back to
the operating system, which returns them zero-filled page by page on the next step.  A compiled model keeps one
``workspace`` dict for all its steps and passes it down; a kernel takes each temporary from it by name, as a view
of the front of one flat buffer per name that grows to the largest request, so the steps of a model share one
buffer of each kind instead of holding one each.  Results never depend on the workspace: a scratch array is fully
written before it is read, and ``zeroed`` ones are cleared on every call.  Without a workspace (None) every call
allocates.

The one exception is read under a check: a convolution's backward pass reads the columns its forward pass left in
scratch only if no call has written that buffer since (:func:`stamp`, :func:`untouched`).

Kernels whose temporaries grow with the input work through it in :func:`chunks` (a convolution, a few output
rows at a time), so that each temporary stays in cache between the step that writes it and the one that reads
it, and memory stays small.
"""

from __future__ import annotations

import math

import numpy as np

CHUNK_BYTES = 4 << 20  # temporaries of at most 4 MiB at a time: they stay in cache, and memory stays small
# A convolution's columns up to this size are built whole instead: its backward pass then reuses them, which
# saves building them again, more than a few cache misses cost.  The workspace holds them from one step to the
# next, so the size is also memory kept: 13 MiB keeps the columns of seed-cnn's second convolution at batch 256,
# and leaves each benchmarked model's peak below PyTorch's (benchmarks/README.md).
KEEP_BYTES = 13 << 20


def scratch(workspace: dict | None, name: str, shape: tuple, dtype) -> np.ndarray:
    """A temporary array whose contents are undefined: the caller writes all of it before reading."""
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    size, key = math.prod(shape), (name, np.dtype(dtype))
    flat = workspace.get(key)
    if flat is None or flat.size < size:
        flat = workspace[key] = np.empty(size, dtype=dtype)
    workspace.setdefault("writers", {})[name] = workspace.get("stamp")
    return flat[:size].reshape(shape)


def stamp(workspace: dict | None) -> int | None:
    """Mark the start of a call that writes the workspace's scratch, and return the mark.  A kernel that leaves a
    result in scratch for its next call (the columns of a convolution, for its backward pass) records the mark of
    the call that wrote it; the result is still there while no later call has written that buffer (see
    :func:`untouched`).  Without a workspace nothing is shared: None."""
    if workspace is None:
        return None
    workspace["stamp"] = mark = workspace.get("stamp", 0) + 1
    return mark


def untouched(workspace: dict | None, mark: int | None, name: str) -> bool:
    """Whether the scratch buffer ``name`` was last written by the call that got ``mark``."""
    return workspace is None or workspace.get("writers", {}).get(name) == mark


def zeroed(workspace: dict | None, name: str, shape: tuple, dtype) -> np.ndarray:
    """A temporary array of zeros."""
    if workspace is None:
        return np.zeros(shape, dtype=dtype)
    buffer = scratch(workspace, name, shape, dtype)
    buffer.fill(0)
    return buffer


def chunks(count: int, bytes_each: int) -> list[slice]:
    """``range(count)`` cut into about equal slices (the last may be shorter) whose items take at most
    CHUNK_BYTES together, or one item each where a single item takes more."""
    pieces = min(count, max(1, -(-count * bytes_each // CHUNK_BYTES)))
    size = -(-count // pieces)
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]
