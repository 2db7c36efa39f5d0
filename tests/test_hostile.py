"""A hostile web in one crawl: every kind of broken response is recorded by kind, good articles are stored."""

from __future__ import annotations

import json
import socket
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

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


def article(title: str, extra: bytes = b"", head: bytes = b"") -> bytes:
    return (f"<html><head>{head.decode('latin-1')}<title>{title}</title></head><body><article><h1>{title}</h1>".encode("utf-8")
            + "".join(f"<p>{p}</p>" for p in PARAS).encode() + extra + b"</article></body></html>")


def html(body: bytes, content_type: str = "text/html; charset=utf-8"):
    return lambda h: Response(200, body, {"Content-Type": content_type})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LONG_BOMB = "/a/decompression-bomb-" + "behind-a-long-address-" * 20 + "end.html"


def bomb(size: int) -> bytes:
    """A gzip body (as gzip.compress makes) of ``size`` bytes of HTML, zeros in a paragraph,
    compressed in chunks so the test never holds it unpacked."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(b"<html><body><p>")]
    chunk = b"0" * 1_000_000
    for _ in range(size // len(chunk)):
        out.append(z.compress(chunk))
    out.append(z.compress(b"</p></body></html>"))
    out.append(z.flush())
    return b"".join(out)


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
    "/a/photo-of-the-harbour.html": "not_html",
    "/a/empty-body-page.html": "empty_body",
    "/a/connection-reset-page.html": "connection_lost",  # closed without an answer
    "/a/connection-rst-page.html": "connection_lost",  # reset (TCP RST)
    "/a/body-cut-short-page.html": "truncated_response",  # fewer bytes than its Content-Length
    LONG_BOMB: "too_large",  # Scrapy names the URL before the limit in its message
    "/a/how-robots.txt-rules-changed.html": "too_large",  # a URL naming robots.txt is no robots block
    "/feeds/not-a-feed.xml": "bad_feed",
    "/feeds/truncated.xml": "bad_feed",  # its complete items are still used
    "/sitemap-not-a-sitemap.xml": "bad_sitemap",
    "/sitemap-truncated.xml": "bad_sitemap",  # its complete entries are still used
    "/sitemap-entity-limit.xml": "bad_sitemap",  # the parser stops at libxml2's entity limits: the entries before are used
    "/a/seven-hops-start.html": "too_many_redirects",  # recorded under the link the feed listed
}

REDIRECT_MAX_TIMES = 6
# a 1x1 PNG behind an article link
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
# invalid UTF-8 (a lone BOM-like pair, a stray continuation byte) in a page declared UTF-8
INVALID_UTF8 = b"<p>Harbour users reported \xff\xfe garbled \x80 signs on the quay noticeboard this week, officials said.</p>"
# windows-1252 bytes, an unknown charset in the header, the real one in a <meta>
CP1252 = "<p>The café owners on the quay said the dredging noise was a small price for the ferries.</p>".encode("cp1252")
NO_CHARSET = "<p>Crêpe sellers near the façade of the old customs house said the works were overdue.</p>".encode()
# UTF-8 bytes in a page declared latin-1
MISLABELLED = "<p>Café owners on the harbour front said a wrong label on the page would not stop their trade.</p>".encode()


def redirect_chain(name: str, hops: int) -> dict:
    """/a/NAME-start.html -> /NAME/1 -> ... -> /a/NAME-final.html: ``hops`` redirects."""
    steps = [f"/a/{name}-start.html"] + [f"/{name}/{i}" for i in range(1, hops)] + [f"/a/{name}-final.html"]
    routes = {a: (lambda b: lambda h: Response(301, b"", {"Location": b}))(b) for a, b in zip(steps, steps[1:])}
    routes[steps[-1]] = html(article(f"Channel works, stage {hops}"))
    return routes


def routes() -> dict:
    loop = lambda h: Response(302, b"", {"Location": "/a/redirect-loop-page.html"})  # noqa: E731
    # 900 MB unpacked (under DOWNLOAD_MAXSIZE packed, ~0.9 MB): far past it and the RSS bound below
    bombed = bomb(900_000_000)
    return {
        "/a/good-article-one.html": html(article("Harbour dredging to begin")),
        "/a/invalid-utf8-article.html": html(article("Noticeboard shows garbled signs", INVALID_UTF8)),
        # declared latin-1 but UTF-8 bytes: mojibake, not failure
        "/a/wrong-charset-article.html": html(article("Café owners welcome channel work", MISLABELLED), "text/html; charset=latin-1"),
        "/a/unknown-charset-article.html": html(article("Quay cafés and the dredging", CP1252, b'<meta charset="windows-1252">'),
                                                "text/html; charset=x-no-such-charset"),
        # truncated, unclosed markup: still an article
        "/a/malformed-html-page.html": lambda h: Response(200, article("Ferries to return")[:-40] + b"<div><p><b>unclosed", {"Content-Type": "text/html"}),
        "/a/gone-missing-page.html": lambda h: Response(404, b"not here"),
        "/a/gone-for-good-page.html": lambda h: Response(410, b"gone"),
        "/a/server-error-page.html": lambda h: Response(500, b"boom"),
        "/a/too-many-requests.html": lambda h: Response(429, b"slow down", {"Retry-After": "1"}),
        "/a/slow-drip-page.html": lambda h: Response(200, article("Slow") * 3, {"Content-Type": "text/html"}, drip=0.5),
        "/a/redirect-loop-page.html": loop,
        "/a/huge-page-here.html": lambda h: Response(200, b"<html>" + b"x" * 3_000_000 + b"</html>", {"Content-Type": "text/html"}),
        "/a/decompression-bomb.html": lambda h: Response(200, bombed, {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        LONG_BOMB: lambda h: Response(200, bombed, {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        "/a/how-robots.txt-rules-changed.html": lambda h: Response(200, bombed, {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        "/a/annual-report-2026.html": lambda h: Response(200, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj", {"Content-Type": "application/pdf"}),
        "/a/photo-of-the-harbour.html": lambda h: Response(200, PNG, {"Content-Type": "image/png"}),
        "/a/empty-body-page.html": lambda h: Response(200, b"", {"Content-Type": "text/html"}),
        "/a/connection-reset-page.html": lambda h: Response(abort=True),
        "/a/connection-rst-page.html": lambda h: Response(abort=True, reset=True),
        "/a/body-cut-short-page.html": lambda h: Response(200, article("Cut short")[:300], {"Content-Type": "text/html"}, declared_length=5000),
        # non-ASCII UTF-8 with no charset anywhere (header or <meta>)
        "/a/no-charset-article.html": html(article("Quay cafés without a label", NO_CHARSET), "text/html"),
        "/feeds/not-a-feed.xml": lambda h: Response(200, b"<html><body>Subscribe!</body></html>", {"Content-Type": "text/html"}),
        "/sitemap-not-a-sitemap.xml": lambda h: Response(200, b"<html><body>no sitemap</body></html>", {"Content-Type": "text/html"}),
        **redirect_chain("six-hops", REDIRECT_MAX_TIMES),  # within the limit: followed, stored
        **redirect_chain("seven-hops", REDIRECT_MAX_TIMES + 1),  # one beyond: too_many_redirects
        # what the sitemap's entities would lead to if they were expanded or fetched: real articles
        "/a/entity-expanded-article.html": html(article("Expanded entity article")),
        "/a/external-entity-article.html": html(article("External entity article")),
        "/a/dtd-entity-article.html": html(article("DTD entity article")),
        **{f"/a/{name}.html": html(article(name.replace("-", " ").capitalize()))
           for name in ("sitemap-normal-first", "sitemap-normal-last", "truncated-sitemap-first", "truncated-sitemap-second",
                        "truncated-sitemap-third", "from-the-year-1900", "from-the-year-2999", "from-last-tuesday")},
    }


def test_hostile_server_one_crawl(tmp_path):
    closed = _closed_port()
    server = FixtureServer(routes=routes())
    with server:
        b = server.base
        links = [p for p in EXPECTED_KINDS if p.startswith("/a/")] + [
            "/a/good-article-one.html", "/a/good-article-one.html",  # duplicate items in one feed
            "/a/wrong-charset-article.html", "/a/unknown-charset-article.html", "/a/invalid-utf8-article.html", "/a/no-charset-article.html",
            "/a/malformed-html-page.html", "/a/six-hops-start.html", "/a/seven-hops-start.html",
        ]
        dates = ["Mon, 01 Jan 1900 00:00:00 GMT", "Fri, 01 Jan 2999 00:00:00 GMT", "not a date at all"]
        items = "".join(f"<item><title>t{i}</title><link>{b}{p}</link><pubDate>{dates[i % 3]}</pubDate></item>" for i, p in enumerate(links))
        server.pages["/feed.xml"] = f"<?xml version='1.0'?><rss version='2.0'><channel><title>h</title>{items}</channel></rss>".encode()
        # absurd dates for a topic with max_age_days = 7: the 1900 item is too old, the 2999 one is
        # fetched but its date (and the page's own 1900 date) is not believed
        last_tuesday = datetime.now(timezone.utc) - timedelta(days=2)
        dated = [("/a/from-the-year-1900.html", dates[0]), ("/a/from-the-year-2999.html", dates[1]),
                 ("/a/from-last-tuesday.html", format_datetime(last_tuesday, usegmt=True))]
        items = "".join(f"<item><title>d</title><link>{b}{p}</link><pubDate>{d}</pubDate></item>" for p, d in dated)
        server.pages["/feeds/dates.xml"] = f"<rss version='2.0'><channel><title>d</title>{items}</channel></rss>".encode()
        server.routes["/a/from-the-year-2999.html"] = html(article("From the year 2999", head=b'<meta property="article:published_time" content="1900-01-01">'))
        # a truncated feed: the complete items before the cut are still read
        truncated = f"<?xml version='1.0'?><rss version='2.0'><channel><item><link>{b}/a/good-article-two.html</link></item><item><link>{b}/a/cut"
        server.routes["/a/good-article-two.html"] = html(article("Channel contract signed"))
        server.pages["/feeds/truncated.xml"] = truncated.encode()
        # a sitemap cut mid-element: the complete entries are used, the cut one is not
        server.pages["/sitemap-truncated.xml"] = (
            f"<urlset><url><loc>{b}/a/truncated-sitemap-first.html</loc></url><url><loc>{b}/a/truncated-sitemap-second.html</loc></url>"
            f"<url><loc>{b}/a/truncated-sitemap-third.html</loc><lastmod>2026-1"
        ).encode()
        # entities: expanded or fetched, each would name an article this server serves
        server.pages["/xxe-external.txt"] = f"{b}/a/external-entity-article.html".encode()
        server.pages["/xxe.dtd"] = f'<!ENTITY t "{b}/a/dtd-entity-article.html">'.encode()
        server.pages["/sitemap-xxe.xml"] = (
            f'<?xml version="1.0"?><!DOCTYPE urlset SYSTEM "{b}/xxe.dtd" [<!ENTITY p "{b}/a/entity-expanded-article.html">'
            f'<!ENTITY x SYSTEM "{b}/xxe-external.txt"><!ENTITY % d SYSTEM "{b}/xxe.dtd"> %d;'
            '<!ENTITY a "aaaaaaaaaa"><!ENTITY l "&a;&a;&a;&a;&a;&a;&a;&a;">]><urlset>'
            f"<url><loc>{b}/a/sitemap-normal-first.html</loc></url><url><loc>&p;</loc></url><url><loc>&x;</loc></url>"
            f"<url><loc>&t;</loc></url><url><loc>&l;</loc></url><url><loc>{b}/a/sitemap-normal-last.html</loc></url></urlset>"
        ).encode()
        # a feed with the same entity tricks and a billion-laughs chain: nothing fetched, no blow-up
        laughs = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">' for i in range(1, 10))
        server.pages["/feeds/xxe.xml"] = (
            f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{b}/xxe-feed.dtd" [{laughs}<!ENTITY x SYSTEM "{b}/xxe-feed-external.txt">'
            f'<!ENTITY % d SYSTEM "{b}/xxe-feed.dtd"> %d;]><rss version="2.0"><channel><title>&l9;</title>'
            f"<item><title>&l9;</title><link>&x;</link></item><item><link>{b}/a/feed-xxe-neighbour.html</link></item></channel></rss>"
        ).encode()
        server.pages["/xxe-feed-external.txt"] = f"{b}/a/external-entity-article.html".encode()
        server.pages["/xxe-feed.dtd"] = f'<!ENTITY t "{b}/a/dtd-entity-article.html">'.encode()
        big = "x" * 50_000
        server.pages["/sitemap-entity-limit.xml"] = (
            f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY big "{big}">]><urlset>'
            + "".join(f"<url><loc>{b}/a/good-article-one.html?e={i}</loc><n>&big;</n></url>" for i in range(300)) + "</urlset>"
        ).encode()
        huge = "".join(f"<url><loc>{b}/a/good-article-one.html?n={i}</loc></url>" for i in range(10_000))
        server.pages["/sitemap-huge.xml"] = f"<urlset>{huge}</urlset>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(
            '[[topic]]\nname = "h"\nmax_age_days = 0\n'
            f'feeds = ["{b}/feed.xml", "{b}/feeds/truncated.xml", "{b}/feeds/not-a-feed.xml", "{b}/feeds/xxe.xml"]\n'
            f'sitemaps = ["{b}/sitemap-not-a-sitemap.xml", "{b}/sitemap-xxe.xml", "{b}/sitemap-huge.xml", "{b}/sitemap-truncated.xml", "{b}/sitemap-entity-limit.xml"]\n'
            f'pages = ["http://127.0.0.1:{closed}/section/"]\n'
            '[[topic]]\nname = "d"\nmax_age_days = 7\n'
            f'feeds = ["{b}/feeds/dates.xml"]\n'
        )
        result = run_crawl(
            topics, tmp_path / "news.db",
            "-s", "DOWNLOAD_TIMEOUT=3", "-s", "DOWNLOAD_MAXSIZE=1000000", "-s", "RETRY_TIMES=2",
            "-s", "NEWS_MAX_SITEMAP_URLS=50", "-s", "NEWS_MIN_TEXT_CHARS=200", "-s", f"REDIRECT_MAX_TIMES={REDIRECT_MAX_TIMES}",
            timeout=240,
        )
        requests = server.paths()
    assert result.returncode == 0, result.stderr[-4000:]
    # Scrapy logs its own download errors with tracebacks; none may come from our code or a callback
    assert "Spider error processing" not in result.stderr and "Error processing" not in result.stderr, result.stderr[-4000:]
    assert "] ERROR:" not in "".join(l for l in result.stderr.splitlines(True) if "[crawler." in l or "[pipelines." in l)
    db = open_store(tmp_path / "news.db")
    articles = {row["url"].split(b)[-1]: row for row in db["articles"].rows}
    stored = set(articles)
    capped = {u for u in stored if "?n=" in u}
    assert len(capped) == 50  # the 10,000-URL sitemap was read up to NEWS_MAX_SITEMAP_URLS
    before_limit = {u for u in stored if "?e=" in u}
    assert 0 < len(before_limit) < 300  # the entries read before the parser stopped
    capped |= before_limit
    good = {f"/a/{name}.html" for name in (
        "good-article-one", "good-article-two", "wrong-charset-article", "unknown-charset-article", "invalid-utf8-article",
        "malformed-html-page", "six-hops-final", "sitemap-normal-first", "sitemap-normal-last", "no-charset-article",
        "truncated-sitemap-first", "truncated-sitemap-second", "from-the-year-2999", "from-last-tuesday")}
    assert stored == good | capped, (stored - good - capped, good - stored)
    assert len({row["cluster_id"] for u, row in articles.items() if "?n=" in u or "?e=" in u or u.endswith("one.html")}) == 1
    # invalid bytes and wrong or unknown charsets: decoded leniently, the article and its text kept
    # (their shared PARAS are site template by now: each page's own paragraph is checked)
    assert "garbled" in articles["/a/invalid-utf8-article.html"]["text"]
    assert "signs on the quay noticeboard this week" in articles["/a/invalid-utf8-article.html"]["text"]
    assert "owners on the harbour front said a wrong label" in articles["/a/wrong-charset-article.html"]["text"]
    assert "The café owners on the quay said" in articles["/a/unknown-charset-article.html"]["text"]  # the <meta> charset
    assert "Crêpe sellers near the façade of the old customs house" in articles["/a/no-charset-article.html"]["text"]
    # no entity was expanded, no external entity or DTD fetched; the sitemap's normal entries were crawled
    assert not {"/xxe-external.txt", "/xxe.dtd", "/xxe-feed-external.txt", "/xxe-feed.dtd", "/a/entity-expanded-article.html",
                "/a/external-entity-article.html", "/a/dtd-entity-article.html"} & set(requests), requests
    assert not any("aaaaaaaaaa" in p for p in requests)
    assert {"/a/sitemap-normal-first.html", "/a/sitemap-normal-last.html"} <= set(requests)
    # the cut sitemap entry was not guessed at (nor any cut URL fetched); its complete neighbours were stored
    assert not any(p.startswith("/a/truncated-sitemap-thi") for p in requests)
    # redirects: six hops followed to the article; seven hops stop at the limit, the final page never fetched
    assert requests.count("/six-hops/5") == 1 and "/a/seven-hops-final.html" not in requests
    assert articles["/a/six-hops-final.html"]["fetched_url"].endswith("/a/six-hops-final.html")
    errors = {row["url"].split(b)[-1]: row["kind"] for row in db["fetch_errors"].rows}
    for path, kind in EXPECTED_KINDS.items():
        assert errors.get(path) == kind, (path, kind, errors.get(path))
    assert [kind for path, kind in errors.items() if "seven-hops" in path] == ["too_many_redirects"], errors
    assert any(kind == "connection_refused" for kind in errors.values())
    run = next(db["crawl_runs"].rows)
    kinds = json.loads(run["error_kinds"])
    for kind in set(EXPECTED_KINDS.values()) | {"connection_refused"}:
        assert kinds.get(kind, 0) >= 1, kind
    assert run["status"] == "finished"
    # absurd dates: the 1900 feed item is too old for max_age_days = 7 (never fetched); no stored
    # article carries a date before 1995 or in the future
    per_topic = {row["topic"]: row for row in db["crawl_run_topics"].rows}
    assert per_topic["d"]["skipped_old"] == 1 and per_topic["d"]["stored"] == 2
    assert "/a/from-the-year-1900.html" not in requests
    latest = (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()
    for path, row in articles.items():
        assert row["published"] is None or "1995-01-01" <= row["published"][:10] <= latest, (path, row["published"])
    assert articles["/a/from-last-tuesday.html"]["published"][:10] == last_tuesday.date().isoformat()
    # retries happened with back-off for 5xx and 429, within RETRY_TIMES
    assert requests.count("/a/server-error-page.html") == 3 and requests.count("/a/too-many-requests.html") == 3
    # the duplicate feed item was fetched once
    assert requests.count("/a/good-article-one.html") == 1
    # the feed with entity tricks: its plain item was still read
    assert "/a/feed-xxe-neighbour.html" in requests
    # peak RSS of the crawl process (getrusage at the end): the 900 MB bombs never unpacked in
    # memory (measured 219-376 MB: Scrapy unpacks a chunk past the limit before it stops)
    stats = json.loads(run["stats"])
    assert 50 < stats["news/main_process_peak_rss_mb"] < 600, stats["news/main_process_peak_rss_mb"]
    errors_detail = {row["url"].split(b)[-1]: row["detail"] for row in db["fetch_errors"].rows}
    assert "1 complete item(s) kept" in errors_detail["/feeds/truncated.xml"]
