"""Network safety: links to loopback, private, link-local addresses and non-http schemes are refused.

Safety net for the test itself: the crawl runs with http_proxy pointing at the fixture
server, so even a broken refusal would send its request to 127.0.0.1 (where it shows up in
the server's records as an absolute URI) and never to 10.0.0.1 or 169.254.169.254.
"""

from __future__ import annotations

import os
import socket

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
]


def test_private_addresses_and_schemes_are_refused(tmp_path):
    other = _free_port()
    server = FixtureServer(routes={"/news/redirect-to-private.html": lambda h: Response(302, b"", {"Location": "http://10.0.0.1/internal-admin-page"})})
    with server:
        links = [link.format(other=other) for link in BAD_LINKS] + [f"{server.base}/news/redirect-to-private.html"]
        items = "".join(f"<item><title>x</title><link>{link}</link></item>" for link in links)
        server.pages["/feed.xml"] = f"<rss version='2.0'><channel><title>f</title>{items}</channel></rss>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
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
    assert any("10.0.0.1/internal-admin-page" in url for url in refused)  # the redirect target
    assert db.execute("select count(*) from articles").fetchone()[0] == 0


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
