"""End to end: a real `scrapy crawl news` over the fixture site on 127.0.0.1, then the SQLite file.

The fixture site (demo/site, described by demo/site_manifest.json) has RSS, Atom and JSON
feeds, a sitemap index with a gzipped child and a Google News sitemap, a listing page,
robots.txt disallowing /private/, and article pages full of clutter: navigation, a
"Featured" list of AI-tool ad cards (the creati.ai layout), related links, comments.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date
from urllib.parse import urlsplit

import pytest

from tests.conftest import DEMO_SITE, open_store, run_crawl, write_topics

TEMPLATE = (DEMO_SITE.parent / "topics.template.toml").read_text(encoding="utf-8")


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, manifest):
    """Crawl the demo site twice into one database; yield what the tests inspect."""
    from demo.server import FixtureServer

    tmp = tmp_path_factory.mktemp("e2e")
    with FixtureServer(root=DEMO_SITE) as server:
        topics = write_topics(tmp / "topics.toml", TEMPLATE, server.base)
        db = tmp / "news.db"
        first = run_crawl(topics, db, "-O", str(tmp / "items.jsonl"))
        first_paths = server.paths()
        server.clear()
        second = run_crawl(topics, db)
        second_records = server.records()
    yield {
        "base": server.base,
        "db": open_store(db),
        "first": first,
        "second": second,
        "first_paths": first_paths,
        "second_records": second_records,
        "items": tmp / "items.jsonl",
        "manifest": manifest,
    }


def _path(url: str) -> str:
    return urlsplit(url).path


def _articles(crawled) -> dict[str, dict]:
    return {_path(row["url"]): row for row in crawled["db"]["articles"].rows}


def _topics_by_path(crawled) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in crawled["db"]["article_topics"].rows:
        out.setdefault(_path(row["url"]), set()).add(row["topic"])
    return out


def test_crawls_exit_cleanly(crawled):
    for result in (crawled["first"], crawled["second"]):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_expected_articles_stored_for_their_topics(crawled):
    stored = _topics_by_path(crawled)
    for article in crawled["manifest"]["articles"]:
        for topic, outcome in article["expected"].items():
            if outcome in ("stored", "stored_if_no_age_limit"):
                assert topic in stored.get(article["path"], set()), f"{article['path']} should be stored for {topic}"
            else:
                assert topic not in stored.get(article["path"], set()), f"{article['path']} should not be stored for {topic} ({outcome})"


def test_discovery_reached_every_source_kind(crawled):
    paths = crawled["first_paths"]
    for source in ["/robots.txt", "/feeds/rss.xml", "/feeds/atom.xml", "/feeds/feed.json", "/sitemap_index.xml",
                   "/sitemaps/articles.xml.gz", "/sitemaps/news.xml", "/local/"]:
        assert any(p.split("?")[0] == source for p in paths), f"{source} was not fetched"
    by_source = {a["path"]: a["sources"] for a in crawled["manifest"]["articles"]}
    stored = _articles(crawled)
    # an article found only through the gzipped sitemap, one only through the news sitemap,
    # one only through the JSON feed and one only through the listing page were all fetched
    for kind in ("sitemap", "news_sitemap", "json_feed", "local_page"):
        only = [p for p, s in by_source.items() if s == [kind]]
        assert only, f"manifest has no article listed only in {kind}"
        assert any(_path_fetched(paths, p) for p in only), f"no {kind}-only article was fetched"
    assert stored, "nothing stored"


def _path_fetched(paths, path):
    return any(p.split("?")[0] == path for p in paths)


def test_robots_disallowed_never_fetched(crawled):
    for path in crawled["manifest"]["robots_disallowed"]:
        assert not _path_fetched(crawled["first_paths"], path)
        assert path not in _articles(crawled)


def test_each_article_fetched_once_and_url_canonical(crawled):
    article_paths = [p.split("?")[0] for p in crawled["first_paths"] if p.startswith(("/news/", "/private/"))]
    assert len(article_paths) == len(set(article_paths)), "an article was fetched twice in one crawl"
    for url, row in ((r["url"], r) for r in crawled["db"]["articles"].rows):
        assert "utm_" not in url and "ref=" not in url and "#" not in url
        assert row["fetched_url"]


def test_featured_cards_never_reach_text_and_paragraphs_do(crawled):
    articles = _articles(crawled)
    cards = crawled["manifest"]["featured_cards"]
    checked = 0
    for article in crawled["manifest"]["articles"]:
        row = articles.get(article["path"])
        if row is None:
            continue
        text = _collapse(row["text"])
        for card in cards:
            assert card["description"] not in text, f"card {card['name']!r} leaked into {article['path']}"
        for paragraph in article["paragraphs"]:
            assert _collapse(paragraph) in text, f"paragraph missing from {article['path']}: {paragraph[:60]}"
        checked += 1
    assert checked >= 5


def test_metadata_and_dates(crawled):
    articles = _articles(crawled)
    for article in crawled["manifest"]["articles"]:
        row = articles.get(article["path"])
        if row is None:
            continue
        assert row["title"] == article["title"]
        assert row["published"][:10] == article["published"], article["path"]
        assert row["published_source"] in ("jsonld", "meta", "page", "feed", "sitemap", "url")
        assert len(row["content_hash"]) == 40
        assert row["language"] in ("en", None)
    raw = crawled["db"].execute("select count(*) from raw_html").fetchone()[0]
    assert raw == len(articles)


def test_matched_terms_stored(crawled):
    for row in crawled["db"]["article_topics"].rows:
        matched = json.loads(row["matched"])
        assert matched, row
        if row["topic"] == "city-budget":
            assert set(matched) == {"city council", "budget"}


def test_fts_in_sync(crawled):
    db = crawled["db"]
    hits = db.execute(
        "select articles.url from articles join articles_fts on articles.rowid = articles_fts.rowid "
        "where articles_fts match 'council'"
    ).fetchall()
    assert any("council-approves-budget" in url for (url,) in hits)


def test_second_run_fetches_no_article_twice_and_uses_conditional_get(crawled):
    records = crawled["second_records"]
    assert not [r for r in records if r.path.startswith("/news/")], "second run fetched articles again"
    feeds = [r for r in records if r.path.startswith(("/feeds/", "/sitemaps/", "/sitemap_index"))]
    assert feeds and all(r.status == 304 for r in feeds), [(r.path, r.status) for r in feeds]


def test_summary_counts_recorded_and_logged(crawled):
    db = crawled["db"]
    runs = list(db["crawl_runs"].rows_where(order_by="id"))
    assert [r["status"] for r in runs] == ["finished", "finished"]
    first, second = runs
    stored_count = db.execute("select count(*) from articles").fetchone()[0]
    assert first["stored"] == stored_count
    assert first["irrelevant"] >= 3 and first["errors"] == 0
    assert first["discovered"] == first["fetched"] + first["skipped_seen"] + first["errors"] + first["robots_blocked"]
    assert first["robots_blocked"] == len(crawled["manifest"]["robots_disallowed"])
    assert first["fetched"] == first["stored"] + first["irrelevant"] + first["not_article"]
    assert second["stored"] == 0 and second["fetched"] == 0 and second["not_modified"] >= 4
    per_topic = {r["topic"]: r for r in db["crawl_run_topics"].rows_where("run_id = ?", [first["id"]])}
    assert set(per_topic) == {"ai-model-theft", "city-budget"}
    stored_by_topic = dict(db.execute("select topic, count(*) from article_topics group by topic").fetchall())
    for topic, row in per_topic.items():
        assert row["stored"] == stored_by_topic[topic]
    log = crawled["first"].stderr
    assert "News crawl summary" in log and "ai-model-theft" in log and str(crawled["db"].conn.execute("pragma database_list").fetchone()[2]) in log


def test_feed_export_still_works(crawled):
    lines = crawled["items"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == crawled["db"].execute("select count(*) from articles").fetchone()[0]
    item = json.loads(lines[0])
    assert item["url"] and item["text"] and "html" not in (item.get("html") or "")


def test_recency_filter(tmp_path, manifest):
    from demo.server import FixtureServer

    old = [a for a in manifest["articles"] if a["expected"].get("ai-model-theft") == "stored_if_no_age_limit"]
    assert old
    # an age limit that keeps the fixture's 2026 articles and drops its 2019 one, whatever today is
    max_age = (date.today() - date(2025, 1, 1)).days
    ai_topic = "[[topic]]" + TEMPLATE.split("[[topic]]")[1]
    text = ai_topic.replace("max_age_days = 0", f"max_age_days = {max_age}")
    assert f"max_age_days = {max_age}" in text
    with FixtureServer(root=DEMO_SITE) as server:
        topics = write_topics(tmp_path / "topics.toml", text, server.base)
        result = run_crawl(topics, tmp_path / "news.db", "-a", "topic=ai-model-theft")
        paths = server.paths()
    assert result.returncode == 0
    for article in old:
        assert not _path_fetched(paths, article["path"])
    db = open_store(tmp_path / "news.db")
    run = next(db["crawl_runs"].rows)
    assert run["skipped_old"] >= 1
    assert json.loads(run["topics"]) == ["ai-model-theft"]


def test_bad_topics_file_fails_with_clear_message(tmp_path):
    topics = tmp_path / "topics.toml"
    topics.write_text('[[topic]]\nname = "x"\nquery = "Anthropic AND (Claude"\nfeeds = ["http://127.0.0.1:9/f"]\n')
    result = run_crawl(topics, tmp_path / "news.db")
    assert "topic #1 ('x'), field 'query': unclosed '('" in result.stderr
    assert "Traceback" not in result.stderr
    run = next(open_store(tmp_path / "news.db")["crawl_runs"].rows)
    assert run["status"] == "failed" and run["finish_reason"] == "config_error"


def test_a_topic_added_later_gets_stored_articles_without_refetching(tmp_path):
    """Topic B, added after topic A stored an article, is tagged from the stored text."""
    from demo.server import FixtureServer

    first = '[[topic]]\nname = "a"\nquery = "Anthropic"\nfeeds = ["{{BASE}}/feeds/atom.xml"]\nmax_age_days = 0\n'
    second = first + '[[topic]]\nname = "b"\nquery = "Claude AND Alibaba"\nfeeds = ["{{BASE}}/feeds/atom.xml"]\nmax_age_days = 0\n'
    with FixtureServer(root=DEMO_SITE) as server:
        assert run_crawl(write_topics(tmp_path / "t1.toml", first, server.base), tmp_path / "news.db").returncode == 0
        stored = {r["url"] for r in open_store(tmp_path / "news.db")["articles"].rows}
        server.pages.clear()
        # no conditional GET: the new topic's run must see the feed again
        open_store(tmp_path / "news.db").execute("delete from source_state")
        open_store(tmp_path / "news.db").conn.commit()
        server.clear()
        result = run_crawl(write_topics(tmp_path / "t2.toml", second, server.base), tmp_path / "news.db")
        refetched = [p for p in server.paths() if p.startswith("/news/")]
    assert result.returncode == 0 and stored
    assert refetched == []
    db = open_store(tmp_path / "news.db")
    b_urls = {r["url"] for r in db["article_topics"].rows_where("topic = 'b'")}
    assert b_urls and b_urls <= stored
    for url in b_urls:
        text = db.execute("select title || ' ' || text from articles where url = ?", [url]).fetchone()[0]
        assert "Claude" in text and "Alibaba" in text


def test_a_changed_query_judges_irrelevant_pages_again(tmp_path):
    """Pages an earlier crawl found irrelevant are not fetched again while the topic's query
    stays the same (spacing and letter case aside); once the query changes they are fetched
    and judged by the new one."""
    from demo.server import FixtureServer

    def topics(query: str) -> str:
        return f'[[topic]]\nname = "a"\nquery = \'{query}\'\nfeeds = ["{{{{BASE}}}}/feeds/atom.xml"]\nmax_age_days = 0\n'

    def crawl(query: str, name: str) -> list[str]:
        db = open_store(tmp_path / "news.db")
        db.execute("delete from source_state")  # no conditional GET: every run reads the feed
        db.conn.commit()
        server.clear()
        result = run_crawl(write_topics(tmp_path / name, topics(query), server.base), tmp_path / "news.db")
        assert result.returncode == 0, result.stderr[-3000:]
        return sorted(p for p in server.paths() if p.startswith("/news/"))

    with FixtureServer(root=DEMO_SITE) as server:
        assert run_crawl(write_topics(tmp_path / "t0.toml", topics("Bananas"), server.base), tmp_path / "news.db").returncode == 0
        db = open_store(tmp_path / "news.db")
        judged = sorted(urlsplit(r["url"]).path for r in db["url_outcomes"].rows_where("topic = 'a'"))
        assert judged and db["articles"].count == 0
        assert crawl("  bananas ", "t1.toml") == []  # the same query: nothing fetched again
        fetched = crawl("spokesperson", "t2.toml")  # in the distillation report only
    assert fetched == judged == ["/news/2026/11/anthropic-alibaba-distillation.html", "/news/2026/11/claude-scraping-opinion.html"]
    db = open_store(tmp_path / "news.db")
    assert [urlsplit(r["url"]).path for r in db["articles"].rows] == [judged[0]]
    assert [json.loads(r["matched"]) for r in db["article_topics"].rows] == [["spokesperson"]]
    # the stored page's old verdict is gone; the other page carries the new query's verdict
    still = [(urlsplit(r["url"]).path, r["run_id"]) for r in db["url_outcomes"].rows_where("topic = 'a'")]
    assert still == [(judged[1], 3)]


def test_an_irrelevant_verdict_stands_for_its_own_query_only(tmp_path):
    """The seen-check's reading of url_outcomes: a verdict recorded under another query is
    void; one recorded before queries were fingerprinted (NULL) stands."""
    from crawler.middlewares import _StoreReader
    from pipelines.db import open_db

    db = open_db(tmp_path / "news.db")  # the crawler's schema
    rows = [("http://x/old", "a", None), ("http://x/same", "a", "f1"), ("http://x/other", "a", "f0"),
            ("http://x/both", "a", "f1"), ("http://x/both", "b", "f0")]
    db["url_outcomes"].insert_all({"url": u, "topic": t, "outcome": "irrelevant", "reason": "r", "query_fingerprint": f} for u, t, f in rows)
    reader = _StoreReader(str(tmp_path / "news.db"), {"a": "f1", "b": "f2"})
    assert reader.known("http://x/old", ("a",)) and reader.known("http://x/same", ("a",))
    assert reader.known("http://x/other", ("a",)) is None
    assert reader.known("http://x/both", ("a",)) and reader.known("http://x/both", ("a", "b")) is None


def test_sources_listing_an_article_after_it_was_fetched_are_recorded(tmp_path):
    """Feeds that arrive after their article was fetched in the same crawl (still in
    extraction, or already stored) are recorded in article_sources; a topic whose feed
    lists it late is tagged when its query matches, without a second fetch. A late listing
    of an article dropped as irrelevant records nothing."""
    import time

    from demo.server import FixtureServer, Response

    article = "/news/2026/11/anthropic-alibaba-distillation.html"
    irrelevant = "/news/2026/11/openai-device-launch.html"  # in rss.xml; no "Anthropic"
    late = []  # the late feeds that answered after the article was fetched

    def written() -> bool:
        """The store has written both pages: the article, and the irrelevant page's outcome."""
        try:
            with sqlite3.connect(f"file:{tmp_path / 'news.db'}?mode=ro", uri=True) as conn:
                stored = conn.execute("select 1 from articles where url like ?", ["%" + article]).fetchone()
                judged = conn.execute("select 1 from url_outcomes where url like ?", ["%" + irrelevant]).fetchone()
                return bool(stored and judged)
        except sqlite3.Error:  # not created yet
            return False

    def late_feed(ready):
        def route(handler):
            deadline = time.monotonic() + 30
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            if ready():
                late.append(handler.path)
            body = (
                '<?xml version="1.0"?><rss version="2.0"><channel><title>Late</title>'
                f"<item><title>Distillation</title><link>{server.base}{article}?utm_source=late</link></item>"
                f"<item><title>Device</title><link>{server.base}{irrelevant}</link></item>"
                "</channel></rss>"
            )
            return Response(200, body.encode(), {"Content-Type": "application/rss+xml"})

        return route

    def requested() -> bool:  # both pages asked for: most likely still on their way to the store
        return {article, irrelevant} <= set(server.paths())

    topics = (
        '[[topic]]\nname = "a"\nquery = "Anthropic"\nmax_age_days = 0\n'
        'feeds = ["{{BASE}}/feeds/atom.xml", "{{BASE}}/feeds/rss.xml", "{{BASE}}/late/soon.xml", "{{BASE}}/late/stored.xml"]\n'
        '[[topic]]\nname = "b"\nquery = "Claude AND Alibaba"\nmax_age_days = 0\nfeeds = ["{{BASE}}/late/b.xml"]\n'
        '[[topic]]\nname = "c"\nquery = "Bananas"\nmax_age_days = 0\nfeeds = ["{{BASE}}/late/c.xml"]\n'
    )
    routes = {"/late/soon.xml": late_feed(requested), "/late/stored.xml": late_feed(written),
              "/late/b.xml": late_feed(written), "/late/c.xml": late_feed(written)}
    with FixtureServer(root=DEMO_SITE, routes=routes) as server:
        result = run_crawl(write_topics(tmp_path / "t.toml", topics, server.base), tmp_path / "news.db",
                           "-s", "NEWS_STORE_FLUSH_SECONDS=0.5", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16")
        fetches = [server.paths().count(path) for path in (article, irrelevant)]
    assert result.returncode == 0, result.stderr[-3000:]
    assert fetches == [1, 1] and sorted(late) == sorted(routes)
    db = open_store(tmp_path / "news.db")
    [url] = [r["url"] for r in db["articles"].rows if r["url"].endswith(article)]
    sources = {(r["topic"], urlsplit(r["source"]).path) for r in db["article_sources"].rows_where("url = ?", [url])}
    assert sources == {("a", "/feeds/atom.xml"), ("a", "/feeds/rss.xml"), ("a", "/late/soon.xml"), ("a", "/late/stored.xml"), ("b", "/late/b.xml")}
    assert not [r for r in db["article_sources"].rows if r["url"].endswith(irrelevant)]
    assert {r["topic"] for r in db["url_outcomes"].rows if r["url"].endswith(irrelevant)} == {"a"}
    tagged = {r["topic"]: json.loads(r["matched"]) for r in db["article_topics"].rows_where("url = ?", [url])}
    assert set(tagged) == {"a", "b"} and set(tagged["b"]) == {"claude", "alibaba"}
    run = db["crawl_runs"].get(1)
    per_topic = {r["topic"]: r for r in db["crawl_run_topics"].rows_where("run_id = ?", [run["id"]])}
    assert per_topic["b"]["stored"] == 1 and per_topic["c"]["stored"] == 0
    # b and c found the article after it was fetched: discovered and skipped as seen, not fetched
    for topic in ("b", "c"):
        row = per_topic[topic]
        assert row["discovered"] == 2 and row["skipped_seen"] == 2 and row["fetched"] == 0, row


def test_progress_lines_while_crawling(tmp_path):
    """Every LOGSTATS_INTERVAL seconds one progress line (Scrapy's pages/min and the crawl's
    own counters) instead of Scrapy's own LogStats line."""
    import time

    from demo.server import FixtureServer, Response

    def slow(path):  # articles that take a while, so the crawl lasts several intervals
        def route(handler):
            time.sleep(0.5)
            body = (DEMO_SITE / path.lstrip("/")).read_bytes().replace(b"{{BASE}}", server.base.encode())
            return Response(200, body, {"Content-Type": "text/html; charset=utf-8"})
        return route

    articles = ["/news/2026/11/anthropic-alibaba-distillation.html", "/news/2026/11/claude-scraping-opinion.html",
                "/news/2026/11/openai-device-launch.html", "/news/2019/03/old-chip-export-story.html"]
    topics = '[[topic]]\nname = "a"\nquery = "Anthropic"\nmax_age_days = 0\nfeeds = ["{{BASE}}/feeds/atom.xml", "{{BASE}}/feeds/rss.xml"]\n'
    with FixtureServer(root=DEMO_SITE, routes={path: slow(path) for path in articles}) as server:
        result = run_crawl(write_topics(tmp_path / "t.toml", topics, server.base), tmp_path / "news.db",
                           "-s", "LOGSTATS_INTERVAL=0.2", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1")
    assert result.returncode == 0, result.stderr[-3000:]
    line = re.compile(
        r"Crawled (\d+) pages \(at \d+ pages/min\), stored (\d+) articles \(at \d+/min\); (\d+) candidates: "
        r"(\d+) to fetch, (\d+) skipped as seen, (\d+) not articles, (\d+) irrelevant, (\d+) errors"
    )
    progress = [tuple(map(int, m.groups())) for m in line.finditer(result.stderr)]
    assert len(progress) >= 2, result.stderr[-3000:]
    assert "scraped" not in result.stderr.split("Spider opened")[-1].split("Dumping Scrapy stats")[0]  # Scrapy's LogStats is off
    run = next(open_store(tmp_path / "news.db")["crawl_runs"].rows)
    for pages, stored, candidates, to_fetch, seen, not_article, irrelevant, errors in progress:
        assert stored <= run["stored"] and candidates <= run["discovered"] and to_fetch <= candidates
    assert [p[1] for p in progress] == sorted(p[1] for p in progress)  # stored only grows
    assert max(p[0] for p in progress) > 0
