"""pipelines/dates.py: the publication date of a page, and where it came from."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from lxml import html as lxml_html

from pipelines.dates import parse_date_value, resolve_published, url_date

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
URL = "https://news.example.com/politics/council-approves-budget"


def page(head: str = "", body: str = "<p>Text of the story.</p>") -> str:
    return f"<html><head><title>Council approves budget</title>{head}</head><body><article><h1>Council approves budget</h1>{body}</article></body></html>"


def ld(obj) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def resolve(html, url=URL, trafilatura_date=None, hints=None):
    return resolve_published(html, url, trafilatura_date, hints, now=NOW)


# --- JSON-LD ---------------------------------------------------------------------------------------
def test_jsonld_news_article_keeps_the_written_time_and_offset():
    html = page(ld({"@context": "https://schema.org", "@type": "NewsArticle", "headline": "x", "datePublished": "2026-11-20T09:30:00+01:00"}))
    assert resolve(html) == ("2026-11-20T09:30:00+01:00", "jsonld")


def test_jsonld_graph_prefers_the_article_over_the_webpage():
    graph = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "datePublished": "2026-01-02T00:00:00Z"},
            {"@type": "BlogPosting", "datePublished": "2026-11-19T17:00:00Z", "dateModified": "2026-11-21T08:00:00Z"},
        ],
    }
    assert resolve(page(ld(graph))) == ("2026-11-19T17:00:00+00:00", "jsonld")


def test_jsonld_webpage_date_is_used_when_no_article_has_one():
    assert resolve(page(ld({"@type": "WebPage", "datePublished": "2026-11-18"}))) == ("2026-11-18", "jsonld")


def test_jsonld_type_list_and_broken_json():
    raw = '<script type="application/ld+json">{"@type": ["NewsArticle"], "datePublished": "2026-11-17T10:00:00Z",}</script>'
    assert resolve(page(raw)) == ("2026-11-17T10:00:00+00:00", "jsonld")


def test_jsonld_of_other_things_is_ignored():
    html = page(ld({"@type": "Event", "startDate": "2026-12-24", "datePublished": "2026-10-01"}), body="<p>x</p>")
    assert resolve(html) == (None, None)


# --- meta tags -------------------------------------------------------------------------------------
def test_meta_article_published_time():
    html = page('<meta property="article:published_time" content="2026-11-20T07:15:00-05:00">')
    assert resolve(html) == ("2026-11-20T07:15:00-05:00", "meta")


def test_meta_priority_specific_before_generic():
    html = page('<meta name="date" content="2026-01-01"><meta property="og:published_time" content="2026-11-21T06:00:00Z">')
    assert resolve(html) == ("2026-11-21T06:00:00+00:00", "meta")


@pytest.mark.parametrize(
    "tag, expected",
    [
        ('<meta name="pubdate" content="20261120">', "2026-11-20"),
        ('<meta name="parsely-pub-date" content="2026-11-20T10:00:00Z">', "2026-11-20T10:00:00+00:00"),
        ('<meta name="sailthru.date" content="2026-11-20 10:00:00">', "2026-11-20T10:00:00"),
        ('<meta name="DC.date.issued" content="2026-11-20">', "2026-11-20"),
        ('<meta itemprop="datePublished" content="2026-11-20T10:00:00+02:00">', "2026-11-20T10:00:00+02:00"),
        ('<meta name="date" content="Fri, 20 Nov 2026 10:00:00 +0000">', "2026-11-20T10:00:00+00:00"),
    ],
)
def test_meta_variants(tag, expected):
    assert resolve(page(tag)) == (expected, "meta")


def test_parsely_page_json():
    content = json.dumps({"title": "x", "pub_date": "2026-11-20T10:00:00Z"}).replace('"', "&quot;")
    assert resolve(page(f'<meta name="parsely-page" content="{content}">')) == ("2026-11-20T10:00:00+00:00", "meta")


# --- the body --------------------------------------------------------------------------------------
def test_time_with_itemprop():
    body = '<p>By A. Writer, <time itemprop="datePublished" datetime="2026-11-20T08:00:00Z">20 Nov</time></p><p>Text.</p>'
    assert resolve(page(body=body)) == ("2026-11-20T08:00:00+00:00", "page")


def test_time_in_the_only_article_and_not_an_updated_one():
    body = '<time class="updated" datetime="2026-11-22">22 Nov</time><time datetime="2026-11-19">19 Nov</time><p>Text.</p>'
    assert resolve(page(body=body)) == ("2026-11-19", "page")


def test_time_marked_as_published():
    html = ('<html><body><div class="byline"><time class="published" datetime="2026-11-18T12:00:00Z">x</time></div>'
            "<p>Text</p></body></html>")
    assert resolve(html) == ("2026-11-18T12:00:00+00:00", "page")


# --- fallbacks -------------------------------------------------------------------------------------
def test_trafilatura_date_when_the_page_has_no_structured_date():
    assert resolve(page(), trafilatura_date="2026-11-15") == ("2026-11-15", "page")


@pytest.mark.parametrize("source", ["feed", "sitemap"])
def test_feed_or_sitemap_hint(source):
    hints = {"published": "2026-11-16T05:00:00+00:00", "published_source": source}
    assert resolve(page(), hints=hints) == ("2026-11-16T05:00:00+00:00", source)


def test_structured_page_date_beats_the_feed():
    hints = {"published": "2026-11-16T05:00:00+00:00", "published_source": "feed"}
    html = page('<meta property="article:published_time" content="2026-11-15T22:00:00-08:00">')
    assert resolve(html, hints=hints) == ("2026-11-15T22:00:00-08:00", "meta")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://example.com/2026/11/20/council-approves-budget/", "2026-11-20"),
        ("https://example.com/news/2026-11-20-council-approves-budget", "2026-11-20"),
        ("https://example.com/world/council-20261120-p5abc.html", "2026-11-20"),
        ("https://example.com/cnt/dmf20261120_96887132", "2026-11-20"),
    ],
)
def test_date_in_the_url(url, expected):
    assert resolve(page(), url=url) == (expected, "url")


def test_no_date_anywhere():
    assert resolve(page()) == (None, None)


# --- sanity ------------------------------------------------------------------------------------------
def test_dates_before_1995_are_skipped():
    html = page('<meta property="article:published_time" content="1970-01-01T00:00:00Z">')
    assert resolve(html, trafilatura_date="2026-11-10") == ("2026-11-10", "page")


def test_dates_more_than_two_days_ahead_are_skipped():
    html = page(ld({"@type": "NewsArticle", "datePublished": "2026-12-25T00:00:00Z"}))
    assert resolve(html) == (None, None)
    soon = page(ld({"@type": "NewsArticle", "datePublished": "2026-11-24T20:00:00Z"}))
    assert resolve(soon) == ("2026-11-24T20:00:00+00:00", "jsonld")


def test_a_heuristic_date_equal_to_the_crawl_day_loses_to_an_earlier_feed_date():
    hints = {"published": "2026-11-01T09:00:00+00:00", "published_source": "feed"}
    assert resolve(page(), trafilatura_date="2026-11-23", hints=hints) == ("2026-11-01T09:00:00+00:00", "feed")
    # without other evidence a page dated today is taken at its word
    assert resolve(page(), trafilatura_date="2026-11-23") == ("2026-11-23", "page")


def test_accepts_a_tree_a_string_or_bytes_and_does_not_modify_the_tree():
    html = page('<meta property="article:published_time" content="2026-11-20">')
    tree = lxml_html.fromstring(html)
    before = lxml_html.tostring(tree)
    assert resolve(tree) == resolve(html) == resolve(html.encode()) == ("2026-11-20", "meta")
    assert lxml_html.tostring(tree) == before
    assert resolve("") == (None, None)
    assert resolve(None) == (None, None)


def test_parse_date_value():
    assert parse_date_value("2026-11-20T00:00:00", NOW) == "2026-11-20"  # midnight without zone: a date
    assert parse_date_value("2026-11-20T10:11:12.345Z", NOW) == "2026-11-20T10:11:12+00:00"
    assert parse_date_value("2026-02-30", NOW) is None
    assert parse_date_value("yesterday", NOW) is None
    assert parse_date_value(1_795_000_000, NOW) == "2026-11-18T11:06:40+00:00"  # epoch seconds


def test_url_date_ignores_the_host_and_impossible_days():
    assert url_date("https://2026-11-20.example.com/story", NOW) is None
    assert url_date("https://example.com/2026/13/40/story", NOW) is None
    assert url_date("https://example.com/2026/11/story", NOW) is None  # a month is not a day
