"""Downloader middlewares: network safety, search-service slots, retry with back-off, skip
stored articles, conditional GET."""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
import logging
from datetime import datetime, timezone

from scrapy import signals
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.useragent import UserAgentMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.response import response_status_message

from crawler.failures import SeenBefore
from crawler.search import google_article_id
from crawler.spiders.meta import ARTICLE, GOOGLE_CACHED, GOOGLE_FIRST_STEP, GOOGLE_LINK, GOOGLE_NO_CACHE, SOURCE, STORED_AS, TOPICS, search_slot
from crawler.stats import count
from crawler.urls import RefusedAddress, canonical_url, is_public_address, origin, page_canonical
from pipelines.db import open_db

logger = logging.getLogger(__name__)

# the setting that holds each search service's base URL
_SERVICE_URL_SETTINGS = {"google_news": "NEWS_GOOGLE_NEWS_URL", "bing_news": "NEWS_BING_NEWS_URL", "gdelt": "NEWS_GDELT_URL"}


def retry_after_seconds(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class ContactUserAgentMiddleware(UserAgentMiddleware):
    """Scrapy's User-Agent middleware, with ``{contact}`` in USER_AGENT replaced by NEWS_CONTACT."""

    @classmethod
    def from_crawler(cls, crawler):
        agent = crawler.settings.get("USER_AGENT") or "newscrawler"
        contact = crawler.settings.get("NEWS_CONTACT") or ""
        return cls(agent.replace("{contact}", contact))


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, plus exponential back-off between attempts and Retry-After honoured.

    Settings: RETRY_TIMES, RETRY_HTTP_CODES (as usual), NEWS_RETRY_BACKOFF_BASE (seconds,
    doubled per attempt) and NEWS_RETRY_AFTER_MAX (a longer Retry-After gives up instead).
    Waiting happens off the download slot: other requests go on meanwhile.
    """

    @classmethod
    def from_crawler(cls, crawler):
        mw = super().from_crawler(crawler)
        mw.backoff_base = crawler.settings.getfloat("NEWS_RETRY_BACKOFF_BASE", 1.0)
        mw.retry_after_max = crawler.settings.getfloat("NEWS_RETRY_AFTER_MAX", 120.0)
        return mw

    async def process_response(self, request, response):
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is not None and wait > self.retry_after_max:
            logger.warning("Not retrying %s: Retry-After %.0fs is above NEWS_RETRY_AFTER_MAX", request.url, wait)
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        await self._wait(request, wait)
        return retry

    async def process_exception(self, request, exception):
        if not isinstance(exception, self.exceptions_to_retry) or request.meta.get("dont_retry", False):
            return None
        retry = self._retry(request, exception)
        if retry is None:
            return None
        await self._wait(request, None)
        return retry

    async def _wait(self, request, retry_after: float | None) -> None:
        attempt = request.meta.get("retry_times", 0) + 1
        delay = retry_after if retry_after is not None else self.backoff_base * 2 ** (attempt - 1)
        if delay > 0:
            logger.debug("Retry %d of %s in %.1fs", attempt, request.url, delay)
            await asyncio.sleep(delay)


class NetworkSafetyMiddleware:
    """Refuse requests to loopback, private, link-local, multicast and reserved addresses.

    A URL found in a feed, sitemap or page (or a redirect target) whose host is, or resolves
    to, such an address is not fetched, unless its origin (scheme, host, port) is one of the
    configured sources (or search services) of a topic the request is for (its ``news_topics``
    meta; a request for no topic, such as Scrapy's robots.txt fetches, may use the origins of
    every topic) or NEWS_ALLOW_PRIVATE_NETWORKS is set. Only http and https are fetched.
    Shared address space (100.64.0.0/10: carrier-grade NAT, also VPN overlays such as
    Tailscale) is not public either. Refusals are counted (``errors``) and recorded in
    fetch_errors. Resolution happens here and again in the downloader, so a DNS answer that
    changes in between (rebinding) is not covered: run the crawler behind an egress firewall too.
    """

    def __init__(self, allowed_by_topic: dict[str, set], allow_private: bool):
        self.allowed_by_topic = allowed_by_topic
        self.allowed_any = set().union(*allowed_by_topic.values())  # for requests without topics
        self.allow_private = allow_private
        self._resolved: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_crawler(cls, crawler):
        from crawler.topics import topics_by_name  # (none for a bad file: the spider reports it and stops)

        topics = topics_by_name(crawler.settings).values()
        services = {s: origin(crawler.settings.get(name) or "") for s, name in _SERVICE_URL_SETTINGS.items()}
        allowed = {t.name: t.source_origins() | {services[s] for s in t.search if s in services} for t in topics}
        return cls(allowed, crawler.settings.getbool("NEWS_ALLOW_PRIVATE_NETWORKS", False))

    def allowed(self, request, key: tuple[str, str, int | None]) -> bool:
        """True when ``key`` (an origin) is a configured source of one of the request's topics."""
        topics = request.meta.get(TOPICS)
        if not topics:
            return key in self.allowed_any
        return any(key in self.allowed_by_topic.get(t, ()) for t in topics)

    async def process_request(self, request):
        scheme, host, port = origin(request.url)
        if scheme not in ("http", "https"):
            raise RefusedAddress(f"scheme {scheme!r} is not fetched (only http and https)")
        if self.allow_private or self.allowed(request, (scheme, host, port)):
            return None
        for address in await self._addresses(host, port):
            if not is_public_address(address):
                raise RefusedAddress(f"{host} is a non-public address ({address}); set NEWS_ALLOW_PRIVATE_NETWORKS to allow")
        return None

    async def _addresses(self, host: str, port: int | None) -> tuple[str, ...]:
        literal = host.strip("[]")
        try:
            ipaddress.ip_address(literal)
            return (literal,)
        except ValueError:
            pass
        if host not in self._resolved:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
            except OSError:
                infos = []  # unresolvable: the download fails with a DNS error on its own
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[host] = tuple(info[4][0] for info in infos)
        return self._resolved[host]


class SearchSlotMiddleware:
    """Keep a search service's download slot for requests to that service's own host.

    The spider puts search queries and the requests resolving Google News links (article
    page, batchexecute) in the service's slot (one request at a time, NEWS_SEARCH_DELAYS
    apart). Scrapy copies a request's meta, slot included, to its redirects, so a request
    redirected off the service's host would run under the service's delay: such a request
    goes back to its own host's slot. (The Google resolution requests do not follow
    redirects: the spider schedules a redirect's target as an article, in its own slot.)
    """

    def __init__(self, bases: dict[str, str]):
        self.origins = {search_slot(service): origin(url) for service, url in bases.items()}

    @classmethod
    def from_crawler(cls, crawler):
        return cls({service: crawler.settings.get(name) or "" for service, name in _SERVICE_URL_SETTINGS.items()})

    def process_request(self, request):
        slot = request.meta.get("download_slot")
        if slot in self.origins and origin(request.url) != self.origins[slot]:
            del request.meta["download_slot"]
            request.meta.pop("autothrottle_dont_adjust_delay", None)
        return None


class _StoreReader:
    """Shared read access to the store for middlewares. ``queries``: topic name -> the
    fingerprint of its current query (Topic.query_fingerprint)."""

    def __init__(self, db_path: str, queries: dict[str, str] | None = None):
        self.db = open_db(db_path)
        self.queries = queries or {}

    def known(self, url: str, topics) -> str | None:
        """Why ``url`` needs no fetch for ``topics`` (stored, not an article, irrelevant), or None.
        A page judged irrelevant to a topic whose query has changed since is fetched again."""
        if self.db.execute("SELECT 1 FROM articles WHERE url = ?", [url]).fetchone():
            return "already stored"
        rows = self.db.execute("SELECT topic, query_fingerprint FROM url_outcomes WHERE url = ?", [url]).fetchall()
        if any(topic == "" for topic, _ in rows):
            return "not an article (an earlier crawl)"
        judged = {topic for topic, fingerprint in rows if fingerprint is None or fingerprint == self.queries.get(topic)}
        if judged and topics and all(t in judged for t in topics):
            return "irrelevant to its topics (an earlier crawl)"
        return None


class _StoreReadingMiddleware:
    """A downloader middleware that reads the store (NEWS_DB) and counts in the crawl stats."""

    def __init__(self, reader: _StoreReader, stats):
        self.reader = reader
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        db_path = crawler.settings.get("NEWS_DB")
        if not db_path:
            raise NotConfigured("NEWS_DB is not set")
        return cls(_StoreReader(db_path, cls._queries(crawler.settings)), crawler.stats)

    @staticmethod
    def _queries(settings) -> dict[str, str]:
        """The topics' query fingerprints, for middlewares that need them (none here)."""
        return {}


class SeenArticlesMiddleware(_StoreReadingMiddleware):
    """Skip articles whose canonical URL is already stored, or was judged by an earlier crawl
    (not an article; irrelevant to every topic asking for it).

    Checked twice: before the request (its canonical URL) and after the response (the
    page's own rel=canonical / og:url, when it names another URL of the same site). A
    request skipped because its article is stored carries the stored URL (meta STORED_AS):
    the spider sends its sources and topics on to the store (signal article_listed), which
    tags the article with new topics whose query it matches and records the sources, on its
    writer thread. This middleware only reads.
    """

    @staticmethod
    def _queries(settings) -> dict[str, str]:
        from crawler.topics import topics_by_name

        return {name: topic.query_fingerprint for name, topic in topics_by_name(settings).items()}

    def process_request(self, request):
        if request.meta.get(ARTICLE):
            url = canonical_url(request.url)
            self._check(request, url, self.reader.known(url, request.meta.get(TOPICS, ())))
        return None

    def process_response(self, request, response):
        if not request.meta.get(ARTICLE) or response.status != 200:
            return response
        found = page_canonical(response.body, response.url)
        if found and found != canonical_url(request.url):
            why = self.reader.known(found, request.meta.get(TOPICS, ()))
            self._check(request, found, f"{why}: {found}" if why else None)
            request.meta["news_canonical"] = found
        return response

    def _check(self, request, url: str, why: str | None) -> None:
        if not why:
            return
        if why.startswith("already stored"):
            request.meta[STORED_AS] = url
        count(self.stats, "skipped_seen", request.meta.get(TOPICS, ()))
        logger.debug("Skipping %s: %s", request.url, why)
        raise SeenBefore(why)


class GoogleLinkCacheMiddleware(_StoreReadingMiddleware):
    """Answers the first request resolving a Google News link in the newer format (its
    article page) from ``google_links`` when an earlier crawl resolved the same id: with a
    redirect to the publisher URL, as Google answered such links until July 2024, so the
    spider schedules it without the two requests to Google (a daily search lists mostly the
    same results again). Like Scrapy's HTTP cache, the answer is made here, not downloaded:
    no download slot, no delay. Counted as ``news/google_links_cached``. A stored URL the
    spider no longer accepts as a publisher's makes it ask Google (meta GOOGLE_NO_CACHE).
    """

    def process_request(self, request):
        link = request.meta.get(GOOGLE_LINK)
        if not link or link[1] != GOOGLE_FIRST_STEP or request.meta.get(GOOGLE_NO_CACHE):
            return None
        row = self.reader.db.execute("SELECT url FROM google_links WHERE id = ?", [google_article_id(link[0].url)]).fetchone()
        if row is None:
            return None
        self.stats.inc_value("news/google_links_cached")
        request.meta[GOOGLE_CACHED] = True
        return Response(request.url, status=302, headers={"Location": row[0]}, request=request, flags=["google_links"])


class ConditionalGetMiddleware:
    """Conditional GET for feeds and sitemaps across runs (ETag / Last-Modified).

    Validators seen in this crawl are saved only when the crawl finishes normally, so a
    crawl that dies half-way does not make the next one skip entries it never processed.
    """

    KINDS = ("feed", "sitemap")

    def __init__(self, db_path: str):
        self.db_path = db_path
        self.db = open_db(db_path)
        self.pending: dict[str, dict] = {}

    @classmethod
    def from_crawler(cls, crawler):
        db_path = crawler.settings.get("NEWS_DB")
        if not db_path:
            raise NotConfigured("NEWS_DB is not set")
        mw = cls(db_path)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    def process_request(self, request):
        if request.meta.get(SOURCE) not in self.KINDS:
            return None
        row = self.db.execute("SELECT etag, last_modified FROM source_state WHERE url = ?", [request.url]).fetchone()
        if row:
            etag, last_modified = row
            if etag:
                request.headers.setdefault("If-None-Match", etag)
            if last_modified:
                request.headers.setdefault("If-Modified-Since", last_modified)
        request.meta["handle_httpstatus_list"] = [*request.meta.get("handle_httpstatus_list", []), 304]
        return None

    def process_response(self, request, response):
        if request.meta.get(SOURCE) not in self.KINDS or response.status not in (200, 304):
            return response
        state = {
            "url": request.url,
            "kind": request.meta[SOURCE],
            "last_status": response.status,
            "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if response.status == 200:
            state["etag"] = (response.headers.get("ETag") or b"").decode("latin-1") or None
            state["last_modified"] = (response.headers.get("Last-Modified") or b"").decode("latin-1") or None
        self.pending[request.url] = state
        return response

    def spider_closed(self, spider, reason):
        if reason != "finished" or not self.pending:
            return
        with self.db.atomic():
            for state in self.pending.values():
                self.db["source_state"].upsert(state, pk="url", alter=False)
        self.pending.clear()
