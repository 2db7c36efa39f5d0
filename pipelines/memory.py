"""Hand memory that Python has freed back to the operating system, on glibc.

A long crawl allocates and frees many mid-sized buffers (numpy arrays of each article's
grouping features, merged index segments, page bodies). glibc's malloc keeps freed
chunks inside its heaps, so the process's resident size climbs to the high-water mark
of that churn and stays there. ``malloc_trim(0)`` returns whole free pages to the kernel
(it madvises free pages in the middle of a heap too, not only the top). Measured with
bench/long_run.py (see docs/benchmarks.md). Elsewhere (musl, macOS) this is a no-op.

``fix_mmap_threshold(n)`` also pins glibc's mmap threshold: by default glibc raises it (up to
32 MB) each time a big mmapped block is freed, after which the grouping index's growing
arrays (megabytes each, reallocated as they grow) are carved out of the main heap and leave
holes there. With a fixed threshold every block of ``n`` bytes or more gets its own mapping
and goes straight back to the kernel when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

_M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number


def _libc_function(name: str, argtypes: list):
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


def _malloc_trim():
    return _libc_function("malloc_trim", [ctypes.c_size_t])


def fix_mmap_threshold(nbytes: int) -> bool:
    """Pin glibc's mmap threshold at ``nbytes`` (0 leaves glibc's dynamic threshold); True if set."""
    if nbytes < 0:
        raise ValueError(f"NEWS_MALLOC_MMAP_THRESHOLD={nbytes}: use a number of bytes (e.g. 1048576), or 0 to leave glibc's default")
    if not nbytes:
        return False
    mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    return bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, nbytes) == 1)


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` at most once every ``every_seconds`` (0 turns it off)."""

    def __init__(self, every_seconds: float, clock=time.monotonic):
        if every_seconds < 0:
            raise ValueError(f"NEWS_MALLOC_TRIM_SECONDS={every_seconds}: use a number of seconds, or 0 to turn heap trimming off")
        self.every_seconds = every_seconds
        self._clock = clock
        self._trim = _malloc_trim() if every_seconds else None
        self._last = clock()
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def maybe_trim(self) -> bool:
        """Trim if it is time; True if it trimmed."""
        if self._trim is None or self._clock() - self._last < self.every_seconds:
            return False
        self._trim(0)
        self._last = self._clock()
        self.trims += 1
        return True
