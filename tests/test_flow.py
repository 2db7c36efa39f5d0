"""Flow control (pipelines/flow.py): fetching pauses while too many articles are in the pipelines.

Unit tests drive InFlight with a recording stand-in for Scrapy's engine; the end-to-end test
runs a real crawl whose store is the bottleneck and checks that fetching paused, resumed and
stored every article.
"""

from __future__ import annotations

import json
import random

import pytest
from scrapy.settings import Settings

from demo.server import FixtureServer, Response
from pipelines.flow import InFlight, limit
from tests.conftest import open_store, run_crawl


class Engine:
    def __init__(self):
        self.calls: list[str] = []

    def pause(self):
        self.calls.append("pause")

    def unpause(self):
        self.calls.append("unpause")


Item = object  # InFlight tells items apart by identity


def test_pauses_at_the_limit_and_resumes_below_it():
    engine = Engine()
    flow = InFlight(3, lambda: engine)
    items = [Item() for _ in range(5)]
    flow.enter(items[0])
    flow.enter(items[1])
    assert engine.calls == []
    flow.enter(items[2])
    assert engine.calls == ["pause"] and flow.paused
    flow.enter(items[3])  # already downloaded: it is let in, no second pause
    assert engine.calls == ["pause"] and len(flow) == 4
    flow.leave(items[0])
    assert engine.calls == ["pause"]  # 3 still in: stays paused
    flow.leave(items[1])
    assert engine.calls == ["pause", "unpause"] and not flow.paused
    flow.enter(items[4])
    assert engine.calls == ["pause", "unpause", "pause"]


def test_leave_ignores_items_it_never_counted():
    engine = Engine()
    flow = InFlight(1, lambda: engine)
    flow.leave(Item())  # e.g. an item dropped before extraction
    assert engine.calls == [] and len(flow) == 0
    counted = Item()
    flow.enter(counted)
    flow.leave(counted)
    flow.leave(counted)  # item_dropped after item_error: counted once
    assert engine.calls == ["pause", "unpause"] and len(flow) == 0


def test_no_engine_yet_means_no_pause():
    flow = InFlight(1, lambda: None)
    flow.enter(Item())
    assert not flow.paused


def test_limit_defaults_and_clear_errors():
    assert limit(Settings({"NEWS_STORE_BATCH_SIZE": 50}), workers=2) == 158
    assert limit(Settings({"NEWS_STORE_BATCH_SIZE": 10, "NEWS_ITEMS_IN_FLIGHT": 25}), workers=2) == 25
    with pytest.raises(ValueError, match="NEWS_ITEMS_IN_FLIGHT=50 is not above NEWS_STORE_BATCH_SIZE=50"):
        limit(Settings({"NEWS_STORE_BATCH_SIZE": 50, "NEWS_ITEMS_IN_FLIGHT": 50}), workers=2)
    with pytest.raises(ValueError, match="NEWS_ITEMS_IN_FLIGHT=-1"):
        limit(Settings({"NEWS_ITEMS_IN_FLIGHT": -1}), workers=2)
    with pytest.raises(ValueError, match="limit=0"):
        InFlight(0, lambda: None)


def _page(i: int) -> bytes:
    rng = random.Random(i)
    words = "harbor council budget river bridge museum station election library storm".split()
    paras = "".join(
        "<p>" + " ".join(rng.choice(words) for _ in range(40)).capitalize() + f" Report {i}.</p>" for _ in range(4)
    )
    return f"<html><head><title>Report {i}</title></head><body><article><h1>Report {i}</h1>{paras}</article></body></html>".encode()


def test_crawl_pauses_fetching_while_the_store_is_behind_and_stores_everything(tmp_path):
    n = 150
    server = FixtureServer()
    with server:
        for i in range(n):
            server.pages[f"/r/report-{i}.html"] = Response(200, _page(i), {"Content-Type": "text/html; charset=utf-8"})
        urls = "".join(f"<url><loc>{server.base}/r/report-{i}.html</loc></url>" for i in range(n))
        server.pages["/sitemap.xml"] = Response(
            200, f"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{urls}</urlset>".encode(), {"Content-Type": "application/xml"}
        )
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "flow"\nmax_age_days = 0\nsitemaps = ["{server.base}/sitemap.xml"]\n')
        db = tmp_path / "news.db"
        # batches of 2 and at most 5 articles in flight: the store cannot keep up with 8 downloads at once
        result = run_crawl(topics, db, "-s", "NEWS_MIN_TEXT_CHARS=200", "-s", "NEWS_STORE_BATCH_SIZE=2", "-s", "NEWS_ITEMS_IN_FLIGHT=5",
                           "-s", "CONCURRENT_REQUESTS=8", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    store = open_store(db)
    assert store["articles"].count == n
    stats = json.loads(next(store["crawl_runs"].rows)["stats"])
    assert stats["news/fetch_pauses"] >= 1
    # the limit, plus what was already downloaded when fetching paused: the downloads under way
    # (8) and as many responses waiting for the spider; without the pause it reaches 40-60
    assert 5 <= stats["news/items_in_flight_max"] <= 5 + 2 * 8
