"""Property-based tests: random and mutated HTML and XML never raise out of the parsing entry points."""

from __future__ import annotations

import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.discovery import parse_feed, parse_sitemap, sitemaps_from_robots
from crawler.search import SearchResponseError, parse_results
from crawler.urls import canonical_url, page_canonical
from pipelines.extract import ExtractOptions, NotAnArticle, extract

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<item><title>One</title><link>https://ex.com/a/one-story-here</link><pubDate>Fri, 20 Nov 2026 09:30:00 GMT</pubDate></item>
</channel></rss>"""
SITEMAP = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url><loc>https://ex.com/n1</loc>
<news:news><news:publication_date>2026-11-21T12:00:00Z</news:publication_date><news:title>N</news:title></news:news></url></urlset>"""
ARTICLE = ("<html><head><title>T</title><link rel='canonical' href='/c'></head><body><article><h1>Title</h1>"
           + "<p>" + "Words of a paragraph that is long enough to count as article text. " * 12 + "</p>" * 3
           + "</article></body></html>").encode()

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutate(base: bytes):
    """Random slices, insertions and byte flips of a valid document."""
    return st.tuples(st.integers(0, len(base)), st.integers(0, len(base)), st.binary(max_size=40)).map(
        lambda t: base[: min(t[0], t[1])] + t[2] + base[max(t[0], t[1]):]
    )


@SETTINGS
@given(st.one_of(st.binary(max_size=2000), mutate(RSS), mutate(json.dumps({"items": [{"url": "https://ex.com/x"}]}).encode())))
def test_parse_feed_never_raises(body):
    for candidate in parse_feed(body, "https://ex.com/feed"):
        assert candidate.url.startswith(("http://", "https://"))


@SETTINGS
@given(st.one_of(st.binary(max_size=2000), mutate(SITEMAP), mutate(gzip.compress(SITEMAP))))
def test_parse_sitemap_never_raises(body):
    doc = parse_sitemap(body, "https://ex.com/sitemap.xml", max_urls=100)
    assert doc.kind in ("urlset", "sitemapindex", "unknown")


@SETTINGS
@given(st.binary(max_size=1000))
def test_robots_and_canonical_never_raise(body):
    sitemaps_from_robots(body, "https://ex.com/robots.txt")
    page_canonical(body, "https://ex.com/page")


@SETTINGS
@given(st.text(max_size=200))
def test_canonical_url_never_raises_on_text(text):
    try:
        canonical_url("https://ex.com/" + text)
    except ValueError:
        pass  # urllib refuses some inputs (e.g. invalid IPv6 brackets): callers catch ValueError


@SETTINGS
@given(st.sampled_from(["google_news", "bing_news", "gdelt"]), st.one_of(st.binary(max_size=1500), mutate(RSS)))
def test_search_parsers_raise_only_their_error(service, body):
    try:
        parse_results(service, body, "https://svc.example/search")
    except SearchResponseError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=3000), mutate(ARTICLE)), st.sampled_from(["utf-8", "latin-1", "bogus-charset", None]))
def test_extract_only_says_not_an_article(body, encoding):
    try:
        result = extract(body, encoding, "https://ex.com/a/story", {}, ExtractOptions(min_text_chars=50))
    except NotAnArticle:
        return
    assert isinstance(result["text"], str) and result["text"]
