import gzip
import json
from datetime import datetime, timezone

from crawler.discovery import looks_like_article_url, parse_feed, parse_sitemap, sitemaps_from_robots

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title>
<item><title>First</title><link>https://ex.com/news/first-story-here.html?utm_source=rss</link>
<pubDate>Fri, 20 Nov 2026 09:30:00 GMT</pubDate></item>
<item><title>Relative</title><link>/news/relative-story-link</link></item>
<item><title>Dup</title><link>https://ex.com/news/first-story-here.html?utm_source=rss</link></item>
<item><title>Bad scheme</title><link>javascript:alert(1)</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<entry><title>Atom one</title><link rel="alternate" href="https://ex.com/a/atom-one-story"/>
<updated>2026-11-19T08:00:00+01:00</updated><id>urn:1</id></entry></feed>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="https://ex.com/"><title>T</title><link>https://ex.com/</link></channel>
<item rdf:about="https://ex.com/rdf-item"><title>RDF item</title><link>https://ex.com/rdf-item-story</link></item>
</rdf:RDF>"""


def test_rss_entries_absolute_deduplicated_with_dates():
    entries = parse_feed(RSS, "https://ex.com/feed.xml")
    assert [e.url for e in entries] == [
        "https://ex.com/news/first-story-here.html?utm_source=rss",
        "https://ex.com/news/relative-story-link",
    ]
    assert entries[0].title == "First"
    assert entries[0].published == datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)
    assert entries[1].published is None


def test_atom_and_rss1():
    (atom,) = parse_feed(ATOM, "https://ex.com/atom.xml")
    assert atom.url == "https://ex.com/a/atom-one-story"
    assert atom.published == datetime(2026, 11, 19, 7, 0, tzinfo=timezone.utc)
    (rdf,) = parse_feed(RDF, "https://ex.com/rdf")
    assert rdf.url == "https://ex.com/rdf-item-story"


def test_json_feed():
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "T",
        "items": [
            {"id": "1", "url": "https://ex.com/j/one-json-story", "title": "J1", "date_published": "2026-11-18T10:00:00Z"},
            {"id": "https://ex.com/j/id-as-url-story"},
            {"id": "3"},
            "junk",
        ],
    }
    entries = parse_feed(json.dumps(doc).encode(), "https://ex.com/feed.json")
    assert [e.url for e in entries] == ["https://ex.com/j/one-json-story", "https://ex.com/j/id-as-url-story"]
    assert entries[0].published == datetime(2026, 11, 18, 10, tzinfo=timezone.utc)
    assert parse_feed(b"{not json", "https://ex.com/f") == []


SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>https://ex.com/one</loc><lastmod>2026-11-20</lastmod></url>
<url><loc>https://ex.com/two</loc></url>
<url><loc>ftp://ex.com/three</loc></url>
</urlset>"""

NEWS_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://ex.com/news/n1</loc><news:news><news:publication><news:name>Ex</news:name><news:language>en</news:language></news:publication>
<news:publication_date>2026-11-21T12:00:00Z</news:publication_date><news:title>News one</news:title></news:news></url>
</urlset>"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>https://ex.com/s1.xml.gz</loc></sitemap><sitemap><loc>https://ex.com/news.xml</loc></sitemap>
</sitemapindex>"""


def test_sitemap_urlset_gzip_and_index():
    doc = parse_sitemap(gzip.compress(SITEMAP), "https://ex.com/s1.xml.gz")
    assert doc.kind == "urlset"
    assert [e.url for e in doc.entries] == ["https://ex.com/one", "https://ex.com/two"]
    assert doc.entries[0].published == datetime(2026, 11, 20, tzinfo=timezone.utc)
    index = parse_sitemap(INDEX, "https://ex.com/sitemap.xml")
    assert index.kind == "sitemapindex"
    assert [e.url for e in index.entries] == ["https://ex.com/s1.xml.gz", "https://ex.com/news.xml"]


def test_news_sitemap_title_and_publication_date():
    (entry,) = parse_sitemap(NEWS_SITEMAP, "https://ex.com/news.xml").entries
    assert entry.title == "News one"
    assert entry.published == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)


def test_sitemap_cap_and_garbage():
    many = b"<urlset>" + b"".join(b"<url><loc>https://ex.com/%d</loc></url>" % i for i in range(30)) + b"</urlset>"
    doc = parse_sitemap(many, "https://ex.com/s.xml", max_urls=10)
    assert len(doc.entries) == 10 and doc.truncated
    assert parse_sitemap(b"\x1f\x8bnot really gzip", "https://ex.com/s.xml.gz").kind == "unknown"
    assert parse_sitemap(b"<html><body>hi</body></html>", "https://ex.com/s.xml").kind == "unknown"


def test_sitemap_does_not_expand_entities():
    bomb = b"""<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
    <!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>https://ex.com/&b;&x;</loc></url></urlset>"""
    doc = parse_sitemap(bomb, "https://ex.com/s.xml")
    assert all("aaaaaaaaaa" not in e.url and "root:" not in e.url for e in doc.entries)


def test_robots_sitemap_lines():
    robots = b"User-agent: *\nDisallow: /private/\nSitemap: https://ex.com/sitemap_index.xml\nsitemap: /news.xml\n"
    assert sitemaps_from_robots(robots, "https://ex.com/robots.txt") == [
        "https://ex.com/sitemap_index.xml",
        "https://ex.com/news.xml",
    ]


def test_article_link_heuristic():
    src = "https://ex.com/local/"
    assert looks_like_article_url("https://ex.com/news/2026/11/council-approves-budget.html", src)
    assert looks_like_article_url("https://www.ex.com/2026/11/20/a-long-story-slug/", src)
    for url in [
        "https://ex.com/about/",
        "https://ex.com/tag/budget/",
        "https://ex.com/local/page/2/",
        "https://ex.com/local/",
        "https://other.org/news/some-long-story-slug",
        "https://ex.com/images/photo-of-a-thing.jpg",
        "https://ex.com/login",
    ]:
        assert not looks_like_article_url(url, src), url


def test_bad_urls_are_skipped_not_raised():
    bad = b"<urlset><url><loc>a://[</loc></url><url><loc>http://[::1</loc></url><url><loc>https://ex.com/ok</loc></url></urlset>"
    assert [e.url for e in parse_sitemap(bad, "https://ex.com/s.xml").entries] == ["https://ex.com/ok"]
    rss = b"<rss version='2.0'><channel><item><link>http://[broken</link></item><item><link>https://ex.com/fine-story-here</link></item></channel></rss>"
    assert [e.url for e in parse_feed(rss, "https://ex.com/f")] == ["https://ex.com/fine-story-here"]
    assert sitemaps_from_robots(b"Sitemap: http://[oops\nSitemap: /s.xml", "https://ex.com/robots.txt") == ["https://ex.com/s.xml"]


def test_a_cut_feed_keeps_its_complete_items_and_says_so():
    from crawler.discovery import read_feed

    head = b"<?xml version='1.0'?><rss version='2.0'><channel><item><link>http://a.example/x</link></item>"
    cut = read_feed(head + b"<item><link>http://a.example/c", "http://a.example/feed.xml")
    assert cut.cut and [c.url for c in cut.entries] == ["http://a.example/x"]
    # an undefined entity is a fault real feeds often have: read, and not reported as cut
    loose = read_feed(head.replace(b"<link>", b"<title>a&nbsp;b</title><link>") + b"</channel></rss>", "http://a.example/feed.xml")
    assert not loose.cut and [c.url for c in loose.entries] == ["http://a.example/x"]
    assert not read_feed(head + b"</channel></rss>", "http://a.example/feed.xml").cut


def test_a_sitemap_the_parser_gives_up_on_is_reported_broken():
    big = "x" * 50_000  # libxml2 stops at its entity amplification limit, silently
    body = (f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY big "{big}">]><urlset>'
            + "".join(f"<url><loc>http://a.example/{i}</loc><n>&big;</n></url>" for i in range(300)) + "</urlset>").encode()
    doc = parse_sitemap(body, "http://a.example/sitemap.xml")
    assert doc.broken and not doc.cut and 0 < len(doc.entries) < 300
    whole = parse_sitemap(b"<urlset><url><loc>http://a.example/1</loc></url></urlset>", "http://a.example/sitemap.xml")
    assert whole.broken is None and len(whole.entries) == 1


def test_a_sitemap_with_unescaped_ampersands_keeps_every_entry():
    body = (b"<urlset><url><loc>http://a.example/a?x=1&y=2</loc></url><url><loc>http://a.example/b?p=1&amp;q=2</loc></url>"
            b"<url><loc>http://a.example/c</loc></url></urlset>")
    doc = parse_sitemap(body, "http://a.example/sitemap.xml")
    assert [c.url for c in doc.entries] == ["http://a.example/a?x=1&y=2", "http://a.example/b?p=1&q=2", "http://a.example/c"]
    assert not doc.cut and doc.broken is None
