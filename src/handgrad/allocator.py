"""What the C allocator does with freed memory, for a process that trains.

NumPy takes every array's memory from the C allocator (``malloc``).  glibc's malloc gives the memory freed
at the top of its heap back to the operating system once more than a threshold lies free there, and serves
blocks above another threshold from fresh mappings, unmapped when freed.  Both thresholds adapt: each time
a mapped block is freed they are raised to its size (and twice its size), up to 32 and 64 MiB.  A training
step allocates and frees the same few megabytes every time; unless a large enough block happened to be
freed early, the heap shrinks and grows again, and each page that comes back costs a page fault and a
page of zeros.  The seed CNN at batch 64 met about 97 page faults a step on its own and almost none with the
thresholds raised, and the steps take less time (benchmarks/README.md has the figures).

:func:`keep_freed_memory` sets the thresholds where glibc's own adaptation tops out, so that freed memory
stays with the process for the next step.  It is a setting of the whole process, so importing handgrad
never makes it: the ``handgrad`` command calls it (it owns its process), and a program that trains may.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, from glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # the most glibc takes: blocks below it come from the heap
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # free memory kept at the top of the heap, as glibc's adaptation sets it


def _mallopt():
    """glibc's ``mallopt``, or None on another C library (musl's does nothing, macOS has none)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return getattr(ctypes.CDLL(None), "mallopt", None)


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for the rest of the process (64 and 32 MiB); True if done.

    Nothing is done (False) on another C library, or where the environment sets either threshold already
    (``GLIBC_TUNABLES``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``): the user's choice stands.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in tunables for name in ("malloc.trim_threshold", "malloc.mmap_threshold")) or any(
        name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    ):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
