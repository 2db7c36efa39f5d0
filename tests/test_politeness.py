"""Politeness against a local server: Retry-After honoured, back-off between retries, User-Agent."""

from __future__ import annotations

import time

from demo.server import FixtureServer, Response
from tests.conftest import open_store, run_crawl

PARAGRAPH = (
    "Regional transit planners presented a revised timetable on Monday that adds late evening trains "
    "on the northern line, after a year of complaints from shift workers who said the last departure "
    "left them stranded downtown. The change takes effect next month and will be reviewed in spring."
)
SECOND = (
    "Union representatives welcomed the extra services but asked the authority to publish ridership "
    "figures for the pilot, arguing that a quiet first winter should not be used to cancel the trains. "
    "The authority said it would release monthly numbers on its website from January onwards."
)
ARTICLE = (
    "<html><head><title>Transit timetable</title></head><body><article><h1>Transit timetable</h1>"
    f"<p>{PARAGRAPH}</p><p>{SECOND}</p></article></body></html>"
).encode()


def _feed(base: str, paths: list[str]) -> bytes:
    items = "".join(f"<item><title>t</title><link>{base}{p}</link></item>" for p in paths)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>f</title>{items}</channel></rss>'.encode()


def test_retry_after_and_backoff(tmp_path):
    hits: dict[str, list[float]] = {"/news/busy-article-one.html": [], "/news/flaky-article-two.html": []}

    def busy(handler):
        hits["/news/busy-article-one.html"].append(time.monotonic())
        if len(hits["/news/busy-article-one.html"]) == 1:
            return Response(429, b"slow down", {"Retry-After": "2"})
        return Response(200, ARTICLE, {"Content-Type": "text/html; charset=utf-8"})

    def flaky(handler):
        hits["/news/flaky-article-two.html"].append(time.monotonic())
        if len(hits["/news/flaky-article-two.html"]) <= 2:
            return Response(503, b"unavailable")
        return Response(200, ARTICLE.replace(b"Transit", b"Tram"), {"Content-Type": "text/html; charset=utf-8"})

    server = FixtureServer(routes={"/news/busy-article-one.html": busy, "/news/flaky-article-two.html": flaky})
    with server:
        server.pages["/feed.xml"] = _feed(server.base, list(hits))
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
        result = run_crawl(topics, tmp_path / "news.db", "-s", "NEWS_RETRY_BACKOFF_BASE=0.5", "-s", "NEWS_CONTACT=ops@example.org")
        records = server.records()
    assert result.returncode == 0, result.stderr[-2000:]
    busy_hits = hits["/news/busy-article-one.html"]
    assert len(busy_hits) == 2 and busy_hits[1] - busy_hits[0] >= 1.9, busy_hits  # Retry-After: 2
    flaky_hits = hits["/news/flaky-article-two.html"]
    assert len(flaky_hits) == 3
    assert flaky_hits[1] - flaky_hits[0] >= 0.45 and flaky_hits[2] - flaky_hits[1] >= 0.95  # 0.5 s, then 1 s
    db = open_store(tmp_path / "news.db")
    assert db.execute("select count(*) from articles").fetchone()[0] == 2, result.stderr[-3000:]
    agents = {r.headers.get("User-Agent") for r in records}
    assert agents and all("newscrawler" in a for a in agents)


def test_user_agent_names_contact(tmp_path):
    with FixtureServer(pages={"/feed.xml": b"<rss version='2.0'><channel></channel></rss>"}) as server:
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nfeeds = ["{server.base}/feed.xml"]\n')
        result = run_crawl(topics, tmp_path / "news.db", "-s", "NEWS_CONTACT=ops@example.org")
        records = server.records()
    assert result.returncode == 0
    assert records and all("ops@example.org" in r.headers.get("User-Agent", "") for r in records)


def test_per_domain_concurrency_holds_with_a_zero_delay(tmp_path):
    """CONCURRENT_REQUESTS_PER_DOMAIN is a promise to the sites, also with -s DOWNLOAD_DELAY=0
    (Scrapy 2.19 alone then starts a slot's whole queue at once: crawler/politeness.py)."""
    import threading

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def slow(handler):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return Response(200, ARTICLE, {"Content-Type": "text/html; charset=utf-8"})

    paths = [f"/news/transit-story-{i:02d}.html" for i in range(12)]
    with FixtureServer(routes={p: slow for p in paths}) as server:
        server.pages["/feed.xml"] = _feed(server.base, paths)
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
        result = run_crawl(topics, tmp_path / "news.db", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2")  # conftest: DOWNLOAD_DELAY=0
    assert result.returncode == 0, result.stderr[-2000:]
    assert state["max"] == 2, state  # the limit, reached and never exceeded
    assert open_store(tmp_path / "news.db").execute("select count(*) from articles").fetchone()[0] == len(paths)
