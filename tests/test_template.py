"""Site-template removal: the creati.ai "Featured" card list never reaches article text."""

from __future__ import annotations

import re

import pytest

from demo.server import FixtureServer
from pipelines.template import SiteTemplates
from pipelines.textnorm import block_key
from tests.conftest import open_store, run_crawl
from tests.resources import featured_site


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def crawl_featured_site(tmp_path, *settings: str, jsonld: bool = False):
    """Serve the creati.ai-layout fixture site and crawl it; returns (result, laid-out articles).
    ``jsonld``: the pages declare a NewsArticle (extraction then takes trafilatura's fast mode)."""
    server = FixtureServer()
    with server:
        pages, articles = featured_site.build(server.base, jsonld=jsonld)
        server.pages.update(pages)
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "ai"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
        result = run_crawl(topics, tmp_path / "news.db", *settings)
    return result, articles


@pytest.mark.parametrize("jsonld", [False, True], ids=["no-json-ld", "json-ld-news-article"])
def test_featured_cards_removed_in_every_layout(tmp_path, jsonld):
    result, articles = crawl_featured_site(tmp_path, jsonld=jsonld)
    assert result.returncode == 0, result.stderr[-3000:]
    db = open_store(tmp_path / "news.db")
    texts = {row["url"].split("/news/")[1]: _collapse(row["text"]) for row in db["articles"].rows}
    assert len(texts) == len(articles) >= 5
    cards = featured_site._manifest()["featured_cards"]
    for article in articles:
        text = texts[article["path"].split("/news/")[1]]
        for card in cards:
            assert card["description"] not in text, (article["variant"], card["name"])
            assert card["name"] not in text.split(" Featured ")[-1], (article["variant"], card["name"])
        assert "Featured" not in text.split(". ")[-1]
        for paragraph in article["paragraphs"]:
            assert _collapse(paragraph) in text, (article["variant"], paragraph[:50])


def test_without_template_removal_some_layout_leaks(tmp_path):
    """The same crawl with template removal off leaks cards: the test above can fail."""
    crawl_featured_site(tmp_path, "-s", "NEWS_TEMPLATE_REMOVAL=False")
    text = " ".join(row["text"] for row in open_store(tmp_path / "news.db")["articles"].rows)
    cards = featured_site._manifest()["featured_cards"]
    assert any(card["description"] in _collapse(text) for card in cards)


def _keys(text):
    return [block_key(b) for b in text.split("\n")]


def test_site_templates_unit():
    t = SiteTemplates(min_pages=3)
    story = "A long paragraph of the article's own text. " * 10
    for i in range(3):
        t.observe("ex.com", _keys(f"Title {i}\n{story}{i}\nSubscribe to our newsletter\nQuillPilot\nWrites posts for you."))
    cleaned, removed = t.clean("ex.com", "Title 9\nOwn paragraph.\nSubscribe to our newsletter\nQuillPilot\nWrites posts for you.")
    assert removed == 3 and cleaned == "Title 9\nOwn paragraph."
    # other sites are untouched; a block sharing two title words is kept
    assert t.clean("other.org", "QuillPilot")[1] == 0
    t2 = SiteTemplates(min_pages=3)
    for i in range(3):
        t2.observe("ex.com", _keys("Background: Anthropic sued Alibaba over Claude in November."))
    kept, removed = t2.clean("ex.com", "Background: Anthropic sued Alibaba over Claude in November.", title="Anthropic v Alibaba: day two")
    assert removed == 0 and kept
    # a story republished on 3 pages of a big site is not its template: under 30% of its pages
    t4 = SiteTemplates(min_pages=3, min_share=0.3)
    for i in range(20):
        t4.observe("big.com", _keys(f"Own text of page {i}\nSite menu"))
    for i in range(3):
        t4.observe("big.com", _keys("Wire paragraph republished three times"))
    assert t4.clean("big.com", "Wire paragraph republished three times\nSite menu") == ("Wire paragraph republished three times", 1)
    # seen on two pages only: not template yet
    t3 = SiteTemplates(min_pages=3)
    for i in range(2):
        t3.observe("ex.com", _keys("Shared line"))
    assert t3.clean("ex.com", "Shared line")[1] == 0


def test_reextract_with_a_site_rule_cleans_stored_articles(tmp_path):
    """Crawl with template removal off (cards leak), then re-extract the stored raw HTML with a prune_xpath rule."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    _, articles = crawl_featured_site(tmp_path, "-s", "NEWS_TEMPLATE_REMOVAL=False")
    cards = featured_site._manifest()["featured_cards"]
    leaked = lambda: sum(card["description"] in _collapse(r["text"]) for r in open_store(tmp_path / "news.db")["articles"].rows for card in cards)  # noqa: E731
    assert leaked() > 0
    rule = 'NEWS_SITE_RULES={"127.0.0.1": {"prune_xpath": ["//*[contains(@class, \'tool-card\')]", "//h3[@class=\'featured-heading\']"]}}'
    result = subprocess.run([sys.executable, "-m", "pipelines.reextract", "--db", str(tmp_path / "news.db"), "--set", rule],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "changed" in result.stdout
    assert leaked() == 0
    texts = " ".join(_collapse(r["text"]) for r in open_store(tmp_path / "news.db")["articles"].rows)
    for article in articles:
        for paragraph in article["paragraphs"]:
            assert _collapse(paragraph) in texts


def test_single_page_blocks_are_pruned_so_memory_stays_flat():
    t = SiteTemplates(min_pages=3)
    for i in range(SiteTemplates.PRUNE_EVERY * 2):
        t.observe("ex.com", [block_key(f"unique line {i}"), block_key("Site menu")])
    assert len(t._counts["ex.com"]) == 2  # the page counter and the shared block only
    assert t.clean("ex.com", "Site menu\nOwn text") == ("Own text", 1)
