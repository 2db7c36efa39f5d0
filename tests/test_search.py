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

from crawler import signals
from crawler.middlewares import SearchSlotMiddleware
from crawler.query import parse_query
from crawler.search import (
    SearchRateLimited,
    SearchResponseError,
    bing_publisher_url,
    google_article_id,
    google_article_page_url,
    google_batchexecute_body,
    google_signature,
    is_google_url,
    parse_google_batchexecute,
    parse_results,
    resolve_google_link,
    search_url,
    translate,
)
from crawler.spiders.meta import HINTS, SEARCH_QUERY, SOURCE, TOPICS
from crawler.spiders.news import NewsSpider
from demo.server import FixtureServer, Response
from tests.conftest import DEMO_SITE, open_store, run_crawl

QUERY = 'Anthropic AND (Alibaba OR Qwen OR distillation) AND NOT "stock tips"'
NO_DELAYS = json.dumps({s: 0 for s in ("google_news", "bing_news", "gdelt")})


def google_token(url: str) -> str:
    """An /rss/articles/ id in the older decodable format: base64 of a protobuf holding the URL."""
    raw = url.encode()
    return base64.urlsafe_b64encode(b"\x08\x13\x22" + bytes([len(raw)]) + raw + b"\xd2\x01\x00").decode().rstrip("=")


def google_new_token(tag: str) -> str:
    """An id in the format used since July 2024: the protobuf string is an opaque token
    beginning with AU_yqL (no URL), long enough for a two-byte length."""
    raw = (b"AU_yqL" + tag.encode() * 200)[:170]
    return base64.urlsafe_b64encode(b"\x08\x13\x22" + bytes([0x80 | (len(raw) & 0x7F), len(raw) >> 7]) + raw).decode().rstrip("=")


def google_article_page(signature: str, timestamp: int) -> bytes:
    """Google's article page for a new-format id: a JavaScript page whose c-wiz element carries
    the signature and timestamp that authorise the batchexecute call."""
    return (
        "<!doctype html><html><head><title>Google News</title></head><body><c-wiz jsrenderer='x'>"
        f"<div jscontroller='aLI87' data-n-a-id='ignored' data-n-a-sg='{signature}' data-n-a-ts='{timestamp}' data-n-a-ct='0'></div>"
        "</c-wiz><script>window.location.replace(decode(document.querySelector('c-wiz')))</script></body></html>"
    ).encode()


def batchexecute_answer(url: str) -> bytes:
    """Google's batchexecute answer: )]}' and a blank line, then JSON whose wrb.fr entry holds
    a JSON string ["garturlres", url, ...]."""
    rows = [["wrb.fr", "Fbv4je", json.dumps(["garturlres", url, 1]), None, None, None, "generic"], ["di", 21], ["af.httprm", 20, "-4211", 3]]
    return (")]}'\n\n" + json.dumps(rows)).encode()


def batchexecute_request(body: bytes) -> list:
    """The garturlreq array sent in a batchexecute form body (f.req=<json>)."""
    fields = parse_qs(body.decode("ascii"))
    assert list(fields) == ["f.req"]
    [[[rpc, inner, none, generic]]] = json.loads(fields["f.req"][0])
    assert (rpc, none, generic) == ("Fbv4je", None, "generic")
    return json.loads(inner)


def test_translation_per_service():
    q = parse_query(QUERY)
    assert translate(q, "google_news") == 'anthropic (alibaba OR qwen OR distillation) -"stock tips"'
    assert translate(q, "bing_news") == 'anthropic (alibaba OR qwen OR distillation) -"stock tips"'
    assert translate(q, "gdelt") == 'anthropic (alibaba OR qwen OR distillation) -"stock tips"'
    nested = parse_query("(a b) OR (c OR (d e))")
    assert translate(nested, "google_news") == "(a b) OR (c OR (d e))"
    assert translate(nested, "gdelt") == "(a OR b OR c OR d OR e)"  # GDELT cannot nest: broadened, never narrowed
    # NOT over an OR of terms: each term excluded (De Morgan); NOT over anything else is dropped (broader)
    excluded = parse_query('anthropic NOT (stock OR "price target")')
    for service in ("google_news", "bing_news", "gdelt"):
        assert translate(excluded, service) == 'anthropic -stock -"price target"'
    assert translate(parse_query("anthropic NOT (stock tips)"), "google_news") == "anthropic"


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
    assert parse_qs(urlsplit(search_url("gdelt", "https://api.gdeltproject.org", q, max_age_days=7)).query)["timespan"] == ["7d"]
    # percent-encoded on the wire: spaces, quotes, parentheses and non-ASCII letters
    raw = urlsplit(search_url("bing_news", "https://www.bing.com", '(künstliche OR "ki gesetz") -x')).query
    assert raw.startswith("q=%28k%C3%BCnstliche%20OR%20%22ki%20gesetz%22%29%20-x&")
    raw = urlsplit(search_url("gdelt", "https://api.gdeltproject.org", 'anthropic (qwen OR "deep seek")')).query
    assert raw.startswith("query=anthropic%20%28qwen%20OR%20%22deep%20seek%22%29&")


def test_service_base_urls_default_to_the_public_services():
    from crawler import settings as project

    assert (project.NEWS_GOOGLE_NEWS_URL, project.NEWS_BING_NEWS_URL, project.NEWS_GDELT_URL) == (
        "https://news.google.com", "https://www.bing.com", "https://api.gdeltproject.org")


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
    # a direct link to a publisher whose name merely contains "bing" is the publisher's
    assert bing_publisher_url("https://www.climbing.com/news/route.html") == "https://www.climbing.com/news/route.html"
    # the configured service host (tests point it at 127.0.0.1) is Bing's: never a publisher
    local = "http://127.0.0.1:8123"
    assert bing_publisher_url(f"{local}/news/apiclick.aspx?url=" + quote(url, safe=""), local) == url
    assert bing_publisher_url(f"{local}/news/search?q=x", local) is None


def test_new_format_google_ids_are_resolved_through_google():
    token = google_new_token("story")
    link = f"https://news.google.com/rss/articles/{token}?oc=5"
    assert resolve_google_link(link) is None  # no URL in the id: not decodable offline
    assert google_article_id(link) == token and google_article_id("https://news.google.com/articles/Ab_-9") == "Ab_-9"
    assert google_article_id("https://news.google.com/rss/search?q=x") is None
    assert google_article_id("https://news.google.com/rss/articles/") is None
    assert google_article_page_url("http://127.0.0.1:81/", token) == f"http://127.0.0.1:81/rss/articles/{token}"

    # step 1: the signature and timestamp, from the element's attributes
    assert google_signature(google_article_page("AVz-sig_1", 1722500000)) == ("AVz-sig_1", 1722500000)
    assert google_signature(b"<html><body><div data-n-a-sg='s'></div></body></html>") is None  # no timestamp
    assert google_signature(b"<html><body><div data-n-a-sg='s' data-n-a-ts='soon'></div></body></html>") is None
    assert google_signature(b"<html><body><div data-n-a-sg='' data-n-a-ts='1'></div></body></html>") is None
    assert google_signature(b"") is None and google_signature(b"\xff\xfe<<>") is None

    # step 2: the form body, exactly the array Google's web app sends
    expected = json.loads(
        '["garturlreq",[["X","X",["X","X"],null,null,1,1,"US:en",null,1,null,null,null,null,null,0,1],'
        f'"X","X",1,[1,1,1],1,1,null,0,0,null,0],"{token}",1722500000,"AVz-sig_1"]'
    )
    assert batchexecute_request(google_batchexecute_body(token, 1722500000, "AVz-sig_1")) == expected

    # the answer
    url = "https://publisher.example/news/2026/11/story.html"
    assert parse_google_batchexecute(batchexecute_answer(url)) == url
    rows = json.dumps([["wrb.fr", "Fbv4je", json.dumps(["garturlres", url, 1]), None, None, None, "generic"]])
    chunked = f")]}}'\n\n{len(rows)}\n{rows}\n25\n[[\"e\",4,null,null,135]]\n"  # the length-prefixed variant
    assert parse_google_batchexecute(chunked.encode()) == url

    def error(body: bytes) -> str:
        with pytest.raises(SearchResponseError) as info:
            parse_google_batchexecute(body)
        return str(info.value)

    assert "prefix" in error(b"<html><body>Sorry, unusual traffic</body></html>")
    assert "not JSON" in error(b")]}'\n\n<html>garbage</html>")
    assert "no result" in error(b')]}\'\n\n[["wrb.fr","Fbv4je",null,null,null,[3],"generic"]]')
    assert "garturlres" in error(b')]}\'\n\n[["wrb.fr","Fbv4je","[\\"other\\"]",null,null,null,"generic"]]')
    assert "not an http(s) URL" in error(batchexecute_answer("javascript:alert(1)"))
    assert "not an http(s) URL" in error(batchexecute_answer("https://"))
    assert "no Fbv4je" in error(b')]}\'\n\n[["di",21]]')
    assert "no Fbv4je" in error(b")]}'\n\n{}")

    assert is_google_url("https://news.google.com/x", "https://news.google.com")
    assert is_google_url("https://consent.google.com/ml?continue=x", "https://news.google.com")
    assert is_google_url("http://127.0.0.1:81/a", "http://127.0.0.1:81")
    assert not is_google_url("http://127.0.0.1:82/a", "http://127.0.0.1:81")  # another port: another origin
    assert not is_google_url("https://notgoogle.com/a", "https://news.google.com")


def test_malformed_responses_raise_and_empty_ones_do_not():
    assert parse_results("gdelt", b"", "u") == [] and parse_results("gdelt", b"{}", "u") == []
    with pytest.raises(SearchResponseError):
        parse_results("gdelt", b"Your search contained a phrase that was too short.", "u")
    with pytest.raises(SearchResponseError):
        parse_results("google_news", b"<html>captcha</html>", "u")
    slow = b"Please limit requests to one every 5 seconds or contact kalev.leetaru5@gmail.com for larger queries."
    with pytest.raises(SearchRateLimited):
        parse_results("gdelt", slow, "u")
    # GDELT's known JSON faults (a raw tab, a stray backslash in a title) cost no record
    body = '{"articles": [{"url": "https://a.example/1", "title": "Tab\there"}, {"url": "https://a.example/2", "title": "C:\\e\\x and \\\\ok"}]}'
    assert "\t" in body and "\\e" in body
    assert [c.title for c in parse_results("gdelt", b'{"articles": [{"url": "https://a.example/3", "title": "C:\\users \\u00e9"}]}', "u")] == ["C:\\users \u00e9"]
    assert [(c.url, c.title) for c in parse_results("gdelt", body.encode(), "u")] == [
        ("https://a.example/1", "Tab\there"), ("https://a.example/2", "C:\\e\\x and \\ok")]
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

    token = google_new_token("a")
    rss = (f"<rss version='2.0'><channel><item><title>A</title><link>http://gnews.test/rss/articles/{token}?oc=5</link></item>"
           f"<item><title>B</title><link>http://gnews.test/rss/articles/{google_token('https://pub.example/news/b.html')}?oc=5</link></item>"
           "</channel></rss>").encode()
    page, decoded = results("google_news", "http://gnews.test/rss/search?q=qwen", rss)
    assert decoded.url == "https://pub.example/news/b.html" and "download_slot" not in decoded.meta  # decoded offline
    # a new-format id: its article page, then the batchexecute POST, both in Google's slot
    assert page.url == f"http://gnews.test/rss/articles/{token}" and page.method == "GET"
    assert page.meta["download_slot"] == "search-google_news" and page.meta["autothrottle_dont_adjust_delay"] is True
    assert page.meta["dont_redirect"] is True
    [post] = spider.parse_google_article(TextResponse(page.url, body=google_article_page("SIG", 1722500000), encoding="utf-8", request=page))
    assert post.method == "POST" and post.url == "http://gnews.test/_/DotsSplashUi/data/batchexecute"
    assert post.headers["Content-Type"] == b"application/x-www-form-urlencoded;charset=UTF-8"
    assert batchexecute_request(post.body)[2:] == [token, 1722500000, "SIG"]
    assert post.meta["download_slot"] == "search-google_news" and post.meta["autothrottle_dont_adjust_delay"] is True
    answer = batchexecute_answer("https://pub.example/news/a.html?utm_source=google_news")
    [article] = spider.parse_google_batchexecute(TextResponse(post.url, body=answer, encoding="utf-8", request=post))
    assert article.url == "https://pub.example/news/a.html" and "download_slot" not in article.meta  # canonical, own slot
    assert article.callback == spider.parse_article and article.meta[HINTS]["title"] == "A"
    # found by the search (its URL and query), not by the request that resolved the link
    assert spider.found_by(article.url) == (("t", "google_news", "http://gnews.test/rss/search?q=qwen", "qwen"),)


def test_searches_listing_an_id_being_resolved_share_its_outcome(tmp_path, monkeypatch):
    """A second search listing an id whose resolution is under way sends no request: it gets
    the publisher URL, or is reported unresolved, when the first resolution ends, also when
    that ends in an unexpected error."""
    import crawler.spiders.search_sources as search_sources

    topics = _topics_file(tmp_path, '[[topic]]\nname = "t"\nquery = "qwen"\nsearch = ["google_news"]\n'
                                    '[[topic]]\nname = "u"\nquery = "qwen OR alibaba"\nsearch = ["google_news"]\n')
    crawler = get_crawler(NewsSpider, {"NEWS_TOPICS": str(topics), "NEWS_GOOGLE_NEWS_URL": "http://gnews.test"})
    spider = NewsSpider.from_crawler(crawler)
    failed = []

    def record(url, kind, detail, topics, **_):
        failed.append((url, kind, detail, topics))

    crawler.signals.connect(record, signal=signals.fetch_failed)
    ok, broken = google_new_token("ok"), google_new_token("broken")
    rss = "".join(f"<item><title>{t}</title><link>http://gnews.test/rss/articles/{t}?oc=5</link></item>" for t in (ok, broken))
    rss = f"<rss version='2.0'><channel>{rss}</channel></rss>".encode()

    def search(topic: str) -> list:
        url = f"http://gnews.test/rss/search?q={topic}"
        meta = {TOPICS: (topic,), SOURCE: "google_news", SEARCH_QUERY: topic}
        return list(spider.parse_search(TextResponse(url, body=rss, encoding="utf-8", request=Request(url, meta=meta))))

    pages = search("t")
    assert [p.url.rsplit("/", 1)[-1] for p in pages] == [ok, broken]
    assert search("u") == []  # both ids are being resolved: no second request
    page_ok, page_broken = pages
    [post] = spider.parse_google_article(TextResponse(page_ok.url, body=google_article_page("SIG", 1), encoding="utf-8", request=page_ok))
    answer = batchexecute_answer("https://pub.example/news/ok.html")
    articles = list(spider.parse_google_batchexecute(TextResponse(post.url, body=answer, encoding="utf-8", request=post)))
    assert [a.url for a in articles] == ["https://pub.example/news/ok.html"]  # one request, both topics
    assert spider.found_by("https://pub.example/news/ok.html") == (
        ("t", "google_news", "http://gnews.test/rss/search?q=t", "t"), ("u", "google_news", "http://gnews.test/rss/search?q=u", "u"))

    def explode(body):
        raise ValueError("unexpected page")

    monkeypatch.setattr(search_sources, "google_signature", explode)
    body = google_article_page("SIG", 1)
    assert list(spider.parse_google_article(TextResponse(page_broken.url, body=body, encoding="utf-8", request=page_broken))) == []
    assert [(kind, detail, topics) for _, kind, detail, topics in failed] == [
        ("unresolved_link", "google_news: article page: ValueError: unexpected page", ("t",)),
        ("unresolved_link", "google_news: article page: ValueError: unexpected page", ("u",)),
    ]
    # listed again later in the crawl: no request to Google; the article is already scheduled
    # (the listing joins it) and the broken id is known to be unresolved
    assert search("u") == []
    assert [(kind, topics) for _, kind, _, topics in failed[2:]] == [("unresolved_link", ("u",))]


def test_google_resolution_failures_are_unresolved_with_their_step(tmp_path):
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    topics = _topics_file(tmp_path, '[[topic]]\nname = "t"\nquery = "qwen"\nmax_age_days = 0\nsearch = ["google_news"]\n')
    crawler = get_crawler(NewsSpider, {"NEWS_TOPICS": str(topics), "NEWS_GOOGLE_NEWS_URL": "http://gnews.test"})
    spider = NewsSpider.from_crawler(crawler)
    failed = []

    def record(url, kind, detail, **_):
        failed.append((url, kind, detail))

    crawler.signals.connect(record, signal=signals.fetch_failed)  # a weak reference: kept alive by the name
    link = f"http://gnews.test/rss/articles/{google_new_token('x')}?oc=5"
    rss = f"<rss version='2.0'><channel><item><title>A</title><link>{link}</link></item></channel></rss>".encode()
    search = "http://gnews.test/rss/search?q=qwen"
    meta = {TOPICS: ("t",), SOURCE: "google_news", SEARCH_QUERY: "qwen"}
    [page] = spider.parse_search(TextResponse(search, body=rss, encoding="utf-8", request=Request(search, meta=meta)))

    def step1(body: bytes, status: int = 200, headers=None) -> list:
        return list(spider.parse_google_article(TextResponse(page.url, status=status, body=body, headers=headers, encoding="utf-8", request=page)))

    [post] = step1(google_article_page("SIG", 1))

    def step2(body: bytes, status: int = 200) -> list:
        return list(spider.parse_google_batchexecute(TextResponse(post.url, status=status, body=body, encoding="utf-8", request=post)))

    assert step1(b"<html><body><script>x()</script></body></html>") == []
    assert step1(b"", 302, {"Location": "https://consent.google.com/ml?continue=x"}) == []  # a redirect within Google
    [redirected] = step1(b"", 302, {"Location": "https://pub.example/news/r.html"})  # the older behaviour: followed
    assert redirected.url == "https://pub.example/news/r.html" and "download_slot" not in redirected.meta
    assert step2(b")]}'\n\n<html>garbage</html>") == []
    assert step2(batchexecute_answer("javascript:alert(1)")) == []
    assert step2(batchexecute_answer("https://news.google.com/read/x")) == []  # back at Google: not a publisher
    assert step2(b"", 302) == []
    failure = Failure(HttpError(TextResponse(post.url, status=429, body=b"", request=post), "429"))
    failure.request = post
    assert list(spider.on_google_error(failure)) == []  # after the retries

    assert {url for url, _, _ in failed} == {link} and {kind for _, kind, _ in failed} == {"unresolved_link"}
    details = [detail for _, _, detail in failed]
    assert details[0] == "google_news: article page: no data-n-a-sg / data-n-a-ts attributes"
    assert details[1].startswith("google_news: article page: HTTP 302 to 'https://consent.google.com/")
    assert details[2].startswith("google_news: batchexecute: not JSON")
    assert details[3].startswith("google_news: batchexecute: not an http(s) URL")
    assert details[4].startswith("google_news: batchexecute: 'https://news.google.com/read/x' is not a publisher URL")
    assert details[5] == "google_news: batchexecute: HTTP 302"
    assert details[6] == "google_news: batchexecute: HTTP 429"
    assert crawler.stats.get_value("news/search_unresolved") == 7


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


class ServicesServer(FixtureServer):
    """The fixture server, answering POST too (a route sees the request body as ``handler.body``)."""

    def _handler_class(self):
        class Handler(super()._handler_class()):
            def do_POST(self) -> None:  # noqa: N802
                self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._serve(head=False)

        return Handler


# new-format Google ids of the end-to-end fixture: resolved through batchexecute, and one
# whose batchexecute answer is garbage
RESOLVED, GARBAGE = google_new_token("resolved"), google_new_token("garbage")


def _google_resolution(received: dict, answers: dict) -> dict:
    """Routes of Google's article pages (signature = "sig-" + the id's tail, timestamp 1722500000)
    and of batchexecute, which answers ``answers[id]``; the POSTs are recorded in ``received``."""

    def article_page(handler):
        token = urlsplit(handler.path).path.rsplit("/", 1)[-1]
        received.setdefault("article_pages", []).append(token)
        return Response(200, google_article_page("sig-" + token[-8:], 1722500000), {"Content-Type": "text/html; charset=utf-8"})

    def batchexecute(handler):
        request = batchexecute_request(handler.body)
        received.setdefault("batchexecute", []).append((handler.command, handler.headers.get("Content-Type"), request))
        return Response(200, answers[request[2]], {"Content-Type": "application/json; charset=utf-8"})

    return {**{f"/rss/articles/{token}": article_page for token in answers}, "/_/DotsSplashUi/data/batchexecute": batchexecute}


def _services(publisher: str, received: dict) -> dict:
    art = "/news/2026/11/"

    def google_search(handler):
        received["google_news"] = handler.path
        items = [
            f"<item><title>A</title><link>{{svc}}/rss/articles/{google_token(publisher + art + 'anthropic-alibaba-distillation.html')}?oc=5</link>"
            "<pubDate>Fri, 20 Nov 2026 09:30:00 GMT</pubDate><source url=\"https://publisher.example\">Ledger</source></item>",
            f"<item><title>B</title><link>{{svc}}/rss/articles/{RESOLVED}?oc=5</link></item>",
            f"<item><title>C</title><link>{{svc}}/rss/articles/{GARBAGE}?oc=5</link></item>",
            "<item><title>D</title><link>{svc}/rss/articles/CBMiOPAQUEredirect?oc=5</link></item>",
            "<item><title>E</title><link>{svc}/rss/articles/CBMiOPAQUEnoredirect?oc=5</link></item>",
        ]
        body = "<?xml version='1.0'?><rss version='2.0'><channel><title>Google News</title>" + "".join(items) + "</channel></rss>"
        return Response(200, body.replace("{svc}", received["base"]).encode(), {"Content-Type": "application/rss+xml"})

    def google_redirect(handler):  # how ids were resolved before July 2024: still followed
        return Response(302, b"", {"Location": publisher + art + "wire-anthropic-alibaba.html"})

    def google_stuck(handler):  # an article page without the signature attributes
        return Response(200, b"<html><body><script>window.location='elsewhere'</script>Opening...</body></html>", {"Content-Type": "text/html"})

    answers = {
        RESOLVED: batchexecute_answer(publisher + art + "claude-distillation-defenses.html?utm_source=google_news"),
        GARBAGE: b")]}'\n\n<!doctype html><html><body>Something went wrong</body></html>",
    }

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
        **_google_resolution(received, answers),
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
        services = ServicesServer(routes=_services(publisher.base, received))
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

    # Google: the old-format id decoded offline (no request); each new-format id's article
    # page fetched, then batchexecute POSTed with the id, timestamp and signature from that page
    assert sorted(received["article_pages"]) == sorted([RESOLVED, GARBAGE])
    posts = sorted(received["batchexecute"], key=lambda post: post[2][2] != RESOLVED)
    assert [(method, ctype, request[2:]) for method, ctype, request in posts] == [
        ("POST", "application/x-www-form-urlencoded;charset=UTF-8", [RESOLVED, 1722500000, "sig-" + RESOLVED[-8:]]),
        ("POST", "application/x-www-form-urlencoded;charset=UTF-8", [GARBAGE, 1722500000, "sig-" + GARBAGE[-8:]]),
    ]

    db = open_store(tmp_path / "news.db")
    art = "/news/2026/11/"
    stored = {r["url"]: r for r in db["articles"].rows}
    assert {urlsplit(u).path for u in stored} == {art + p for p in (
        "anthropic-alibaba-distillation.html",  # Google, old format
        "claude-distillation-defenses.html",  # Google, new format, through batchexecute
        "wire-anthropic-alibaba.html",  # Google, a link that redirects
        "claude-scraping-opinion.html",  # Bing and GDELT
    )}
    assert publisher.base + art + "claude-distillation-defenses.html" in stored  # canonicalised: no utm_source
    # found by Bing and GDELT, fetched once
    assert publisher_paths.count(art + "claude-scraping-opinion.html") == 1
    sources = {(urlsplit(r["url"]).path, r["kind"], r["source"], r["query"]) for r in db["article_sources"].rows}
    google_search = services.base + received["google_news"]
    for page in ("anthropic-alibaba-distillation.html", "claude-distillation-defenses.html", "wire-anthropic-alibaba.html"):
        assert (art + page, "google_news", google_search, expected_query) in sources  # the search, not batchexecute
    assert {(path, kind) for path, kind, _, _ in sources if path == art + "claude-scraping-opinion.html"} == {
        (art + "claude-scraping-opinion.html", "bing_news"), (art + "claude-scraping-opinion.html", "gdelt")}
    queries = {query for *_, query in sources}
    assert queries == {expected_query}
    unresolved = {r["url"]: r["detail"] for r in db["fetch_errors"].rows if r["kind"] == "unresolved_link"}
    base = services.base
    assert unresolved.pop(f"{base}/rss/articles/{GARBAGE}?oc=5").startswith("google_news: batchexecute: not JSON after the )]}' prefix: '<!doctype")
    assert unresolved == {
        f"{base}/rss/articles/CBMiOPAQUEnoredirect?oc=5": "google_news: article page: no data-n-a-sg / data-n-a-ts attributes",
        "http://www.bing.com/news/apiclick.aspx?ref=FexRss&tid=10": "bing_news: no publisher URL in the link",
    }
    run = next(db["crawl_runs"].rows)
    assert json.loads(run["stats"])["news/search_unresolved"] == 3
    assert run["irrelevant"] == 1  # the "stock tips" article found by GDELT


def test_google_resolution_is_paced_in_googles_slot_and_its_url_is_checked_like_any_link(tmp_path):
    """The search, the article page and the batchexecute POST go to Google one at a time,
    NEWS_SEARCH_DELAYS apart even under AutoThrottle; the publisher URL they yield is on a
    non-public address that is no configured source: refused by network safety, not fetched."""
    delay, received, times = 0.5, {}, []
    with FixtureServer(root=DEMO_SITE) as publisher:
        routes = _google_resolution(received, {RESOLVED: batchexecute_answer(publisher.base + "/news/2026/11/claude-distillation-defenses.html")})

        def timed(route):
            def answer(handler):
                times.append(time.monotonic())
                return route(handler)
            return answer

        def google_search(handler):
            body = f"<rss version='2.0'><channel><title>G</title><item><title>B</title><link>{services.base}/rss/articles/{RESOLVED}?oc=5</link></item></channel></rss>"
            return Response(200, body.encode(), {"Content-Type": "application/rss+xml"})

        with ServicesServer(routes={path: timed(route) for path, route in {**routes, "/rss/search": google_search}.items()}) as services:
            topics = _topics_file(tmp_path, f"[[topic]]\nname = \"ai\"\nquery = '{QUERY}'\nsearch = [\"google_news\"]\nmax_age_days = 0\n")
            result = run_crawl(topics, tmp_path / "news.db", "-s", f"NEWS_GOOGLE_NEWS_URL={services.base}",
                               "-s", f'NEWS_SEARCH_DELAYS={{"google_news": {delay}}}',
                               "-s", "AUTOTHROTTLE_ENABLED=True", "-s", "AUTOTHROTTLE_START_DELAY=0")
        publisher_paths = publisher.paths()
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(times) == 3 and len(received["batchexecute"]) == 1, times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= delay - 0.05 for gap in gaps), gaps
    assert publisher_paths == []
    db = open_store(tmp_path / "news.db")
    errors = {r["url"]: r["kind"] for r in db["fetch_errors"].rows}
    assert errors == {publisher.base + "/news/2026/11/claude-distillation-defenses.html": "refused_address"}
    assert db["articles"].count == 0


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


def test_gdelt_asking_to_slow_down_is_asked_again(tmp_path):
    """GDELT answers "limit requests to one every 5 seconds" as plain text: the search is
    asked again (twice at most) in GDELT's slot, then counted as a malformed answer."""
    asked: list[str] = []
    slow = b"Please limit requests to one every 5 seconds or contact kalev.leetaru5@gmail.com for larger queries."
    with FixtureServer(root=DEMO_SITE) as publisher:

        def gdelt(handler):
            query = parse_qs(urlsplit(handler.path).query)["query"][0]
            asked.append(query)
            if query == "qwen" or asked.count(query) == 1:  # "qwen": always too fast
                return Response(200, slow, {"Content-Type": "text/plain"})
            doc = {"articles": [{"url": publisher.base + "/news/2026/11/anthropic-alibaba-distillation.html", "title": "A", "seendate": "20261121T101500Z"}]}
            return Response(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

        with FixtureServer(routes={"/api/v2/doc/doc": gdelt}) as services:
            topics = tmp_path / "topics.toml"
            topics.write_text('[[topic]]\nname = "a"\nquery = "anthropic"\nsearch = ["gdelt"]\nmax_age_days = 0\n'
                              '[[topic]]\nname = "q"\nquery = "qwen"\nsearch = ["gdelt"]\nmax_age_days = 0\n')
            result = run_crawl(topics, tmp_path / "news.db", *_settings(services.base))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert asked.count("anthropic") == 2 and asked.count("qwen") == 3
    db = open_store(tmp_path / "news.db")
    assert [urlsplit(r["url"]).path for r in db["articles"].rows] == ["/news/2026/11/anthropic-alibaba-distillation.html"]
    (error,) = db["fetch_errors"].rows
    assert error["kind"] == "bad_search_response" and "asked to slow down" in error["detail"] and "(2 retries)" in error["detail"]
    assert "qwen" in error["url"] and next(db["crawl_runs"].rows)["errors"] == 1


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


def test_a_google_id_is_resolved_once_and_remembered_across_crawls(tmp_path):
    """Two topics whose searches list the same new-format ids: each id's article page and
    batchexecute are requested once, and the article is found by both searches. The next
    crawl takes the resolved id's publisher URL from google_links (no request to Google
    for it); an id that could not be resolved is asked again."""
    received: dict = {}
    searches = []
    with FixtureServer(root=DEMO_SITE) as publisher:
        target = publisher.base + "/news/2026/11/claude-distillation-defenses.html"
        routes = _google_resolution(received, {RESOLVED: batchexecute_answer(target), GARBAGE: b")]}'\n\nnot json"})

        def google_search(handler):
            searches.append(handler.path)
            items = "".join(f"<item><title>{t}</title><link>{services.base}/rss/articles/{t}?oc=5</link></item>" for t in (RESOLVED, GARBAGE))
            return Response(200, f"<rss version='2.0'><channel><title>G</title>{items}</channel></rss>".encode(), {"Content-Type": "application/rss+xml"})

        with ServicesServer(routes={**routes, "/rss/search": google_search}) as services:
            topics = _topics_file(tmp_path, (
                f"[[topic]]\nname = \"a\"\nquery = '{QUERY}'\nsearch = [\"google_news\"]\nmax_age_days = 0\n"
                "[[topic]]\nname = \"b\"\nquery = 'Claude'\nsearch = [\"google_news\"]\nmax_age_days = 0\n"))
            first = run_crawl(topics, tmp_path / "news.db", *_settings(services.base))
            crawl1 = {key: list(value) for key, value in received.items()}
            received.clear()
            db = open_store(tmp_path / "news.db")
            db["google_links"].insert({"id": "CBMiOLD", "url": "https://pub.example/old", "resolved_at": "2026-01-01T00:00:00+00:00"})
            db.conn.commit()
            second = run_crawl(topics, tmp_path / "news.db", *_settings(services.base))
        publisher_paths = publisher.paths()
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-3000:] + second.stderr[-3000:]
    assert len(searches) == 4  # two topics, two crawls
    assert sorted(crawl1["article_pages"]) == sorted([RESOLVED, GARBAGE])
    assert sorted(post[2][2] for post in crawl1["batchexecute"]) == sorted([RESOLVED, GARBAGE])
    assert received["article_pages"] == [GARBAGE] and [post[2][2] for post in received["batchexecute"]] == [GARBAGE]
    assert publisher_paths.count("/news/2026/11/claude-distillation-defenses.html") == 1
    db = open_store(tmp_path / "news.db")
    assert [(r["id"], r["url"]) for r in db["google_links"].rows] == [(RESOLVED, target)]  # the old row forgotten
    assert {r["topic"] for r in db["article_sources"].rows_where("url = ?", [target])} == {"a", "b"}
    assert {r["topic"] for r in db["article_topics"].rows_where("url = ?", [target])} == {"a", "b"}
    runs = list(db["crawl_runs"].rows_where(order_by="id"))
    stats = [json.loads(r["stats"]) for r in runs]
    assert "news/google_links_cached" not in stats[0] and stats[1]["news/google_links_cached"] == 1
    assert stats[0]["news/search_unresolved"] == 2 and stats[1]["news/search_unresolved"] == 2  # GARBAGE, for each topic


def test_a_stored_google_answer_that_is_refused_makes_the_spider_ask_google(tmp_path):
    """google_links answers the article-page request with a redirect; when the spider no
    longer accepts its URL as a publisher's (here: it points back at Google), it asks Google
    again with a request the cache leaves alone."""
    from crawler.middlewares import GoogleLinkCacheMiddleware
    from crawler.spiders.meta import GOOGLE_CACHED, GOOGLE_NO_CACHE
    from pipelines.db import open_db

    topics = _topics_file(tmp_path, '[[topic]]\nname = "t"\nquery = "qwen"\nsearch = ["google_news"]\n')
    db_path = tmp_path / "news.db"
    crawler = get_crawler(NewsSpider, {"NEWS_TOPICS": str(topics), "NEWS_DB": str(db_path), "NEWS_GOOGLE_NEWS_URL": "http://gnews.test"})
    spider = NewsSpider.from_crawler(crawler)
    token = google_new_token("cached")
    db = open_db(db_path)
    db["google_links"].insert({"id": token, "url": "http://gnews.test/read/elsewhere", "resolved_at": "2026-12-01T00:00:00+00:00"})
    middleware = GoogleLinkCacheMiddleware.from_crawler(crawler)

    rss = f"<rss version='2.0'><channel><item><title>A</title><link>http://gnews.test/rss/articles/{token}?oc=5</link></item></channel></rss>"
    url = "http://gnews.test/rss/search?q=qwen"
    meta = {TOPICS: ("t",), SOURCE: "google_news", SEARCH_QUERY: "qwen"}
    [page] = spider.parse_search(TextResponse(url, body=rss.encode(), encoding="utf-8", request=Request(url, meta=meta)))
    cached = middleware.process_request(page)
    assert cached.status == 302 and cached.headers["Location"] == b"http://gnews.test/read/elsewhere" and page.meta[GOOGLE_CACHED]
    assert crawler.stats.get_value("news/google_links_cached") == 1
    [again] = spider.parse_google_article(cached)
    assert again.url == page.url and again.meta[GOOGLE_NO_CACHE] and again.callback == spider.parse_google_article
    assert middleware.process_request(again) is None  # goes to Google
