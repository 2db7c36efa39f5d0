"""Grouping across crawls, end to end: a copy published later by another outlet joins the earlier group."""

from __future__ import annotations

from demo.server import FixtureServer
from tests.conftest import DEMO_SITE, open_store, run_crawl

ORIGINAL = "/news/2026/11/anthropic-alibaba-distillation.html"
WIRE = "/news/2026/11/wire-anthropic-alibaba.html"
OTHER = "/news/2026/11/council-approves-budget.html"


def _feed(base: str, paths: list[str]) -> bytes:
    items = "".join(f"<item><title>x</title><link>{base}{p}</link></item>" for p in paths)
    return f"<rss version='2.0'><channel><title>f</title>{items}</channel></rss>".encode()


def test_copy_in_a_later_crawl_joins_the_earlier_cluster_and_story(tmp_path):
    with FixtureServer(root=DEMO_SITE) as outlet_a, FixtureServer(root=DEMO_SITE) as outlet_b:
        outlet_a.pages["/first.xml"] = _feed(outlet_a.base, [ORIGINAL, OTHER])
        outlet_b.pages["/later.xml"] = _feed(outlet_b.base, [WIRE])  # the wire copy, on another site
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{outlet_a.base}/first.xml"]\n')
        assert run_crawl(topics, tmp_path / "news.db").returncode == 0
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{outlet_a.base}/first.xml", "{outlet_b.base}/later.xml"]\n')
        second = run_crawl(topics, tmp_path / "news.db", "-s", "NEWS_ALLOW_PRIVATE_NETWORKS=True")
    assert second.returncode == 0, second.stderr[-2000:]
    db = open_store(tmp_path / "news.db")
    rows = {r["url"]: r for r in db["articles"].rows}
    original = rows[outlet_a.base + ORIGINAL]
    copy = rows[outlet_b.base + WIRE]
    other = rows[outlet_a.base + OTHER]
    assert original["run_id"] != copy["run_id"]  # stored by two different crawls
    assert copy["cluster_id"] == original["cluster_id"] and copy["story_id"] == original["story_id"]
    assert other["cluster_id"] != original["cluster_id"] and other["story_id"] != original["story_id"]
    cluster = db["clusters"].get(original["cluster_id"])
    assert cluster["size"] == 2 and cluster["distinct_sites"] == 2
    assert cluster["representative_url"] == original["url"]
    story = db["stories"].get(original["story_id"])
    assert story["article_count"] == 2
