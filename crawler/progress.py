"""Progress of a running crawl, logged every LOGSTATS_INTERVAL seconds (default 60).

Replaces Scrapy's LogStats extension (same setting, same final ``responses_per_minute`` /
``items_per_minute`` stats) with one line that also tells where the crawl's articles are:

    Crawled 812 pages (at 240 pages/min), stored 503 articles (at 150/min); 1200 candidates:
    380 to fetch, 37 skipped as seen, 20 not articles, 250 irrelevant, 3 errors

"to fetch" is what discovery found and the crawl has not fetched, skipped or failed yet.
The per-topic figures come once, in the summary at the end (crawler/runs.py).
"""

from __future__ import annotations

import logging

from scrapy.extensions.logstats import LogStats

from crawler.stats import totals

logger = logging.getLogger(__name__)

__all__ = ["CrawlProgress"]

_COUNTERS = ("discovered", "fetched", "skipped_seen", "robots_blocked", "not_article", "irrelevant", "stored", "errors")


class CrawlProgress(LogStats):
    def spider_opened(self, spider) -> None:
        self.stored_prev = 0
        super().spider_opened(spider)

    def log(self, spider) -> None:
        self.calculate_stats()
        t = totals(self.stats, _COUNTERS)
        to_fetch = max(0, t["discovered"] - t["fetched"] - t["skipped_seen"] - t["robots_blocked"] - t["errors"])
        stored_rate = (t["stored"] - self.stored_prev) * self.multiplier
        self.stored_prev = t["stored"]
        logger.info(
            "Crawled %d pages (at %d pages/min), stored %d articles (at %d/min); %d candidates: "
            "%d to fetch, %d skipped as seen, %d not articles, %d irrelevant, %d errors",
            self.pages, self.prate, t["stored"], stored_rate, t["discovered"],
            to_fetch, t["skipped_seen"], t["not_article"], t["irrelevant"], t["errors"],
            extra={"spider": spider},
        )
