"""The ``news`` spider: topic sources -> candidate articles -> article responses -> items.

    scrapy crawl news                       # every topic in NEWS_TOPICS
    scrapy crawl news -a topic=ai-model-theft

Discovery reads feeds (RSS, Atom, JSON Feed), sitemaps (index, gzip, Google News; a bare
site root means "the Sitemap: lines of its robots.txt") and listing pages (article-looking
same-site links, one level). Every URL is canonicalised before anything else; an article
listed by several sources or topics is fetched once, carrying all its topics.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from scrapy.linkextractors import LinkExtractor
from scrapy.settings import SETTINGS_PRIORITIES
from twisted.python.failure import Failure

from crawler import signals
from crawler.discovery import (
    Candidate,
    looks_like_article_url,
    looks_like_feed,
    parse_feed,
    parse_sitemap,
    sitemaps_from_robots,
)
from crawler.items import ArticleItem
from crawler.search import (
    DEFAULT_DELAYS,
    GOOGLE_FORM_CONTENT_TYPE,
    SERVICES,
    SearchResponseError,
    bing_publisher_url,
    google_article_id,
    google_article_page_url,
    google_batchexecute_body,
    google_batchexecute_url,
    google_signature,
    is_google_url,
    parse_google_batchexecute,
    parse_results,
    resolve_google_link,
    search_url,
    translate,
)
from crawler.stats import count
from crawler.topics import Topic, TopicsError, load_topics, select_topics
from crawler.urls import RefusedAddress, canonical_url, origin

logger = logging.getLogger(__name__)

# meta keys
TOPICS = "news_topics"  # tuple of topic names
ARTICLE = "news_article"  # True on article requests
HINTS = "news_hints"  # what the source said: title, published, published_source
SOURCE = "news_source"  # feed | sitemap | robots | page | a search service, on discovery requests
SEARCH_QUERY = "news_search_query"  # the query sent to a search service
KEY = "news_key"  # the canonical URL an article was scheduled under (before redirects)
SEARCH_URL = "news_search_url"  # on requests resolving a Google News link: the search that listed it
GOOGLE_LINK = "news_google_link"  # on those requests: (the search result, the resolution step)
_FETCHED = ((), ())  # NewsSpider._scheduled value of a URL whose page was handled
# meta of a request to a search service's own host: its download slot, spaced exactly by
# NEWS_SEARCH_DELAYS (AutoThrottle would bring every slot's delay down to the latency)
_NO_THROTTLE = {"autothrottle_dont_adjust_delay": True}
_REDIRECTS = [301, 302, 303, 307, 308]


def search_slot(service: str) -> str:
    """The download slot of ``service`` (see NewsSpider.update_settings)."""
    return f"search-{service}"


class NewsSpider(scrapy.Spider):
    name = "news"

    def __init__(self, topic: str | None = None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.topic_filter = topic
        self.topics: tuple[Topic, ...] = ()
        # canonical URL -> (topics, sources) for articles scheduled in this crawl; a source
        # is (topic, kind, source URL, search query or ""). Tuples, not sets (a long crawl
        # holds one entry per URL), and _FETCHED once the page has been handled.
        self._scheduled: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, str, str], ...]]] = {}

    @classmethod
    def update_settings(cls, settings):
        """Give each search service its own download slot (DOWNLOAD_SLOTS ``search-<service>``):
        one request at a time, NEWS_SEARCH_DELAYS seconds apart, without Scrapy's delay jitter."""
        super().update_settings(settings)
        delays = {**DEFAULT_DELAYS, **settings.getdict("NEWS_SEARCH_DELAYS")}
        for service, delay in delays.items():
            if service not in SERVICES or not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
                raise ValueError(
                    f"NEWS_SEARCH_DELAYS: {service!r}: {delay!r} is not valid; give seconds (>= 0) for any of "
                    f"{', '.join(SERVICES)}, e.g. NEWS_SEARCH_DELAYS = {{\"gdelt\": 5.0}}"
                )
        slots = settings.getdict("DOWNLOAD_SLOTS")
        for service, delay in delays.items():
            slots[search_slot(service)] = {"concurrency": 1, "delay": float(delay), "jitter": 0}
        priority = max(settings.getpriority("DOWNLOAD_SLOTS") or 0, SETTINGS_PRIORITIES["spider"])
        settings.set("DOWNLOAD_SLOTS", slots, priority=priority)

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.max_links_per_page = settings.getint("NEWS_MAX_LINKS_PER_PAGE", 200)
        spider.max_sitemap_urls = settings.getint("NEWS_MAX_SITEMAP_URLS", 50_000)
        spider.sitemap_max_size = settings.getint("DOWNLOAD_MAXSIZE", 50 * 1024 * 1024) or 50 * 1024 * 1024
        try:
            spider.topics = select_topics(load_topics(settings.get("NEWS_TOPICS")), spider.topic_filter)
        except TopicsError as exc:
            # a clean one-line error instead of a traceback: the crawl stops before any request
            spider.config_error = str(exc)
        else:
            spider.config_error = None
        spider._link_extractor = LinkExtractor(unique=True)
        spider.search_bases = {
            "google_news": settings.get("NEWS_GOOGLE_NEWS_URL", "https://news.google.com"),
            "bing_news": settings.get("NEWS_BING_NEWS_URL", "https://www.bing.com"),
            "gdelt": settings.get("NEWS_GDELT_URL", "https://api.gdeltproject.org"),
        }
        spider.google_locale = (settings.get("NEWS_GOOGLE_NEWS_HL", "en-US"), settings.get("NEWS_GOOGLE_NEWS_GL", "US"))
        return spider

    # -- start ------------------------------------------------------------------------
    async def start(self):
        if self.config_error:
            logger.error("Bad topics configuration: %s", self.config_error)
            raise CloseSpider("config_error")
        logger.info("Crawling %d topic(s): %s", len(self.topics), ", ".join(t.name for t in self.topics))
        # one request per source URL, carrying every topic that lists it
        sources: dict[tuple[str, str], set[str]] = {}
        for topic in self.topics:
            for url in topic.feeds:
                sources.setdefault(("feed", url), set()).add(topic.name)
            for url in topic.sitemaps:
                kind = "robots" if urlsplit(url).path in ("", "/") else "sitemap"
                if kind == "robots":
                    url = url.rstrip("/") + "/robots.txt"
                sources.setdefault((kind, url), set()).add(topic.name)
            for url in topic.pages:
                sources.setdefault(("page", url), set()).add(topic.name)
        for (kind, url), names in sources.items():
            yield self._source_request(url, kind, tuple(sorted(names)))
        for topic in self.topics:
            for service in topic.search:
                query = translate(topic.query, service)
                url = search_url(service, self.search_bases[service], query, max_age_days=topic.max_age_days, locale=self.google_locale)
                logger.info("Searching %s for topic %s: %s", service, topic.name, query)
                yield scrapy.Request(
                    url,
                    callback=self.parse_search,
                    errback=self.on_error,
                    meta={TOPICS: (topic.name,), SOURCE: service, SEARCH_QUERY: query, "download_slot": search_slot(service), **_NO_THROTTLE},
                    dont_filter=True,
                    priority=10,
                )

    def _source_request(self, url: str, kind: str, topics: tuple[str, ...]) -> scrapy.Request:
        callback = {
            "feed": self.parse_feed,
            "sitemap": self.parse_sitemap,
            "robots": self.parse_robots,
            "page": self.parse_listing,
        }[kind]
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.on_error,
            meta={TOPICS: topics, SOURCE: kind},
            dont_filter=True,
            priority=10,  # discovery first: it feeds the article queue
        )

    # -- discovery callbacks ------------------------------------------------------------
    def parse_feed(self, response: Response):
        if self._not_modified(response):
            return
        candidates = parse_feed(response.body, response.url)
        if not candidates and not looks_like_feed(response.body):
            count(self.crawler.stats, "errors", response.meta[TOPICS])
            logger.warning("Feed %s: not an RSS, Atom or JSON feed", response.url)
            self._fail(response.url, "bad_feed", "not an RSS, Atom or JSON feed", response.meta[TOPICS])
            return
        logger.info("Feed %s: %d item(s)", response.url, len(candidates))
        yield from self._schedule(candidates, response, "feed")

    def parse_sitemap(self, response: Response):
        if self._not_modified(response):
            return
        doc = parse_sitemap(response.body, response.url, self.max_sitemap_urls, self.sitemap_max_size)
        topics = response.meta[TOPICS]
        if doc.truncated:
            logger.warning("Sitemap %s: capped at %d entries (NEWS_MAX_SITEMAP_URLS)", response.url, self.max_sitemap_urls)
        if doc.kind == "sitemapindex":
            logger.info("Sitemap index %s: %d child sitemap(s)", response.url, len(doc.entries))
            for child in doc.entries:
                yield self._source_request(child.url, "sitemap", topics)
            return
        if doc.kind != "urlset":
            logger.warning("Sitemap %s: not a sitemap (no <urlset> or <sitemapindex>)", response.url)
            count(self.crawler.stats, "errors", topics)
            self._fail(response.url, "bad_sitemap", "not a sitemap document", topics)
            return
        if doc.cut:  # the complete entries before the cut are still used
            logger.warning("Sitemap %s: truncated (ends mid-element); %d complete entries kept", response.url, len(doc.entries))
            count(self.crawler.stats, "errors", topics)
            self._fail(response.url, "bad_sitemap", f"truncated: ends mid-element, {len(doc.entries)} complete entries kept", topics)
        logger.info("Sitemap %s: %d URL(s)", response.url, len(doc.entries))
        yield from self._schedule(doc.entries, response, "sitemap")

    def parse_robots(self, response: Response):
        topics = response.meta[TOPICS]
        urls = sitemaps_from_robots(response.body, response.url) if response.status == 200 else []
        if not urls:
            fallback = response.urljoin("/sitemap.xml")
            logger.info("%s lists no Sitemap: lines; trying %s", response.url, fallback)
            urls = [fallback]
        for url in urls:
            yield self._source_request(url, "sitemap", topics)

    def parse_listing(self, response: Response):
        if not isinstance(response, scrapy.http.TextResponse):
            self._fail(response.url, "not_html", "listing page is not HTML", response.meta[TOPICS])
            return
        links = [
            Candidate(link.url, link.text.strip() or None)
            for link in self._link_extractor.extract_links(response)
            if looks_like_article_url(link.url, response.url)
        ][: self.max_links_per_page]
        logger.info("Listing page %s: %d article link(s)", response.url, len(links))
        yield from self._schedule(links, response, "page")

    def parse_search(self, response: Response):
        service = response.meta[SOURCE]
        topics = response.meta[TOPICS]
        try:
            found = parse_results(service, response.body, response.url)
        except SearchResponseError as exc:
            count(self.crawler.stats, "errors", topics)
            logger.warning("%s returned a malformed response for %s: %s", service, topics[0], exc)
            self._fail(response.url, "bad_search_response", str(exc), topics)
            return
        logger.info("%s: %d result(s) for topic %s", service, len(found), topics[0])
        if not found:  # a valid answer with no results: the query may be too narrow for the service
            self.crawler.stats.inc_value(f"news/search_empty/{service}")
        candidates = []
        for candidate in found:
            url = self._publisher_url(service, candidate.url)
            article_id = google_article_id(candidate.url) if url is None and service == "google_news" else None
            if article_id:  # an id in the newer, opaque format: ask Google (parse_google_article)
                page = google_article_page_url(self.search_bases[service], article_id)
                yield self._google_request(page, candidate, response, "article page", self.parse_google_article)
                continue
            if url is None:
                self._unresolved(service, candidate.url, "no publisher URL in the link", topics)
                continue
            candidates.append(dataclasses.replace(candidate, url=url))
        yield from self._schedule(candidates, response, service)

    def _publisher_url(self, service: str, link: str) -> str | None:
        """The publisher's URL for a search result link, when the link itself tells (None for
        a Google link in the newer format: it needs requests to Google, see parse_search)."""
        if service == "bing_news":
            return bing_publisher_url(link)
        if service == "google_news":
            return self._google_publisher(resolve_google_link(link) or link)
        return link

    def _google_publisher(self, url: str | None) -> str | None:
        """``url`` if it is an http(s) URL off Google's hosts (a publisher's), else None."""
        try:
            web = bool(url) and urlsplit(url).scheme in ("http", "https")
        except ValueError:
            web = False
        return url if web and not is_google_url(url, self.search_bases["google_news"]) else None

    # -- Google News links in the newer format: two requests to Google (crawler.search) ---
    def _google_request(self, url: str, candidate: Candidate, response: Response, step: str, callback, **kwargs) -> scrapy.Request:
        """A request to Google's own host resolving ``candidate``'s link: in Google's slot
        (NEWS_SEARCH_DELAYS apart, not throttled), redirects not followed (the callback
        decides), failures counted as unresolved links (on_google_error)."""
        meta = {
            TOPICS: response.meta[TOPICS],
            SOURCE: "google_news",
            SEARCH_QUERY: response.meta.get(SEARCH_QUERY, ""),
            SEARCH_URL: response.meta.get(SEARCH_URL, response.url),
            GOOGLE_LINK: (candidate, step),
            "download_slot": search_slot("google_news"),
            **_NO_THROTTLE,
            "dont_redirect": True,
            "handle_httpstatus_list": _REDIRECTS,
        }
        return scrapy.Request(url, callback=callback, errback=self.on_google_error, meta=meta, dont_filter=True, priority=10, **kwargs)

    def parse_google_article(self, response: Response):
        """Step 1: the article page's signature -> the batchexecute POST (or a redirect's target)."""
        candidate, step = response.meta[GOOGLE_LINK]
        if response.status in _REDIRECTS:
            # the older behaviour, still honoured: the link redirects to its publisher
            location = (response.headers.get("Location") or b"").decode("latin-1")
            target = self._google_publisher(response.urljoin(location)) if location else None
            if target is None:
                detail = f"{step}: HTTP {response.status} to {location[:200]!r}, not a publisher URL"
                self._unresolved("google_news", candidate.url, detail, response.meta[TOPICS])
                return
            yield from self._schedule([dataclasses.replace(candidate, url=target)], response, "google_news")
            return
        signature = google_signature(response.body)
        if signature is None:
            self._unresolved("google_news", candidate.url, f"{step}: no data-n-a-sg / data-n-a-ts attributes", response.meta[TOPICS])
            return
        hl, gl = self.google_locale
        body = google_batchexecute_body(google_article_id(candidate.url), signature[1], signature[0], ceid=f"{gl}:{hl.split('-')[0]}")
        yield self._google_request(
            google_batchexecute_url(self.search_bases["google_news"]), candidate, response, "batchexecute", self.parse_google_batchexecute,
            method="POST", body=body, headers={"Content-Type": GOOGLE_FORM_CONTENT_TYPE},
        )

    def parse_google_batchexecute(self, response: Response):
        """Step 2: the publisher URL in the RPC's answer -> scheduled like any search result."""
        candidate, step = response.meta[GOOGLE_LINK]
        try:
            if response.status != 200:
                raise SearchResponseError(f"HTTP {response.status}")
            url = parse_google_batchexecute(response.body)
        except SearchResponseError as exc:
            self._unresolved("google_news", candidate.url, f"{step}: {exc}", response.meta[TOPICS])
            return
        if self._google_publisher(url) is None:
            self._unresolved("google_news", candidate.url, f"{step}: {url[:200]!r} is not a publisher URL", response.meta[TOPICS])
            return
        yield from self._schedule([dataclasses.replace(candidate, url=url)], response, "google_news")

    def on_google_error(self, failure: Failure):
        candidate, step = failure.request.meta[GOOGLE_LINK]
        _, detail = _describe_failure(failure)
        self._unresolved("google_news", candidate.url, f"{step}: {detail}", failure.request.meta.get(TOPICS, ()))

    def _unresolved(self, service: str, link: str, detail: str, topics) -> None:
        """A search result whose publisher URL could not be found: counted and recorded, never fatal."""
        self.crawler.stats.inc_value("news/search_unresolved")
        logger.info("%s: no publisher URL for %s: %s", service, link, detail)
        self._fail(link, "unresolved_link", f"{service}: {detail}", topics)

    def found_by(self, url: str) -> tuple[tuple[str, str, str, str], ...]:
        """(topic, kind, source URL, search query) of every source that listed ``url`` (its
        canonical form, as scheduled) in this crawl so far; () once its page was handled."""
        entry = self._scheduled.get(url)
        return entry[1] if entry else ()

    def _service_slot(self, url: str, source_kind: str) -> dict:
        """The service's slot for a result that points at the service's own host (never a
        publisher page: those go to their own host's slot)."""
        if source_kind in self.search_bases and origin(url) == origin(self.search_bases[source_kind]):
            return {"download_slot": search_slot(source_kind), **_NO_THROTTLE}
        return {}

    def _not_modified(self, response: Response) -> bool:
        if response.status == 304:
            logger.info("%s not modified since the last crawl", response.url)
            count(self.crawler.stats, "not_modified", response.meta[TOPICS])
            return True
        return False

    def _schedule(self, candidates, response: Response, source_kind: str):
        """Article requests for ``candidates``, after canonicalisation and the recency filter."""
        now = datetime.now(timezone.utc)
        by_name = {t.name: t for t in self.topics}
        # the search that listed a resolved Google link, not the request that resolved it
        source_url = response.meta.get(SEARCH_URL, response.url)
        for candidate in candidates:
            url = canonical_url(candidate.url)
            topics = []
            for name in response.meta[TOPICS]:
                max_age = by_name[name].max_age_days
                if max_age and candidate.published and candidate.published < now - timedelta(days=max_age):
                    count(self.crawler.stats, "skipped_old", [name])
                    continue
                topics.append(name)
            if not topics:
                continue
            found_by = tuple((t, source_kind, source_url, response.meta.get(SEARCH_QUERY, "")) for t in topics)
            known = self._scheduled.get(url)
            if known is _FETCHED:  # already handled in this crawl
                continue
            if known is not None:
                new = tuple(t for t in topics if t not in known[0])
                self._scheduled[url] = (known[0] + new, tuple(dict.fromkeys(known[1] + found_by)))
                if new:  # the URL is counted once in total, once for each topic
                    count(self.crawler.stats, "discovered", new, total=False)
                continue
            self._scheduled[url] = (tuple(topics), found_by)
            count(self.crawler.stats, "discovered", topics)
            hints = {
                "title": candidate.title,
                "published": candidate.published.isoformat() if candidate.published else None,
                "published_source": source_kind if candidate.published else None,
            }
            for key in ("language", "domain"):  # what a search service said (GDELT)
                if getattr(candidate, key, None):
                    hints[key] = getattr(candidate, key)
            yield scrapy.Request(
                url,
                callback=self.parse_article,
                errback=self.on_error,
                # duplicates are already merged above (_scheduled); letting Scrapy's dupefilter
                # drop redirects too would hide redirect loops instead of recording them
                dont_filter=True,
                meta={TOPICS: tuple(topics), ARTICLE: True, HINTS: hints, KEY: url, **self._service_slot(url, source_kind)},
            )

    # -- articles -------------------------------------------------------------------------
    def parse_article(self, response: Response):
        request_url = canonical_url(response.request.url) if response.request else canonical_url(response.url)
        key = response.meta.get(KEY, request_url)
        entry = self._scheduled.get(key)
        topic_set, found_by = (tuple(response.meta[TOPICS]), ()) if entry is None or entry is _FETCHED else entry
        if entry is not None:
            self._scheduled[key] = _FETCHED  # the URL stays known (no second fetch); its details are done
        topics = tuple(sorted(set(topic_set)))
        google = origin(self.search_bases["google_news"])
        if origin(key) == google and origin(response.url) == google:
            # a Google News link whose redirect did not lead to the publisher
            self.crawler.stats.inc_value("news/search_unresolved")
            self._fail(key, "unresolved_link", "google_news: the link did not redirect to a publisher", topics)
            return
        count(self.crawler.stats, "fetched", topics)
        content_type = response.headers.get("Content-Type", b"").decode("latin-1").lower()
        if not response.body.strip():
            count(self.crawler.stats, "not_article", topics)
            self._fail(response.url, "empty_body", "the page is empty", topics)
            return
        if not _is_html(response, content_type):
            count(self.crawler.stats, "not_article", topics)
            logger.info("Not an article (content type %r): %s", content_type or "none", response.url)
            self._fail(response.url, "not_html", f"content type {content_type or 'none'}", topics)
            return
        yield ArticleItem(
            url=response.meta.get("news_canonical") or request_url,
            fetched_url=response.request.url if response.request else response.url,
            topics=topics,
            sources=[{"topic": t, "kind": k, "source": src, "query": q} for t, k, src, q in sorted(set(found_by))],
            hints=response.meta.get(HINTS) or {},
            html=response.body,
            encoding=response.encoding,
            status=response.status,
            content_type=content_type,
            fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    # -- errors ---------------------------------------------------------------------------
    def on_error(self, failure: Failure):
        request = failure.request
        topics = request.meta.get(TOPICS, ())
        kind, detail = _describe_failure(failure)
        if kind == "robots":
            count(self.crawler.stats, "robots_blocked", topics)
            return
        if kind == "ignored":
            return  # seen articles: counted where they were decided
        count(self.crawler.stats, "errors", topics)
        hops = request.meta.get("redirect_urls") or []
        url = hops[0] if hops else request.url  # the link as found, not the last redirect hop
        if hops:
            detail = f"{detail} (after {len(hops)} redirect(s), last {request.url})"
        logger.warning("Failed %s (%s): %s", url, kind, detail)
        self._fail(url, kind, detail, topics)

    def _fail(self, url: str, kind: str, detail: str, topics) -> None:
        self.crawler.signals.send_catch_log(signals.fetch_failed, url=url, kind=kind, detail=detail, topics=tuple(topics))


def _is_html(response: Response, content_type: str) -> bool:
    """The Content-Type decides when there is one (a PDF behind an .html link is a PDF)."""
    if content_type:
        return "html" in content_type or "xml" in content_type
    return isinstance(response, scrapy.http.HtmlResponse)


def _describe_failure(failure: Failure) -> tuple[str, str]:
    """(kind, detail) of a failed request, for fetch_errors and the per-kind counts."""
    from scrapy import exceptions as sx
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import error as net

    exc = failure.value
    text = str(exc)[:500]
    if isinstance(exc, RefusedAddress):
        return "refused_address", text
    if isinstance(exc, HttpError):
        return f"http_{exc.response.status}", f"HTTP {exc.response.status}"
    if isinstance(exc, sx.IgnoreRequest):
        # Scrapy's middlewares raise plain IgnoreRequests: tell them apart by their message
        if "robots.txt" in text:
            return "robots", text
        if "max redirections" in text:
            return "too_many_redirects", text
        if "max size" in text.lower() or "DOWNLOAD_MAXSIZE" in text:
            return "too_large", text  # e.g. a decompression bomb
        return "ignored", text
    if isinstance(exc, sx.DownloadCancelledError):  # cancelled: larger than DOWNLOAD_MAXSIZE, or shut down
        return ("too_large" if "max size" in text.lower() else "cancelled"), text
    kinds = [
        ((sx.DownloadTimeoutError, net.TimeoutError, net.TCPTimedOutError), "timeout"),
        ((sx.CannotResolveHostError, net.DNSLookupError), "dns"),
        ((sx.DownloadConnectionRefusedError, net.ConnectionRefusedError), "connection_refused"),
        ((sx.ResponseDataLossError,), "truncated_response"),
        ((sx.UnsupportedURLSchemeError,), "unsupported_scheme"),
        ((sx.DownloadFailedError, net.ConnectionLost, net.ConnectionDone, net.ConnectError), "connection_lost"),
    ]
    for types, kind in kinds:
        if isinstance(exc, types):
            return kind, text
    return type(exc).__name__, text
