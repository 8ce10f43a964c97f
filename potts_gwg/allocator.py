"""Keep freed mid-sized arrays in the process's heap (glibc malloc) for the command line.

Why: glibc serves an allocation above its mmap threshold (at most 32 MiB) with fresh pages
from the system and returns them when it is freed, so every such array costs a page fault
per 4 KiB page when it is written again. A PCD step allocates several (chains, L·q) arrays
(39 MB each at L = 458 with 1024 chains): at CRY2_4I6E, 5 GWG updates on one thread took 79
and 87 s, with 10.6 M page faults; with the thresholds below 45-50 s and 1.5 M faults, for
9 % more peak resident memory (benchmarks/README.md). Arrays larger than the threshold (the
(L·q)² couplings of long proteins, which the fits reuse anyway) still come from the system.
The memory a fit may keep this way is part of its estimate on a CPU
(``potts_gwg.fit.memory.HOST_ALLOCATOR_SLACK_BYTES``).

Called by the ``potts-gwg`` entry point and the batch's workers (local and Ray), not on
import: a program that imports the library keeps its own allocator settings. A user's own
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or their ``GLIBC_TUNABLES`` win; other C
libraries are left alone.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Arrays up to 128 MiB come from the heap: chain arrays up to L ≈ 1500 at 1024 chains.
MMAP_THRESHOLD_BYTES = 128 * 2**20
# glibc before 2.35 refuses mmap thresholds above 32 MiB (half its largest arena heap).
FALLBACK_MMAP_THRESHOLD_BYTES = 32 * 2**20
# Free memory at the top of the heap kept for reuse before it is given back.
TRIM_THRESHOLD_BYTES = 256 * 2**20
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
USER_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def release_freed_memory() -> bool:
    """Give the heap's free memory back to the system (glibc ``malloc_trim``), e.g. between
    a batch worker's families, whose peak memory is counted from what the process then holds.
    Returns whether it could (glibc only)."""
    gc.collect()  # the previous job's arrays, if a reference cycle still holds them
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim(0)
    return True


def keep_freed_memory() -> int:
    """Raise glibc's mmap and trim thresholds for this process; returns the mmap threshold
    set (bytes), 0 if none was (not glibc, or the user chose the thresholds)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS) \
            or any(name in tunables for name in USER_TUNABLES):
        return 0
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: mallopt's parameters differ elsewhere
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return 0
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    for threshold in (MMAP_THRESHOLD_BYTES, FALLBACK_MMAP_THRESHOLD_BYTES):
        if mallopt(M_MMAP_THRESHOLD, threshold):
            return threshold
    return 0
