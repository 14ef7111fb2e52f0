"""glibc's malloc told to keep freed memory for reuse, for big runs and the server.

A run allocates and frees numpy arrays of a few MB each window.  By default
glibc hands large blocks back to the kernel (mmap/munmap above its threshold,
heap trimming below it) and takes them again as fresh zeroed pages: ~200k page
faults and ~0.5 s of kernel time in a month of enterprise traffic, about 7 %
of the run.  Raising both thresholds keeps the blocks in the heap for the next
window, for ~15 MB more peak RSS.  `callsim serve` does the same: at 100,000
connected calls every full pass over the call table allocates temporaries of
~1 MB, and p99 setup latency was 8.3-10.1 ms with it against 10.4-16.1 ms
without (4 alternating pairs; peak RSS 247 MB against 249 MB).  Only the
commands' entry points call this (it changes the whole process): `callsim
run`, the bench's run, the CDR file workers, `callsim serve`.  Without glibc it
does nothing.

The server gives the memory back once clients have left (`return_freed_memory`):
kept, the buffers of a thousand connections would stay in its RSS for good.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap...
TRIM_THRESHOLD = 256 << 20  # ...and this much free heap top is kept, not returned


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (musl has a no-op mallopt and no malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols the process has loaded, libc's among them
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False where there is no glibc to tell."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def return_freed_memory() -> bool:
    """Give the kernel back the free pages of malloc's heaps (`malloc_trim(0)`), whatever the
    thresholds; True if some were.  Takes milliseconds on a big heap: call it from a thread."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
