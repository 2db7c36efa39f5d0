"""Crawl counters, kept in Scrapy's stats as ``news/<counter>`` and ``news/topic/<name>/<counter>``."""

from __future__ import annotations

from typing import Iterable

__all__ = ["count", "topic_counts", "totals"]


def count(stats, counter: str, topics: Iterable[str] = (), n: int = 1, total: bool = True) -> None:
    """Add ``n`` to ``counter`` for each of ``topics``, and to the crawl's total unless ``total`` is False."""
    if total:
        stats.inc_value(f"news/{counter}", n)
    for topic in topics:
        stats.inc_value(f"news/topic/{topic}/{counter}", n)


def totals(stats, counters: Iterable[str]) -> dict[str, int]:
    return {c: int(stats.get_value(f"news/{c}", 0)) for c in counters}


def topic_counts(stats, topic: str, counters: Iterable[str]) -> dict[str, int]:
    return {c: int(stats.get_value(f"news/topic/{topic}/{c}", 0)) for c in counters}
