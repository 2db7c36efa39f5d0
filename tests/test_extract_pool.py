"""The extraction pool's life cycle: started in a thread at spider open, awaited by the
first page, waited for at close; a pool that cannot start stops the crawl."""

from __future__ import annotations

import asyncio

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from crawler.items import ArticleItem
from pipelines.extract import ExtractOptions, ExtractPipeline

PAGE = (
    b"<html><head><title>Council votes</title><meta property='og:type' content='article'>"
    b"<meta property='article:published_time' content='2026-11-30T09:00:00Z'></head><body><article><h1>Council votes</h1>"
    + b"".join(b"<p>Resident %d told the council how the river road plan would change the morning commute.</p>" % i for i in range(12))
    + b"</article></body></html>"
)


def _item(url: str) -> ArticleItem:
    return ArticleItem(url=url, fetched_url=url, topics=("t",), html=PAGE, encoding="utf-8", hints={})


def test_first_page_waits_for_the_pool_started_in_a_thread():
    stats = get_crawler().stats
    pipeline = ExtractPipeline(stats, 1, ExtractOptions(min_text_chars=100, keep_raw_html=False))

    async def run():
        pipeline.open_spider()  # returns at once: the pool starts in a thread
        assert pipeline._pool is None
        return await pipeline.process_item(_item("http://news.example/a"))

    try:
        item = asyncio.run(run())
    finally:
        pipeline.close_spider()
    assert "Resident 11 told the council" in item["text"] and item["title"] == "Council votes"
    assert pipeline._pool is None and pipeline._starting is None  # shut down


def test_close_before_the_pool_is_ready():
    pipeline = ExtractPipeline(get_crawler().stats, 1, ExtractOptions())
    pipeline.open_spider()
    starting = pipeline._starting
    pipeline.close_spider()  # waits for the start, then shuts the workers down
    assert pipeline._pool is None and pipeline._starting is None
    with pytest.raises(RuntimeError, match="shutdown"):  # the pool that was starting is shut down
        starting.result().submit(int)


def test_a_pool_that_cannot_start_stops_the_crawl(caplog):
    stats = get_crawler().stats
    stopped = []
    # a worker count ProcessPoolExecutor refuses: a real failure to start the pool
    pipeline = ExtractPipeline(stats, -1, ExtractOptions(), stop_crawl=stopped.append)

    async def run():
        pipeline.open_spider()
        for url in ("http://news.example/a", "http://news.example/b"):
            with pytest.raises(DropItem):
                await pipeline.process_item(_item(url))

    asyncio.run(run())
    pipeline.close_spider()
    assert stopped == ["extraction_pool_failed"]  # once, however many pages were waiting
    assert stats.get_value("news/errors") == 2
    assert "Could not start the extraction pool" in caplog.text


def test_a_negative_worker_count_is_refused_at_start():
    crawler = get_crawler(settings_dict={"NEWS_EXTRACT_WORKERS": -2})
    with pytest.raises(ValueError, match="NEWS_EXTRACT_WORKERS=-2"):
        ExtractPipeline.from_crawler(crawler)


def test_workers_are_recycled_every_max_tasks_per_child_pages():
    """Long crawls: every max_tasks_per_child x workers pages a fresh pool takes over (caches
    and fragmentation of the old workers go with them); every page is still extracted."""
    pipeline = ExtractPipeline(get_crawler().stats, 1, ExtractOptions(min_text_chars=100, keep_raw_html=False), max_tasks_per_child=2)
    pools, pids = [], []

    async def run():
        pipeline.open_spider()
        items = []
        for i in range(5):
            items.append(await pipeline.process_item(_item(f"http://news.example/{i}")))
            if not pools or pools[-1] is not pipeline._pool:
                pools.append(pipeline._pool)
                pids.append(set(pipeline._pool._processes))
        return items

    try:
        items = asyncio.run(run())
    finally:
        pipeline.close_spider()
    assert all("Resident 11 told the council" in item["text"] for item in items)
    assert len(pools) == 3  # pages 1-2, 3-4, 5
    assert all(pids) and not (pids[0] & pids[1]) and not (pids[1] & pids[2])  # new worker processes each time
