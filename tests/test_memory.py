"""pipelines.memory.HeapTrimmer: trims on its interval, off at 0, clear error for bad values."""

import platform

import pytest

from pipelines.memory import HeapTrimmer


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_trims_at_most_once_per_interval():
    clock = Clock()
    trimmer = HeapTrimmer(10.0, clock=clock)
    if not trimmer.available:
        pytest.skip("no malloc_trim in this C library")
    assert trimmer.maybe_trim() is False  # not yet: the interval starts at creation
    clock.now += 9.9
    assert trimmer.maybe_trim() is False
    clock.now += 0.2
    assert trimmer.maybe_trim() is True
    assert trimmer.maybe_trim() is False
    clock.now += 10
    assert trimmer.maybe_trim() is True
    assert trimmer.trims == 2


def test_zero_turns_it_off():
    clock = Clock()
    trimmer = HeapTrimmer(0, clock=clock)
    clock.now += 1e6
    assert not trimmer.available
    assert trimmer.maybe_trim() is False
    assert trimmer.trims == 0


def test_negative_interval_is_a_clear_error():
    with pytest.raises(ValueError, match="NEWS_MALLOC_TRIM_SECONDS=-1"):
        HeapTrimmer(-1)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_available_on_glibc():
    assert HeapTrimmer(1.0).available


def test_mmap_threshold_zero_leaves_glibc_alone_and_negative_is_a_clear_error():
    from pipelines.memory import fix_mmap_threshold

    assert fix_mmap_threshold(0) is False
    with pytest.raises(ValueError, match="NEWS_MALLOC_MMAP_THRESHOLD=-1"):
        fix_mmap_threshold(-1)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_mmap_threshold_pins_big_blocks_to_their_own_mappings():
    """After pinning at 1 MiB, a 2 MiB block is mmapped: freeing it returns it to the kernel at once."""
    import subprocess
    import sys

    code = (
        "import ctypes, ctypes.util\n"
        "from pipelines.memory import fix_mmap_threshold\n"
        "class MI(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena','ordblks','smblks','hblks','hblkhd','usmblks','fsmblks','uordblks','fordblks','keepcost')]\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
        "libc.mallinfo2.restype = MI\n"
        "libc.malloc.restype = ctypes.c_void_p\n"
        "libc.free.argtypes = [ctypes.c_void_p]\n"
        "assert fix_mmap_threshold(1 << 20)\n"
        "for _ in range(3):\n"  # free big blocks: glibc's dynamic threshold would rise past 2 MiB here
        "    libc.free(libc.malloc(8 << 20))\n"
        "before = libc.mallinfo2().hblkhd\n"
        "p = libc.malloc(2 << 20)\n"
        "print(libc.mallinfo2().hblkhd - before >= 2 << 20)\n"
        "libc.free(p)\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env={"PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_long_run_reports_the_last_mark_reached():
    """bench/long_run.py: a crawl that ends before 10k reports growth to the last mark it reached."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        from long_run import growth_line
    finally:
        sys.path.pop(0)
    marks = [1000, 5000, 10000]
    line = growth_line(marks, {1000: (100_000, 0, 2, 10.0), 5000: (110_000, 0, 2, 50.0)})
    assert "1000 -> 5000: +10.0%" in line and "10000 not reached" in line
    assert "1000 -> 10000: +15.0%" in growth_line(marks, {1000: (100_000, 0, 2, 1.0), 5000: (1, 0, 2, 1.0), 10000: (115_000, 0, 2, 1.0)})
    assert "not measured" in growth_line(marks, {1000: (100_000, 0, 2, 10.0)})
