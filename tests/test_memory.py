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
