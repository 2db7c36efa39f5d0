"""Network safety: links to loopback, private, link-local addresses and non-http schemes are refused.

Safety net for the test itself: the crawl runs with http_proxy pointing at the fixture
server, so even a broken refusal would send its request to 127.0.0.1 (where it shows up in
the server's records as an absolute URI) and never to 10.0.0.1 or 169.254.169.254.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from scrapy import Request
from scrapy.utils.test import get_crawler

from crawler.middlewares import NetworkSafetyMiddleware
from crawler.spiders.news import TOPICS
from crawler.urls import RefusedAddress
from demo.server import FixtureServer, Response
from tests.conftest import ROOT, open_store

import subprocess
import sys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD_LINKS = [
    "http://127.0.0.1:{other}/news/other-port-story.html",
    "http://localhost:{other}/news/localhost-name-story.html",
    "http://169.254.169.254/latest/meta-data/iam-story-here",
    "http://10.0.0.1/news/private-network-story.html",
    "http://[::1]:{other}/news/ipv6-loopback-story.html",
    "file:///etc/passwd",
    "file://{local}",  # a real article on this machine: it would be stored if it were read
]


def test_private_addresses_and_schemes_are_refused(tmp_path):
    other = _free_port()
    local = tmp_path / "local-article.html"
    server = FixtureServer(routes={
        "/news/redirect-to-private.html": lambda h: Response(302, b"", {"Location": "http://10.0.0.1/internal-admin-page"}),
        # a same-site link whose redirect points at a file on this machine: the download path itself
        "/news/redirect-to-local-file.html": lambda h: Response(302, b"", {"Location": f"file://{local}"}),
    })
    local.write_text("<html><head><title>Local file story</title></head><body><article><h1>Local file story</h1>"
                     + "<p>The harbour board met on Monday to discuss the dredging plan for the northern channel.</p>" * 12
                     + "</article></body></html>")
    with server:
        links = [link.format(other=other, local=local) for link in BAD_LINKS] + [f"{server.base}/news/redirect-to-private.html",
                                                                                  f"{server.base}/news/redirect-to-local-file.html"]
        # a listing page (same site, one level) with the same links
        server.pages["/section/"] = ("<html><body>" + "".join(f'<a href="{link}">A story headline for the section</a>' for link in links)
                                     + "</body></html>").encode()
        items = "".join(f"<item><title>x</title><link>{link}</link></item>" for link in links)
        server.pages["/feed.xml"] = f"<rss version='2.0'><channel><title>f</title>{items}</channel></rss>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\npages = ["{server.base}/section/"]\n')
        env = {**os.environ, "http_proxy": server.base, "no_proxy": "", "NO_PROXY": "", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", f"NEWS_DB={tmp_path / 'news.db'}",
               "-s", "DOWNLOAD_TIMEOUT=5", "-s", "RETRY_ENABLED=False"]
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        requested = server.paths()
    assert result.returncode == 0, result.stderr[-3000:]
    # only the configured source origin was contacted: the feed, robots.txt and the redirecting page
    for path in requested:
        assert "10.0.0.1" not in path and "169.254" not in path and str(other) not in path and "::1" not in path, path
    assert any("redirect-to-private" in p for p in requested)  # same origin as the feed: allowed
    db = open_store(tmp_path / "news.db")
    refused = [row["url"] for row in db["fetch_errors"].rows_where("kind = 'refused_address'")]
    for link in links[:5]:
        assert any(link.split("://")[1].split("/")[0] in url for url in refused), (link, refused)
    # a refused redirect is recorded under the link as found, the refused target in its detail
    via = [row for row in db["fetch_errors"].rows_where("kind = 'refused_address'") if "redirect-to-private" in row["url"]]
    assert len(via) == 1 and "10.0.0.1/internal-admin-page" in via[0]["detail"], via
    assert db.execute("select count(*) from articles").fetchone()[0] == 0
    # file:// links were never read: no outcome or error names the local file as fetched
    assert not [r for r in db["url_outcomes"].rows if r["url"].startswith("file:")]
    assert not [r for r in db["fetch_errors"].rows if r["url"].startswith("file:") and r["kind"] != "refused_address"]
    # the redirect was requested and not followed to its file:// target (Scrapy follows only
    # http(s) redirects): recorded as a failure, and the local article never stored (above)
    assert any("redirect-to-local-file" in p for p in requested)
    (to_file,) = [r for r in db["fetch_errors"].rows if "redirect-to-local-file" in r["url"]]
    assert to_file["kind"] in ("http_302", "refused_address"), to_file


def test_allow_private_networks_setting(tmp_path):
    """With NEWS_ALLOW_PRIVATE_NETWORKS, a loopback link on another origin is fetched."""
    paragraph = ("Volunteers counted more than two hundred swifts nesting under the old railway bridge this summer, "
                 "the highest number since records began, and the council has agreed to delay repainting until autumn. ")
    article = f"<html><body><article><h1>Swifts return</h1><p>{paragraph * 2}</p><p>{paragraph}</p></article></body></html>".encode()
    with FixtureServer(pages={"/news/swifts-return-to-bridge.html": article}) as other, FixtureServer() as server:
        link = other.base.replace("127.0.0.1", "localhost") + "/news/swifts-return-to-bridge.html"
        server.pages["/feed.xml"] = f"<rss version='2.0'><channel><item><link>{link}</link></item></channel></rss>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        base_cmd = [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", "RETRY_ENABLED=False"]
        refused = subprocess.run(base_cmd + ["-s", f"NEWS_DB={tmp_path / 'a.db'}"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
        allowed = subprocess.run(base_cmd + ["-s", f"NEWS_DB={tmp_path / 'b.db'}", "-s", "NEWS_ALLOW_PRIVATE_NETWORKS=True"],
                                 cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
        fetched = other.paths()
    assert refused.returncode == 0 and allowed.returncode == 0
    assert fetched.count("/news/swifts-return-to-bridge.html") == 1  # only the allowed crawl fetched it
    assert open_store(tmp_path / "a.db").execute("select count(*) from articles").fetchone()[0] == 0
    assert open_store(tmp_path / "b.db").execute("select count(*) from articles").fetchone()[0] == 1


def _middleware(tmp_path, **settings) -> NetworkSafetyMiddleware:
    """Topic "a" lists a feed on a private origin; topic "b" a public one and GDELT (on a private test origin)."""
    topics = tmp_path / "topics.toml"
    topics.write_text(
        '[[topic]]\nname = "a"\nfeeds = ["http://10.1.2.3:8080/feed.xml"]\n'
        '[[topic]]\nname = "b"\nquery = "x"\nfeeds = ["https://news.example/feed.xml"]\nsearch = ["gdelt"]\n'
    )
    crawler = get_crawler(settings_dict={"NEWS_TOPICS": str(topics), "NEWS_GDELT_URL": "http://127.0.0.1:9999", **settings})
    return NetworkSafetyMiddleware.from_crawler(crawler)


def _verdict(mw: NetworkSafetyMiddleware, url: str, topics=("a",)) -> str:
    meta = {TOPICS: topics} if topics is not None else {}
    try:
        asyncio.run(mw.process_request(Request(url, meta=meta)))
    except RefusedAddress:
        return "refused"
    return "fetched"


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "ftp://93.184.216.34/pub/story.html",  # a public host, but not http(s)
    "http://224.0.0.1/news/multicast-story.html",
    "http://[ff02::1]/news/ipv6-multicast-story.html",
    "http://[::ffff:10.0.0.1]/news/mapped-private-story.html",
    # shared address space (RFC 6598): carrier-grade NAT, and VPN overlays (Tailscale) that
    # reach the operator's own machines: not public, refused
    "http://100.64.0.1/news/cgnat-story.html",
])
def test_refused_schemes_and_addresses(tmp_path, url):
    assert _verdict(_middleware(tmp_path), url) == "refused"
    assert _verdict(_middleware(tmp_path, NEWS_ALLOW_PRIVATE_NETWORKS=True), url) == ("refused" if url[:4] in ("file", "ftp:") else "fetched")


def test_public_address_is_fetched(tmp_path):
    assert _verdict(_middleware(tmp_path), "http://93.184.216.34/news/story.html") == "fetched"


def test_private_source_origin_is_allowed_only_for_its_own_topic(tmp_path):
    mw = _middleware(tmp_path)
    link = "http://10.1.2.3:8080/news/internal-story.html"
    assert _verdict(mw, link, ("a",)) == "fetched"  # topic a's configured source origin
    assert _verdict(mw, link, ("b",)) == "refused"  # a link found by topic b only
    assert _verdict(mw, link, ("a", "b")) == "fetched"
    assert _verdict(mw, "http://10.1.2.3:8081/news/other-port.html", ("a",)) == "refused"  # origin includes the port
    assert _verdict(mw, "http://10.1.2.3:8080/robots.txt", None) == "fetched"  # Scrapy's robots.txt fetch carries no topic
    # a search service's origin is allowed for the topics that search it
    assert _verdict(mw, "http://127.0.0.1:9999/api/v2/doc/doc?query=x", ("b",)) == "fetched"
    assert _verdict(mw, "http://127.0.0.1:9999/api/v2/doc/doc?query=x", ("a",)) == "refused"
