"""parse_sitemap on a document cut short: the complete entries are kept, the half one is not."""

from __future__ import annotations

import gzip

import pytest

from crawler.discovery import parse_sitemap

HEAD = b"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
ONE = b"<url><loc>https://ex.com/a/first-story.html</loc><lastmod>2026-11-20</lastmod></url>"
TWO = b"<url><loc>https://ex.com/a/second-story.html</loc></url>"


@pytest.mark.parametrize(
    "tail",
    [
        b"<url><loc>https://ex.com/a/cut-in-the-mid",  # inside a <loc>: the URL itself is cut
        b"<url><loc>https://ex.com/a/third-story.html</loc><lastmod>2026-1",  # inside a <url>
        b"<url><lo",  # inside a tag
        b"",  # after an entry, before </urlset>
    ],
)
def test_cut_sitemap_keeps_complete_entries(tail):
    for body in (HEAD + ONE + TWO + tail, gzip.compress(HEAD + ONE + TWO + tail)):
        doc = parse_sitemap(body, "https://ex.com/sitemap.xml")
        assert doc.kind == "urlset"
        assert [e.url for e in doc.entries] == ["https://ex.com/a/first-story.html", "https://ex.com/a/second-story.html"]
        assert doc.cut and not doc.truncated
        assert doc.entries[0].published is not None


def test_whole_sitemap_is_not_cut():
    doc = parse_sitemap(HEAD + ONE + TWO + b"</urlset>\n", "https://ex.com/sitemap.xml")
    assert len(doc.entries) == 2 and not doc.cut
    index = b"<sitemapindex><sitemap><loc>https://ex.com/s1.xml</loc></sitemap><sitemap><loc>https://ex.com/s2"
    doc = parse_sitemap(index, "https://ex.com/sitemap.xml")
    assert doc.kind == "sitemapindex" and [e.url for e in doc.entries] == ["https://ex.com/s1.xml"] and doc.cut


def test_cut_after_the_cap_is_still_capped():
    many = HEAD + b"".join(b"<url><loc>https://ex.com/a/story-%d.html</loc></url>" % i for i in range(30)) + b"<url><loc>https://ex"
    doc = parse_sitemap(many, "https://ex.com/sitemap.xml", max_urls=10)
    assert len(doc.entries) == 10 and doc.truncated
