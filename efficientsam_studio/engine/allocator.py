"""Process allocator settings for the torch backends on Linux (glibc).

torch allocates CPU tensors with ``malloc``. glibc serves blocks above its mmap threshold (128 KiB
at start, raised on the fly up to 32 MiB) with fresh ``mmap`` calls and returns them on free, so large
temporaries come back as new pages that the kernel must fault in and zero again. Keeping blocks up to
32 MiB in the heap, and trimming the heap only beyond 512 MiB of free space at its top, lets the model
reuse its memory from call to call. Measured on a 2-core CPU (``benchmarks/README.md``): the vit_t
encoder about 5 % faster and the ``nn.Module`` decoder 15 %; the inference decoder's
temporaries are small enough that it does not depend on it.
``EFSAM_ALLOCATOR_TUNING=0`` in the environment leaves glibc's settings alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""The largest value glibc accepts for ``M_MMAP_THRESHOLD`` on 64-bit systems."""
TRIM_THRESHOLD_BYTES = 512 * 1024 * 1024

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Applies the settings above once per process; True when glibc accepted them.

    Does nothing (False) outside Linux, on a C library without ``mallopt`` or with
    ``EFSAM_ALLOCATOR_TUNING=0``.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if not sys.platform.startswith("linux") or os.environ.get("EFSAM_ALLOCATOR_TUNING") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    return _tuned
