"""Flow control: fetching pauses while too many articles are in the pipelines.

Without it, nothing stops fetching and extraction from running ahead of the store's writer
thread, and every article waiting for SQLite holds its text, raw HTML and grouping features
(tens of kilobytes) in memory. Measured on a 4,000-page local crawl: up to 1,400 such
articles at once, most of the crawl process's memory growth on long runs.

Two pieces bound it. The store lets at most two batches wait for the writer thread; an
article arriving after that waits in ``StorePipeline.process_item``. ``InFlight`` counts the
articles between the first pipeline and the end of the last one (Scrapy's ``item_scraped``,
``item_dropped`` and ``item_error`` signals) and pauses the engine's scheduling
(``engine.pause()``) while ``limit`` or more are in: downloads already under way finish and
their articles still come in (so the count can pass ``limit`` by about CONCURRENT_REQUESTS
plus the responses waiting for the spider), no new ones start, and scheduling resumes as soon
as articles leave. Waiting in the
pipeline instead would keep every new response alive (Scrapy lets up to 5 MB of response
bodies be processed at once, thousands of small pages, each with ~100 asyncio tasks).

The limit must leave room for full store batches, or every batch would wait for the
store's flush timer: ``limit()`` gives three batches plus four pages per extraction worker
unless ``NEWS_ITEMS_IN_FLIGHT`` says otherwise.
"""

from __future__ import annotations

import logging
from typing import Callable

from scrapy import signals

logger = logging.getLogger(__name__)

__all__ = ["InFlight", "limit"]


def limit(settings, workers: int) -> int:
    """NEWS_ITEMS_IN_FLIGHT, or (when 0) 3 store batches + 4 pages per extraction worker."""
    batch = max(1, settings.getint("NEWS_STORE_BATCH_SIZE", 50))
    value = settings.getint("NEWS_ITEMS_IN_FLIGHT", 0)
    if value < 0:
        raise ValueError(f"NEWS_ITEMS_IN_FLIGHT={value}: give a number of articles (0 = automatic: {3 * batch + 4 * workers})")
    if value and value <= batch:
        raise ValueError(
            f"NEWS_ITEMS_IN_FLIGHT={value} is not above NEWS_STORE_BATCH_SIZE={batch}: batches could never fill "
            f"and every write would wait NEWS_STORE_FLUSH_SECONDS; use at least {2 * batch}, or 0 for automatic"
        )
    return value or 3 * batch + 4 * workers


class InFlight:
    """Counts the articles in the pipelines and pauses the engine while ``limit`` or more are in."""

    def __init__(self, limit: int, engine: Callable[[], object | None], stats=None):
        if limit < 1:
            raise ValueError(f"limit={limit}: at least one article must be let in")
        self.limit = limit
        self.engine = engine  # returns the object to pause() / unpause() (Scrapy's engine)
        self.stats = stats
        self._inside: set[int] = set()
        self._paused = False

    @classmethod
    def from_crawler(cls, crawler, limit: int) -> "InFlight":
        in_flight = cls(limit, lambda: crawler.engine, crawler.stats)  # the engine exists once the crawl runs
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(in_flight.leave, signal=signal)
        return in_flight

    def __len__(self) -> int:
        return len(self._inside)

    @property
    def paused(self) -> bool:
        return self._paused

    def enter(self, item) -> None:
        self._inside.add(id(item))
        if self.stats is not None:
            self.stats.max_value("news/items_in_flight_max", len(self._inside))
        engine = self.engine()
        if not self._paused and len(self._inside) >= self.limit and engine is not None:
            self._paused = True
            engine.pause()
            if self.stats is not None:
                self.stats.inc_value("news/fetch_pauses")
            logger.debug("%d articles in the pipelines: fetching paused", len(self._inside))

    def leave(self, item, **kwargs) -> None:
        """Signal handler: the item has left the pipelines (stored, dropped or failed)."""
        self._inside.discard(id(item))
        if self._paused and len(self._inside) < self.limit:
            self._paused = False
            self.engine().unpause()  # the response that just finished schedules the next requests
