"""A hostile web in one crawl: every kind of broken response is recorded by kind, good articles are stored."""

from __future__ import annotations

import gzip
import json
import socket

from demo.server import FixtureServer, Response
from tests.conftest import open_store, run_crawl

PARAS = [
    "The harbour authority said on Tuesday that dredging of the northern channel would begin in March, "
    "after two years of delays caused by disputes over where the removed silt could be stored safely.",
    "Fishing crews have complained that the shallow water forces larger boats to wait for high tide, "
    "costing them hours each week, and local businesses say the delays have reduced deliveries.",
    "Engineers expect the work to take eleven weeks and to deepen the channel by almost two metres, "
    "enough for the ferries that currently divert to the southern port during the winter months.",
]


def article(title: str, extra: str = "") -> bytes:
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            + "".join(f"<p>{p}</p>" for p in PARAS) + extra + "</article></body></html>").encode()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EXPECTED_KINDS = {
    "/a/gone-missing-page.html": "http_404",
    "/a/gone-for-good-page.html": "http_410",
    "/a/server-error-page.html": "http_500",
    "/a/too-many-requests.html": "http_429",
    "/a/slow-drip-page.html": "timeout",
    "/a/redirect-loop-page.html": "too_many_redirects",
    "/a/huge-page-here.html": "too_large",
    "/a/decompression-bomb.html": "too_large",
    "/a/annual-report-2026.html": "not_html",
    "/a/empty-body-page.html": "empty_body",
    "/a/connection-reset-page.html": "connection_lost",
    "/feeds/not-a-feed.xml": "bad_feed",
    "/sitemap-not-a-sitemap.xml": "bad_sitemap",
}


def routes() -> dict:
    loop = lambda h: Response(302, b"", {"Location": "/a/redirect-loop-page.html"})  # noqa: E731
    bomb = gzip.compress(b"<html><body>" + b"A" * 30_000_000 + b"</body></html>")
    return {
        "/a/good-article-one.html": lambda h: Response(200, article("Harbour dredging to begin"), {"Content-Type": "text/html; charset=utf-8"}),
        # declared latin-1 but UTF-8 bytes, plus invalid UTF-8: decoded, not fatal
        "/a/wrong-charset-article.html": lambda h: Response(200, article("Café owners welcome channel work", "<p>\xff\xfe bad bytes \x80</p>").replace(b"\\xff", b"\xff"),
                                                            {"Content-Type": "text/html; charset=latin-1"}),
        # truncated, unclosed markup: still an article
        "/a/malformed-html-page.html": lambda h: Response(200, article("Ferries to return")[:-40] + b"<div><p><b>unclosed", {"Content-Type": "text/html"}),
        "/a/gone-missing-page.html": lambda h: Response(404, b"not here"),
        "/a/gone-for-good-page.html": lambda h: Response(410, b"gone"),
        "/a/server-error-page.html": lambda h: Response(500, b"boom"),
        "/a/too-many-requests.html": lambda h: Response(429, b"slow down", {"Retry-After": "1"}),
        "/a/slow-drip-page.html": lambda h: Response(200, article("Slow") * 3, {"Content-Type": "text/html"}, drip=0.5),
        "/a/redirect-loop-page.html": loop,
        "/a/huge-page-here.html": lambda h: Response(200, b"<html>" + b"x" * 3_000_000 + b"</html>", {"Content-Type": "text/html"}),
        "/a/decompression-bomb.html": lambda h: Response(200, bomb, {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        "/a/annual-report-2026.html": lambda h: Response(200, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj", {"Content-Type": "application/pdf"}),
        "/a/empty-body-page.html": lambda h: Response(200, b"", {"Content-Type": "text/html"}),
        "/a/connection-reset-page.html": lambda h: Response(abort=True),
        "/feeds/not-a-feed.xml": lambda h: Response(200, b"<html><body>Subscribe!</body></html>", {"Content-Type": "text/html"}),
        "/sitemap-not-a-sitemap.xml": lambda h: Response(200, b"<html><body>no sitemap</body></html>", {"Content-Type": "text/html"}),
    }


def test_hostile_server_one_crawl(tmp_path):
    closed = _closed_port()
    server = FixtureServer(routes=routes())
    with server:
        b = server.base
        links = [p for p in EXPECTED_KINDS if p.startswith("/a/")] + [
            "/a/good-article-one.html", "/a/good-article-one.html",  # duplicate items in one feed
            "/a/wrong-charset-article.html", "/a/malformed-html-page.html",
        ]
        dates = ["Mon, 01 Jan 1900 00:00:00 GMT", "Fri, 01 Jan 2999 00:00:00 GMT", "not a date at all"]
        items = "".join(f"<item><title>t{i}</title><link>{b}{p}</link><pubDate>{dates[i % 3]}</pubDate></item>" for i, p in enumerate(links))
        server.pages["/feed.xml"] = f"<?xml version='1.0'?><rss version='2.0'><channel><title>h</title>{items}</channel></rss>".encode()
        # a truncated feed: the complete items before the cut are still read
        truncated = f"<?xml version='1.0'?><rss version='2.0'><channel><item><link>{b}/a/good-article-two.html</link></item><item><link>{b}/a/cut"
        server.routes["/a/good-article-two.html"] = lambda h: Response(200, article("Channel contract signed"), {"Content-Type": "text/html"})
        server.pages["/feeds/truncated.xml"] = truncated.encode()
        # XML entity expansion and an external entity in a sitemap; a huge sitemap, capped
        server.pages["/sitemap-xxe.xml"] = (
            b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>' + b.encode() + b"/a/xxe-&b;&x;</loc></url></urlset>"
        )
        huge = "".join(f"<url><loc>{b}/a/good-article-one.html?n={i}</loc></url>" for i in range(10_000))
        server.pages["/sitemap-huge.xml"] = f"<urlset>{huge}</urlset>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(
            '[[topic]]\nname = "h"\nmax_age_days = 0\n'
            f'feeds = ["{b}/feed.xml", "{b}/feeds/truncated.xml", "{b}/feeds/not-a-feed.xml"]\n'
            f'sitemaps = ["{b}/sitemap-not-a-sitemap.xml", "{b}/sitemap-xxe.xml", "{b}/sitemap-huge.xml"]\n'
            f'pages = ["http://127.0.0.1:{closed}/section/"]\n'
        )
        result = run_crawl(
            topics, tmp_path / "news.db",
            "-s", "DOWNLOAD_TIMEOUT=3", "-s", "DOWNLOAD_MAXSIZE=1000000", "-s", "RETRY_TIMES=2",
            "-s", "NEWS_MAX_SITEMAP_URLS=50", "-s", "NEWS_MIN_TEXT_CHARS=200", "-s", "REDIRECT_MAX_TIMES=5",
            timeout=240,
        )
        requests = server.paths()
    assert result.returncode == 0, result.stderr[-4000:]
    # Scrapy logs its own download errors with tracebacks; none may come from our code or a callback
    assert "Spider error processing" not in result.stderr and "Error processing" not in result.stderr, result.stderr[-4000:]
    assert "] ERROR:" not in "".join(l for l in result.stderr.splitlines(True) if "[crawler." in l or "[pipelines." in l)
    db = open_store(tmp_path / "news.db")
    stored = {row["url"].split(b)[-1] for row in db["articles"].rows}
    assert {"/a/good-article-one.html", "/a/good-article-two.html", "/a/wrong-charset-article.html", "/a/malformed-html-page.html"} <= stored
    assert not any("xxe" in u or "root:" in u for u in stored)
    capped = [u for u in stored if "?n=" in u]
    assert len(capped) == 50  # the 10,000-URL sitemap was read up to NEWS_MAX_SITEMAP_URLS
    assert len(stored) == 4 + 50
    assert len({row["cluster_id"] for row in db["articles"].rows if "?n=" in row["url"] or row["url"].endswith("one.html")}) == 1
    errors = {row["url"].split(b)[-1]: row["kind"] for row in db["fetch_errors"].rows}
    for path, kind in EXPECTED_KINDS.items():
        assert errors.get(path) == kind, (path, kind, errors.get(path))
    assert any(kind == "connection_refused" for kind in errors.values())
    run = next(db["crawl_runs"].rows)
    kinds = json.loads(run["error_kinds"])
    for kind in set(EXPECTED_KINDS.values()) | {"connection_refused"}:
        assert kinds.get(kind, 0) >= 1, kind
    assert run["status"] == "finished"
    # retries happened with back-off for 5xx and 429, within RETRY_TIMES
    assert requests.count("/a/server-error-page.html") == 3 and requests.count("/a/too-many-requests.html") == 3
    # the duplicate feed item was fetched once
    assert requests.count("/a/good-article-one.html") == 1
    stats = json.loads(run["stats"])
    assert stats["memusage/max"] < 600 * 1024 * 1024
