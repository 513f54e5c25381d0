"""Process tuning the batch jobs apply for themselves (never a kernel, never at import)."""

from __future__ import annotations

import ctypes
import sys

# The indicator kernels create many short-lived block-sized temporaries.  glibc's default policy
# hands such memory back to the kernel as soon as a few MB are free, so every new temporary is
# page-faulted in again, which doubles A2's compute time.  Keeping freed memory for reuse (up to
# these sizes) avoids that.
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_tuned = False


def keep_freed_memory() -> None:
    """Raise glibc's mmap and trim thresholds, once per process (a no-op elsewhere or on failure)."""
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return
    _tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


def release_freed_memory() -> None:
    """Hand the memory ``keep_freed_memory`` keeps back to the kernel (glibc's malloc_trim), between
    two large phases: a job that overlaps the next phase with the last one's output would otherwise
    carry what every thread kept into it.  A no-op elsewhere or on failure."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
