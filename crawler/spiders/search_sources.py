"""News-search sources of the ``news`` spider: Google News, Bing News and GDELT (a mixin).

A topic's ``search = [...]`` runs its query on these services. The spider gets from this
mixin the search requests (``search_requests``), the callbacks that turn a service's answer
into candidate articles (``parse_search``; for Google News links in the newer format, two
requests to Google: ``parse_google_article``, ``parse_google_batchexecute``), and each
service's own download slot (``update_settings``). The pure parts (query translation, URLs,
answer parsers, link decoding) are in crawler/search.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from crawler.discovery import Candidate
from crawler.failures import describe_failure
from crawler.politeness import override_priority
from crawler.search import (
    DEFAULT_DELAYS,
    GOOGLE_FORM_CONTENT_TYPE,
    SERVICES,
    SearchRateLimited,
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
from crawler import signals
from crawler.spiders.meta import GOOGLE_CACHED, GOOGLE_FIRST_STEP, GOOGLE_LINK, GOOGLE_NO_CACHE, NO_THROTTLE, REDIRECT_STATUSES, SEARCH_QUERY, SEARCH_URL, SOURCE, TOPICS, Listing, search_slot
from crawler.stats import count
from crawler.urls import origin

logger = logging.getLogger(__name__)

__all__ = ["SearchSources"]

SEARCH_RETRIES = "news_search_retries"  # request meta: how often a rate-limited search was asked again
MAX_SEARCH_RETRIES = 2


def _resolution_step(callback):
    """A callback of a Google id's resolution: an unexpected error in it ends the resolution
    as unresolved (logged with its traceback), so the listings waiting for the id are
    reported instead of waiting for ever."""

    @functools.wraps(callback)
    def step(self, response):
        try:
            yield from callback(self, response)
        except Exception as exc:
            candidate, name = response.meta[GOOGLE_LINK]
            logger.exception("google_news: resolving %s failed at the %s step", candidate.url, name)
            if isinstance(self._google_ids.get(google_article_id(candidate.url)), list):  # still pending
                yield from self._google_resolved(response, None, f"{name}: {type(exc).__name__}: {exc}")

    return step


class SearchSources:
    """Mixed into NewsSpider, which provides ``topics``, ``crawler``, ``on_error``, ``_schedule`` and ``_fail``."""

    def configure_search(self, settings) -> None:
        """Read the services' base URLs and Google's locale (called from from_crawler)."""
        self.search_bases = {
            "google_news": settings.get("NEWS_GOOGLE_NEWS_URL", "https://news.google.com"),
            "bing_news": settings.get("NEWS_BING_NEWS_URL", "https://www.bing.com"),
            "gdelt": settings.get("NEWS_GDELT_URL", "https://api.gdeltproject.org"),
        }
        self.google_locale = (settings.get("NEWS_GOOGLE_NEWS_HL", "en-US"), settings.get("NEWS_GOOGLE_NEWS_GL", "US"))
        # Google ids in the newer format met in this crawl: id -> the publisher URL (None: could
        # not be resolved), or the list of further (candidate, Listing) waiting for its
        # resolution: an id listed by several searches is resolved once
        self._google_ids: dict[str, str | None | list] = {}

    def search_requests(self):
        """One request per (topic, service) of the topics' ``search`` lists."""
        for topic in self.topics:
            for service in topic.search:
                query = translate(topic.query, service)
                url = search_url(service, self.search_bases[service], query, max_age_days=topic.max_age_days, locale=self.google_locale)
                logger.info("Searching %s for topic %s: %s", service, topic.name, query)
                yield scrapy.Request(
                    url,
                    callback=self.parse_search,
                    errback=self.on_error,
                    meta={TOPICS: (topic.name,), SOURCE: service, SEARCH_QUERY: query, "download_slot": search_slot(service), **NO_THROTTLE},
                    dont_filter=True,
                    priority=10,
                )

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
        settings.set("DOWNLOAD_SLOTS", slots, priority=override_priority(settings, "DOWNLOAD_SLOTS"))

    def parse_search(self, response: Response):
        service = response.meta[SOURCE]
        topics = response.meta[TOPICS]
        try:
            found = parse_results(service, response.body, response.url)
        except SearchResponseError as exc:
            tries = response.meta.get(SEARCH_RETRIES, 0)
            limited = isinstance(exc, SearchRateLimited)
            if limited and tries < MAX_SEARCH_RETRIES:  # asked again in the service's slot, NEWS_SEARCH_DELAYS later
                logger.info("%s %s for topic %s; asking again (%d of %d)", service, exc, topics[0], tries + 1, MAX_SEARCH_RETRIES)
                yield response.request.replace(meta={**response.meta, SEARCH_RETRIES: tries + 1}, dont_filter=True)
                return
            count(self.crawler.stats, "errors", topics)
            logger.warning("%s %s for %s: %s", service, "kept asking us to slow down" if limited else "returned a malformed response", topics[0], exc)
            self._fail(response.url, "bad_search_response", f"{exc} ({tries} retries)" if limited else str(exc), topics)
            return
        logger.info("%s: %d result(s) for topic %s", service, len(found), topics[0])
        if not found:  # a valid answer with no results: the query may be too narrow for the service
            self.crawler.stats.inc_value(f"news/search_empty/{service}")
        candidates = []
        listing = Listing.of(response)
        for candidate in found:
            url = self._publisher_url(service, candidate.url)
            article_id = google_article_id(candidate.url) if url is None and service == "google_news" else None
            if article_id:  # an id in the newer, opaque format: ask Google (parse_google_article)
                if article_id not in self._google_ids:
                    self._google_ids[article_id] = []
                    page = google_article_page_url(self.search_bases[service], article_id)
                    yield self._google_request(page, candidate, response, GOOGLE_FIRST_STEP, self.parse_google_article)
                    continue
                known = self._google_ids[article_id]
                if isinstance(known, list):  # being resolved for another search
                    known.append((candidate, listing))
                    continue
                url = known  # resolved earlier in this crawl (None: it could not be)
            if url is None:
                self._unresolved(service, candidate.url, "no publisher URL in the link", topics)
                continue
            candidates.append(dataclasses.replace(candidate, url=url))
        yield from self._schedule(candidates, listing, service)

    def _publisher_url(self, service: str, link: str) -> str | None:
        """The publisher's URL for a search result link, when the link itself tells (None for
        a Google link in the newer format: it needs requests to Google, see parse_search)."""
        if service == "bing_news":
            return bing_publisher_url(link, self.search_bases[service])
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
    def _google_request(
        self, url: str, candidate: Candidate, response: Response, step: str, callback, no_cache: bool = False, **kwargs
    ) -> scrapy.Request:
        """A request to Google's own host resolving ``candidate``'s link: in Google's slot
        (NEWS_SEARCH_DELAYS apart, not throttled), redirects not followed (the callback
        decides), failures counted as unresolved links (on_google_error). ``no_cache``: not
        answered from google_links (GoogleLinkCacheMiddleware)."""
        meta = {
            TOPICS: response.meta[TOPICS],
            SOURCE: "google_news",
            SEARCH_QUERY: response.meta.get(SEARCH_QUERY, ""),
            SEARCH_URL: response.meta.get(SEARCH_URL, response.url),
            GOOGLE_LINK: (candidate, step),
            "download_slot": search_slot("google_news"),
            **NO_THROTTLE,
            "dont_redirect": True,
            "handle_httpstatus_list": REDIRECT_STATUSES,
            **({GOOGLE_NO_CACHE: True} if no_cache else {}),
        }
        return scrapy.Request(url, callback=callback, errback=self.on_google_error, meta=meta, dont_filter=True, priority=10, **kwargs)

    @_resolution_step
    def parse_google_article(self, response: Response):
        """Step 1: the article page's signature -> the batchexecute POST (or a redirect's target)."""
        candidate, step = response.meta[GOOGLE_LINK]
        if response.status in REDIRECT_STATUSES:
            # the older behaviour, still honoured: the link redirects to its publisher
            location = (response.headers.get("Location") or b"").decode("latin-1")
            target = self._google_publisher(response.urljoin(location)) if location else None
            if target is None and response.meta.get(GOOGLE_CACHED):  # a stored answer no longer accepted: ask Google
                yield self._google_request(response.url, candidate, response, step, self.parse_google_article, no_cache=True)
            elif target is None:
                yield from self._google_resolved(response, None, f"{step}: HTTP {response.status} to {location[:200]!r}, not a publisher URL")
            else:
                yield from self._google_resolved(response, target)
            return
        signature = google_signature(response.body)
        if signature is None:
            yield from self._google_resolved(response, None, f"{step}: no data-n-a-sg / data-n-a-ts attributes")
            return
        hl, gl = self.google_locale
        body = google_batchexecute_body(google_article_id(candidate.url), signature[1], signature[0], ceid=f"{gl}:{hl.split('-')[0]}")
        yield self._google_request(
            google_batchexecute_url(self.search_bases["google_news"]), candidate, response, "batchexecute", self.parse_google_batchexecute,
            method="POST", body=body, headers={"Content-Type": GOOGLE_FORM_CONTENT_TYPE},
        )

    @_resolution_step
    def parse_google_batchexecute(self, response: Response):
        """Step 2: the publisher URL in the RPC's answer -> scheduled like any search result."""
        _, step = response.meta[GOOGLE_LINK]
        try:
            if response.status != 200:
                raise SearchResponseError(f"HTTP {response.status}")
            url = parse_google_batchexecute(response.body)
        except SearchResponseError as exc:
            yield from self._google_resolved(response, None, f"{step}: {exc}")
            return
        if self._google_publisher(url) is None:
            yield from self._google_resolved(response, None, f"{step}: {url[:200]!r} is not a publisher URL")
            return
        yield from self._google_resolved(response, url)

    def on_google_error(self, failure: Failure):
        _, step = failure.request.meta[GOOGLE_LINK]
        _, detail = describe_failure(failure)
        yield from self._google_resolved(failure.request, None, f"{step}: {detail}")

    def _google_resolved(self, response, url: str | None, detail: str = ""):
        """The end of a Google id's resolution (``response``: the last request's response, or
        the request that failed): ``url`` the publisher's, or None and why not. Schedules the
        article for the search that asked and for those that listed the same id meanwhile;
        a resolved id is remembered in the store too (signal google_link_resolved)."""
        candidate, _ = response.meta[GOOGLE_LINK]
        article_id = google_article_id(candidate.url)
        waiting = self._google_ids.get(article_id)
        self._google_ids[article_id] = url
        if url is not None and not response.meta.get(GOOGLE_CACHED):
            self.crawler.signals.send_catch_log(signals.google_link_resolved, article_id=article_id, url=url)
        for cand, listing in [(candidate, Listing.of(response))] + (waiting if isinstance(waiting, list) else []):
            if url is None:
                self._unresolved("google_news", cand.url, detail, listing.topics)
            else:
                yield from self._schedule([dataclasses.replace(cand, url=url)], listing, "google_news")

    def _unresolved(self, service: str, link: str, detail: str, topics) -> None:
        """A search result whose publisher URL could not be found: counted and recorded, never fatal."""
        self.crawler.stats.inc_value("news/search_unresolved")
        logger.info("%s: no publisher URL for %s: %s", service, link, detail)
        self._fail(link, "unresolved_link", f"{service}: {detail}", topics)

    def _service_slot(self, url: str, source_kind: str) -> dict:
        """The service's slot for a result that points at the service's own host (never a
        publisher page: those go to their own host's slot)."""
        if source_kind in self.search_bases and origin(url) == origin(self.search_bases[source_kind]):
            return {"download_slot": search_slot(source_kind), **NO_THROTTLE}
        return {}
