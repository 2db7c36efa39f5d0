"""News-search sources (Google News RSS, Bing News RSS, GDELT DOC 2.0) against local fixtures.

The fixture responses follow each service's documented format; the services run on one
local server, the publishers' articles (the demo site) on another.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from scrapy import Request
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from crawler.middlewares import SearchSlotMiddleware
from crawler.query import parse_query
from crawler.search import SearchResponseError, bing_publisher_url, parse_results, resolve_google_link, search_url, translate
from crawler.spiders.news import HINTS, SEARCH_QUERY, SOURCE, TOPICS, NewsSpider
from demo.server import FixtureServer, Response
from tests.conftest import DEMO_SITE, open_store, run_crawl

QUERY = 'Anthropic AND (Alibaba OR Qwen OR distillation) AND NOT "stock tips"'
NO_DELAYS = json.dumps({s: 0 for s in ("google_news", "bing_news", "gdelt")})


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


def test_google_recency_covers_a_top_level_or():
    def q(query: str) -> str:
        url = search_url("google_news", "https://news.google.com", translate(parse_query(query), "google_news"), max_age_days=7)
        return parse_qs(urlsplit(url).query)["q"][0]

    assert q("anthropic OR qwen") == "(anthropic OR qwen) when:7d"  # not "anthropic OR qwen when:7d"
    assert q("a b OR c") == "((a b) OR c) when:7d"
    assert q("anthropic (qwen OR alibaba)") == "anthropic (qwen OR alibaba) when:7d"  # OR inside a group: already scoped
    assert q('"qwen OR alibaba" anthropic') == '"qwen or alibaba" anthropic when:7d'  # a phrase, not an operator


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


def _topics_file(tmp_path, text: str):
    path = tmp_path / "topics.toml"
    path.write_text(text)
    return path


def test_search_results_carry_gdelt_hints_and_only_service_links_use_its_slot(tmp_path):
    topics = _topics_file(tmp_path, '[[topic]]\nname = "t"\nquery = "qwen"\nmax_age_days = 0\nsearch = ["gdelt", "google_news"]\n')
    crawler = get_crawler(NewsSpider, {"NEWS_TOPICS": str(topics), "NEWS_GDELT_URL": "http://gdelt.test", "NEWS_GOOGLE_NEWS_URL": "http://gnews.test"})
    spider = NewsSpider.from_crawler(crawler)

    def results(service: str, url: str, body: bytes) -> list:
        meta = {TOPICS: ("t",), SOURCE: service, SEARCH_QUERY: "qwen", "download_slot": f"search-{service}"}
        return list(spider.parse_search(TextResponse(url, body=body, encoding="utf-8", request=Request(url, meta=meta))))

    doc = {"articles": [{"url": "https://pub.example/news/qwen.html", "title": "Q", "seendate": "20261121T101500Z",
                        "domain": "pub.example", "language": "French"}]}
    [article] = results("gdelt", "http://gdelt.test/api/v2/doc/doc?query=qwen", json.dumps(doc).encode())
    assert article.meta[HINTS]["language"] == "fr" and article.meta[HINTS]["domain"] == "pub.example"
    assert "download_slot" not in article.meta  # a publisher page: its own host's slot, not GDELT's
    assert crawler.stats.get_value("news/search_empty/gdelt") is None
    assert results("gdelt", "http://gdelt.test/api/v2/doc/doc?query=qwen", b"{}") == []
    assert crawler.stats.get_value("news/search_empty/gdelt") == 1

    rss = ("<rss version='2.0'><channel><item><title>A</title><link>http://gnews.test/rss/articles/CBMiOPAQUE?oc=5</link></item>"
           f"<item><title>B</title><link>http://gnews.test/rss/articles/{google_token('https://pub.example/news/b.html')}?oc=5</link></item>"
           "</channel></rss>").encode()
    opaque, decoded = results("google_news", "http://gnews.test/rss/search?q=qwen", rss)
    assert opaque.meta["download_slot"] == "search-google_news" and opaque.meta["autothrottle_dont_adjust_delay"] is True
    assert decoded.url == "https://pub.example/news/b.html" and "download_slot" not in decoded.meta


def test_search_slot_is_left_when_a_service_link_redirects_to_the_publisher():
    mw = SearchSlotMiddleware({"google_news": "https://news.google.com", "bing_news": "https://www.bing.com", "gdelt": "https://api.gdeltproject.org"})
    meta = {"download_slot": "search-google_news", "autothrottle_dont_adjust_delay": True}
    link = Request("https://news.google.com/rss/articles/CBMi?oc=5", meta=dict(meta))
    mw.process_request(link)
    assert link.meta["download_slot"] == "search-google_news"
    redirected = link.replace(url="https://pub.example/news/story.html")  # as RedirectMiddleware builds it
    mw.process_request(redirected)
    assert "download_slot" not in redirected.meta and "autothrottle_dont_adjust_delay" not in redirected.meta


def test_search_slots_have_exact_delays():
    """Scrapy's delay jitter (DOWNLOAD_DELAY_JITTER, ±50%) is off for the services' slots."""
    from scrapy.core.downloader import Downloader

    crawler = get_crawler(NewsSpider, {"NEWS_SEARCH_DELAYS": {"bing_news": 2.0}, "DOWNLOAD_HANDLERS": {"http": None, "https": None}})

    async def delays() -> dict:
        downloader = Downloader(crawler)
        try:
            out = {}
            for slot in ("search-google_news", "search-bing_news", "search-gdelt", "pub.example"):
                key, found = downloader._get_slot(Request("https://pub.example/", meta={"download_slot": slot}))
                out[key] = ({found.download_delay() for _ in range(50)}, found.concurrency)
            return out
        finally:
            downloader.close()

    got = asyncio.run(delays())
    assert got["search-google_news"] == ({1.0}, 1) and got["search-bing_news"] == ({2.0}, 1) and got["search-gdelt"] == ({5.0}, 1)
    with pytest.raises(ValueError, match="NEWS_SEARCH_DELAYS: 'altavista'"):
        get_crawler(NewsSpider, {"NEWS_SEARCH_DELAYS": {"altavista": 1}})


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
            "-s", f"NEWS_SEARCH_DELAYS={NO_DELAYS}", "-s", "NEWS_ALLOW_PRIVATE_NETWORKS=True"]


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


def test_search_rate_limit_holds_under_autothrottle_and_publishers_are_not_held(tmp_path):
    """Three GDELT queries, 1 s apart exactly even with AutoThrottle on; the four publisher
    pages they find are fetched at once, in their own host's slot; empty answers counted."""
    delay = 1.0
    searches: list[float] = []
    pages: dict[str, float] = {}
    paths = [f"/news/2026/11/story-{i}.html" for i in range(4)]

    def page(handler):
        pages[handler.path] = time.monotonic()
        return Response(200, b"<html><body><p>short</p></body></html>", {"Content-Type": "text/html"})

    def gdelt(handler):
        searches.append(time.monotonic())
        query = parse_qs(urlsplit(handler.path).query)["query"][0]
        docs = {"alpha": {"articles": [{"url": publisher.base + p, "language": "English"} for p in paths]},
                "beta": {"articles": []}, "quiet": {}}
        return Response(200, json.dumps(docs[query]).encode(), {"Content-Type": "application/json"})

    def bing(handler):
        return Response(200, b"<?xml version='1.0'?><rss version='2.0'><channel><title>Bing</title></channel></rss>",
                        {"Content-Type": "application/rss+xml"})

    with FixtureServer(routes={p: page for p in paths}) as publisher, \
            FixtureServer(routes={"/api/v2/doc/doc": gdelt, "/news/search": bing}) as services:
        topics = _topics_file(tmp_path, "".join(
            f'[[topic]]\nname = "{name}"\nquery = "{name}"\nsearch = {search}\n'
            for name, search in (("alpha", '["gdelt"]'), ("beta", '["gdelt"]'), ("quiet", '["gdelt", "bing_news"]'))))
        result = run_crawl(
            topics, tmp_path / "news.db", "-s", f"NEWS_GDELT_URL={services.base}", "-s", f"NEWS_BING_NEWS_URL={services.base}",
            "-s", f'NEWS_SEARCH_DELAYS={{"gdelt": {delay}, "bing_news": 0}}', "-s", "NEWS_ALLOW_PRIVATE_NETWORKS=True",
            "-s", "AUTOTHROTTLE_ENABLED=True", "-s", "AUTOTHROTTLE_START_DELAY=0",
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(searches) == 3, searches
    gaps = [b - a for a, b in zip(searches, searches[1:])]
    assert all(gap >= delay - 0.05 for gap in gaps), gaps  # AutoThrottle and jitter would shorten them
    assert sorted(pages) == paths
    assert max(pages.values()) - min(pages.values()) < delay, pages  # not one at a time under GDELT's delay
    stats = json.loads(next(open_store(tmp_path / "news.db")["crawl_runs"].rows)["stats"])
    assert stats["news/search_empty/gdelt"] == 2 and stats["news/search_empty/bing_news"] == 1
    assert stats.get("news/errors", 0) == 0


def test_a_stored_article_found_again_by_a_new_source_records_it(tmp_path):
    """Crawl 1 stores an article from a feed; crawl 2 finds it through GDELT too: it is not
    fetched again, and article_sources gains the GDELT row."""
    art = "/news/2026/11/anthropic-alibaba-distillation.html"
    with FixtureServer(root=DEMO_SITE) as publisher:
        def gdelt(handler):
            return Response(200, json.dumps({"articles": [{"url": publisher.base + art}]}).encode(), {"Content-Type": "application/json"})

        def feed(handler):
            body = f"<rss version='2.0'><channel><title>f</title><item><title>A</title><link>{publisher.base}{art}</link></item></channel></rss>"
            return Response(200, body.encode(), {"Content-Type": "application/rss+xml"})

        with FixtureServer(routes={"/api/v2/doc/doc": gdelt, "/feed.xml": feed}) as services:
            topic = f"[[topic]]\nname = \"ai\"\nquery = '{QUERY}'\nmax_age_days = 0\nfeeds = [\"{services.base}/feed.xml\"]\n"
            first = run_crawl(_topics_file(tmp_path, topic), tmp_path / "news.db", *_settings(services.base))
            second = run_crawl(_topics_file(tmp_path, topic + 'search = ["gdelt"]\n'), tmp_path / "news.db", *_settings(services.base))
        fetched = publisher.paths().count(art)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    assert fetched == 1
    db = open_store(tmp_path / "news.db")
    sources = {(urlsplit(r["url"]).path, r["topic"], r["kind"], r["query"]) for r in db["article_sources"].rows}
    gdelt_query = translate(parse_query(QUERY), "gdelt")
    assert sources == {(art, "ai", "feed", ""), (art, "ai", "gdelt", gdelt_query)}
    runs = {r["id"]: r for r in db["crawl_runs"].rows}
    assert {r["run_id"] for r in db["article_sources"].rows} == set(runs)  # one row from each crawl
