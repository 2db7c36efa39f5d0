"""News-search sources (Google News RSS, Bing News RSS, GDELT DOC 2.0) against local fixtures.

The fixture responses follow each service's documented format; the services run on one
local server, the publishers' articles (the demo site) on another.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from crawler.query import parse_query
from crawler.search import SearchResponseError, bing_publisher_url, parse_results, resolve_google_link, search_url, translate
from demo.server import FixtureServer, Response
from tests.conftest import DEMO_SITE, open_store, run_crawl

QUERY = 'Anthropic AND (Alibaba OR Qwen OR distillation) AND NOT "stock tips"'
FAST_SLOTS = json.dumps({f"search-{s}": {"concurrency": 1, "delay": 0} for s in ("google_news", "bing_news", "gdelt")})


def google_token(url: str) -> str:
    """An /rss/articles/ id in the older decodable format: base64 of a protobuf holding the URL."""
    raw = url.encode()
    return base64.urlsafe_b64encode(b"\x08\x13\x22" + bytes([len(raw)]) + raw + b"\xd2\x01\x00").decode().rstrip("=")


def test_translation_per_service():
    q = parse_query(QUERY)
    assert translate(q, "google_news") == 'anthropic (alibaba OR qwen OR distillation) -"stock tips"'
    assert translate(q, "bing_news") == 'anthropic (alibaba OR qwen OR distillation) -"stock tips"'
    assert translate(q, "gdelt") == 'anthropic (alibaba OR qwen OR distillation) -"stock tips"'
    nested = parse_query("(a b) OR (c OR (d e))")
    assert translate(nested, "google_news") == "(a b) OR (c OR (d e))"
    assert translate(nested, "gdelt") == "(a OR b OR c OR d OR e)"  # GDELT cannot nest: broadened, never narrowed


def test_search_urls_encode_the_query():
    q = 'anthropic -"stock tips"'
    google = urlsplit(search_url("google_news", "https://news.google.com", q, max_age_days=7))
    assert google.path == "/rss/search"
    assert parse_qs(google.query) == {"q": [q + " when:7d"], "hl": ["en-US"], "gl": ["US"], "ceid": ["US:en"]}
    bing = urlsplit(search_url("bing_news", "https://www.bing.com", q))
    assert bing.path == "/news/search" and parse_qs(bing.query)["q"] == [q] and parse_qs(bing.query)["format"] == ["rss"]
    gdelt = urlsplit(search_url("gdelt", "https://api.gdeltproject.org", q, max_age_days=400))
    params = parse_qs(gdelt.query)
    assert gdelt.path == "/api/v2/doc/doc" and params["query"] == [q] and params["mode"] == ["artlist"]
    assert params["maxrecords"] == ["250"] and params["timespan"] == ["90d"] and params["format"] == ["json"]


def test_link_resolution():
    url = "https://publisher.example/news/2026/11/story.html"
    assert resolve_google_link(f"https://news.google.com/rss/articles/{google_token(url)}?oc=5") == url
    assert resolve_google_link("https://news.google.com/rss/articles/CBMiXAU_yqLopaque?oc=5") is None
    click = "http://www.bing.com/news/apiclick.aspx?ref=FexRss&aid=&tid=1&url=" + quote(url, safe="") + "&c=2"
    assert bing_publisher_url(click) == url
    assert bing_publisher_url("http://www.bing.com/news/apiclick.aspx?ref=FexRss") is None


def test_malformed_responses_raise_and_empty_ones_do_not():
    assert parse_results("gdelt", b"", "u") == [] and parse_results("gdelt", b"{}", "u") == []
    with pytest.raises(SearchResponseError):
        parse_results("gdelt", b"Your search contained a phrase that was too short.", "u")
    with pytest.raises(SearchResponseError):
        parse_results("google_news", b"<html>captcha</html>", "u")
    assert parse_results("bing_news", b"<rss version='2.0'><channel></channel></rss>", "u") == []


def _services(publisher: str, received: dict) -> dict:
    art = "/news/2026/11/"

    def google_search(handler):
        received["google_news"] = handler.path
        items = [
            f"<item><title>A</title><link>{{svc}}/rss/articles/{google_token(publisher + art + 'anthropic-alibaba-distillation.html')}?oc=5</link>"
            "<pubDate>Fri, 20 Nov 2026 09:30:00 GMT</pubDate><source url=\"https://publisher.example\">Ledger</source></item>",
            "<item><title>B</title><link>{svc}/rss/articles/CBMiOPAQUEredirect?oc=5</link></item>",
            "<item><title>C</title><link>{svc}/rss/articles/CBMiOPAQUEnoredirect?oc=5</link></item>",
        ]
        body = "<?xml version='1.0'?><rss version='2.0'><channel><title>Google News</title>" + "".join(items) + "</channel></rss>"
        return Response(200, body.replace("{svc}", received["base"]).encode(), {"Content-Type": "application/rss+xml"})

    def google_redirect(handler):
        return Response(302, b"", {"Location": publisher + art + "wire-anthropic-alibaba.html"})

    def google_stuck(handler):
        return Response(200, b"<html><body><script>window.location='elsewhere'</script>Opening...</body></html>", {"Content-Type": "text/html"})

    def bing_search(handler):
        received["bing_news"] = handler.path
        target = quote(publisher + art + "claude-scraping-opinion.html", safe="")
        items = (
            f"<item><title>D</title><link>http://www.bing.com/news/apiclick.aspx?ref=FexRss&amp;aid=&amp;tid=9&amp;url={target}&amp;c=1</link></item>"
            "<item><title>E</title><link>http://www.bing.com/news/apiclick.aspx?ref=FexRss&amp;tid=10</link></item>"
        )
        return Response(200, f"<?xml version='1.0'?><rss version='2.0'><channel><title>Bing</title>{items}</channel></rss>".encode(), {"Content-Type": "application/rss+xml"})

    def gdelt(handler):
        received["gdelt"] = handler.path
        doc = {"articles": [
            {"url": publisher + art + "claude-scraping-opinion.html", "title": "D again", "seendate": "20261121T101500Z", "domain": "publisher", "language": "English"},
            {"url": publisher + art + "qwen-release-stock-tips.html", "title": "F", "seendate": "20261121T111500Z", "domain": "publisher", "language": "English"},
        ]}
        return Response(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    return {
        "/rss/search": google_search,
        "/rss/articles/CBMiOPAQUEredirect": google_redirect,
        "/rss/articles/CBMiOPAQUEnoredirect": google_stuck,
        "/news/search": bing_search,
        "/api/v2/doc/doc": gdelt,
    }


def _settings(base: str) -> list[str]:
    return ["-s", f"NEWS_GOOGLE_NEWS_URL={base}", "-s", f"NEWS_BING_NEWS_URL={base}", "-s", f"NEWS_GDELT_URL={base}",
            "-s", f"DOWNLOAD_SLOTS={FAST_SLOTS}", "-s", "NEWS_ALLOW_PRIVATE_NETWORKS=True"]


def test_search_sources_end_to_end(tmp_path):
    received: dict = {}
    with FixtureServer(root=DEMO_SITE) as publisher:
        services = FixtureServer(routes=_services(publisher.base, received))
        with services:
            received["base"] = services.base
            topics = tmp_path / "topics.toml"
            topics.write_text(f"[[topic]]\nname = \"ai\"\nquery = '{QUERY}'\nsearch = [\"google_news\", \"bing_news\", \"gdelt\"]\nmax_age_days = 0\n")
            result = run_crawl(topics, tmp_path / "news.db", *_settings(services.base))
            publisher_paths = publisher.paths()
    assert result.returncode == 0, result.stderr[-3000:]
    expected_query = translate(parse_query(QUERY), "google_news")
    assert parse_qs(urlsplit(received["google_news"]).query)["q"] == [expected_query]
    assert parse_qs(urlsplit(received["bing_news"]).query)["q"] == [expected_query]
    assert parse_qs(urlsplit(received["gdelt"]).query)["query"] == [translate(parse_query(QUERY), "gdelt")]

    db = open_store(tmp_path / "news.db")
    stored = {urlsplit(r["url"]).path for r in db["articles"].rows}
    art = "/news/2026/11/"
    assert stored == {art + "anthropic-alibaba-distillation.html", art + "wire-anthropic-alibaba.html", art + "claude-scraping-opinion.html"}
    # found by Bing and GDELT, fetched once
    assert publisher_paths.count(art + "claude-scraping-opinion.html") == 1
    sources = {(urlsplit(r["url"]).path, r["kind"]) for r in db["article_sources"].rows}
    assert (art + "anthropic-alibaba-distillation.html", "google_news") in sources
    assert (art + "wire-anthropic-alibaba.html", "google_news") in sources
    assert {(art + "claude-scraping-opinion.html", "bing_news"), (art + "claude-scraping-opinion.html", "gdelt")} <= sources
    queries = {r["query"] for r in db["article_sources"].rows}
    assert queries == {expected_query}
    unresolved = [r for r in db["fetch_errors"].rows if r["kind"] == "unresolved_link"]
    assert len(unresolved) == 2  # the Google link that did not redirect, the Bing link without url=
    run = next(db["crawl_runs"].rows)
    assert json.loads(run["stats"])["news/search_unresolved"] == 2
    assert run["irrelevant"] == 1  # the "stock tips" article found by GDELT


def test_malformed_and_empty_search_responses_are_counted_not_fatal(tmp_path):
    routes = {
        "/rss/search": lambda h: Response(200, b"<html><body>unusual traffic</body></html>", {"Content-Type": "text/html"}),
        "/news/search": lambda h: Response(200, b"", {"Content-Type": "application/rss+xml"}),
        "/api/v2/doc/doc": lambda h: Response(200, b"Queries containing OR'd terms must be surrounded by ().", {"Content-Type": "text/plain"}),
    }
    with FixtureServer(routes=routes) as services:
        topics = tmp_path / "topics.toml"
        topics.write_text(f"[[topic]]\nname = \"ai\"\nquery = '{QUERY}'\nsearch = [\"google_news\", \"bing_news\", \"gdelt\"]\n")
        result = run_crawl(topics, tmp_path / "news.db", *_settings(services.base))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    db = open_store(tmp_path / "news.db")
    run = next(db["crawl_runs"].rows)
    assert run["status"] == "finished" and run["errors"] == 3
    kinds = sorted(r["kind"] for r in db["fetch_errors"].rows)
    assert kinds == ["bad_search_response"] * 3


def test_search_needs_a_query(tmp_path):
    from crawler.topics import TopicsError, load_topics

    path = tmp_path / "t.toml"
    path.write_text('[[topic]]\nname = "x"\nsearch = ["gdelt"]\n')
    with pytest.raises(TopicsError, match="field 'search': searching needs a query"):
        load_topics(path)
    path.write_text('[[topic]]\nname = "x"\nquery = "a"\nsearch = ["altavista"]\n')
    with pytest.raises(TopicsError, match="google_news, bing_news, gdelt"):
        load_topics(path)
