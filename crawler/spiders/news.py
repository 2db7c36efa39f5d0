"""The ``news`` spider: topic sources -> candidate articles -> article responses -> items.

    scrapy crawl news                       # every topic in NEWS_TOPICS
    scrapy crawl news -a topic=ai-model-theft

Discovery reads feeds (RSS, Atom, JSON Feed), sitemaps (index, gzip, Google News; a bare
site root means "the Sitemap: lines of its robots.txt") and listing pages (article-looking
same-site links, one level). Every URL is canonicalised before anything else; an article
listed by several sources or topics is fetched once, carrying all its topics. News-search
sources (Google News, Bing News, GDELT) come from the SearchSources mixin
(crawler/spiders/search_sources.py); request meta keys are in crawler/spiders/meta.py.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from scrapy.linkextractors import LinkExtractor
from twisted.python.failure import Failure

from crawler import signals
from crawler.discovery import (
    Candidate,
    looks_like_article_url,
    looks_like_feed,
    parse_sitemap,
    read_feed,
    sitemaps_from_robots,
)
from crawler.failures import describe_failure
from crawler.items import ArticleItem
from crawler.politeness import enforce_concurrency_limits
from crawler.spiders.meta import ARTICLE, HINTS, KEY, SOURCE, STORED_AS, TOPICS, Listing
from crawler.spiders.search_sources import SearchSources
from crawler.stats import count
from crawler.topics import Topic, TopicsError, load_topics, select_topics
from crawler.urls import canonical_url, origin

logger = logging.getLogger(__name__)


class Handled(NamedTuple):
    """NewsSpider._scheduled value of a URL whose request is done (fetched, or skipped as seen)."""

    url: str | None  # the URL its article is (or may be) stored under; None: it will not be stored
    topics: tuple[str, ...]


class NewsSpider(SearchSources, scrapy.Spider):
    name = "news"

    def __init__(self, topic: str | None = None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.topic_filter = topic
        self.topics: tuple[Topic, ...] = ()
        # canonical URL -> (topics, sources) for articles scheduled in this crawl; a source
        # is (topic, kind, source URL, search query or ""). Tuples, not sets (a long crawl
        # holds one entry per URL), and a Handled once its request is done: a source listing
        # it after that is sent on to the store (signal article_listed).
        self._scheduled: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, str, str], ...]] | Handled] = {}

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)  # the search services' slots (SearchSources)
        enforce_concurrency_limits(settings)  # a delay of 0 would lift the per-domain limits

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
        spider.configure_search(settings)
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
        for request in self.search_requests():
            yield request

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
        doc = read_feed(response.body, response.url)
        candidates, topics = doc.entries, response.meta[TOPICS]
        if not candidates and not looks_like_feed(response.body):
            self._source_fault(response.url, "bad_feed", "not an RSS, Atom or JSON feed", topics)
            return
        if doc.cut:  # the complete items before the cut are still used
            self._source_fault(response.url, "bad_feed", f"truncated: ends mid-element, {len(candidates)} complete item(s) kept", topics)
        logger.info("Feed %s: %d item(s)", response.url, len(candidates))
        yield from self._schedule(candidates, Listing.of(response), "feed")

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
            self._source_fault(response.url, "bad_sitemap", "not a sitemap document (no <urlset> or <sitemapindex>)", topics)
            return
        if doc.cut:  # the complete entries before the cut are still used
            self._source_fault(response.url, "bad_sitemap", f"truncated: ends mid-element, {len(doc.entries)} complete entries kept", topics)
        elif doc.broken:
            self._source_fault(response.url, "bad_sitemap", f"malformed XML ({doc.broken}), {len(doc.entries)} entries before it kept", topics)
        logger.info("Sitemap %s: %d URL(s)", response.url, len(doc.entries))
        yield from self._schedule(doc.entries, Listing.of(response), "sitemap")

    def _source_fault(self, url: str, kind: str, detail: str, topics) -> None:
        """A feed or sitemap that is not one, or only partly readable (its readable entries are
        still used): logged, counted as an error and recorded in fetch_errors."""
        logger.warning("%s %s: %s", "Feed" if kind == "bad_feed" else "Sitemap", url, detail)
        count(self.crawler.stats, "errors", topics)
        self._fail(url, kind, detail, topics)

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
        yield from self._schedule(links, Listing.of(response), "page")

    def found_by(self, url: str) -> tuple[tuple[str, str, str, str], ...]:
        """(topic, kind, source URL, search query) of every source that listed ``url`` (its
        canonical form, as scheduled) in this crawl so far; () once its request is done."""
        entry = self._scheduled.get(url)
        return () if entry is None or isinstance(entry, Handled) else entry[1]

    def _not_modified(self, response: Response) -> bool:
        if response.status == 304:
            logger.info("%s not modified since the last crawl", response.url)
            count(self.crawler.stats, "not_modified", response.meta[TOPICS])
            return True
        return False

    def _schedule(self, candidates, listing: Listing, source_kind: str):
        """Article requests for ``candidates``, after canonicalisation and the recency filter."""
        now = datetime.now(timezone.utc)
        by_name = {t.name: t for t in self.topics}
        for candidate in candidates:
            url = canonical_url(candidate.url)
            topics = []
            for name in listing.topics:
                max_age = by_name[name].max_age_days
                if max_age and candidate.published and candidate.published < now - timedelta(days=max_age):
                    count(self.crawler.stats, "skipped_old", [name])
                    continue
                topics.append(name)
            if not topics:
                continue
            found_by = tuple((t, source_kind, listing.source_url, listing.query) for t in topics)
            known = self._scheduled.get(url)
            if isinstance(known, Handled):  # fetched or skipped already: the store records the source
                new = tuple(t for t in topics if t not in known.topics)
                if new:  # found for these topics too, and not fetched again for them
                    self._scheduled[url] = Handled(known.url, known.topics + new)
                    count(self.crawler.stats, "discovered", new, total=False)
                    count(self.crawler.stats, "skipped_seen", new, total=False)
                if known.url is not None:
                    self._listed(known.url, found_by)
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
        url = response.meta.get("news_canonical") or request_url
        topic_set, found_by = self._handled(key, url, response.meta[TOPICS])
        topics = tuple(sorted(set(topic_set)))
        google = origin(self.search_bases["google_news"])
        if origin(key) == google and origin(response.url) == google:
            # a Google News link whose redirect did not lead to the publisher
            self.crawler.stats.inc_value("news/search_unresolved")
            self._fail(key, "unresolved_link", "google_news: the link did not redirect to a publisher", topics)
            self._not_stored(key)
            return
        count(self.crawler.stats, "fetched", topics)
        content_type = response.headers.get("Content-Type", b"").decode("latin-1").lower()
        if not response.body.strip():
            count(self.crawler.stats, "not_article", topics)
            self._fail(response.url, "empty_body", "the page is empty", topics)
            self._not_stored(key)
            return
        if not _is_html(response, content_type):
            count(self.crawler.stats, "not_article", topics)
            logger.info("Not an article (content type %r): %s", content_type or "none", response.url)
            self._fail(response.url, "not_html", f"content type {content_type or 'none'}", topics)
            self._not_stored(key)
            return
        yield ArticleItem(
            url=url,
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
        kind, detail = describe_failure(failure)
        if kind == "robots":
            count(self.crawler.stats, "robots_blocked", topics)
            return
        if kind == "seen":  # stored or judged before: counted where that was decided
            key = request.meta.get(KEY)
            stored = request.meta.get(STORED_AS)
            if key:
                _, found_by = self._handled(key, stored, topics)  # stored None: judged by an earlier crawl
                if stored:
                    self._listed(stored, found_by)
            return
        count(self.crawler.stats, "errors", topics)
        hops = request.meta.get("redirect_urls") or []
        url = hops[0] if hops else request.url  # the link as found, not the last redirect hop
        if hops:
            detail = f"{detail} (after {len(hops)} redirect(s), last {request.url})"
        logger.warning("Failed %s (%s): %s", url, kind, detail)
        self._fail(url, kind, detail, topics)

    def _handled(self, key: str, url: str | None, topics) -> tuple[tuple[str, ...], tuple]:
        """Mark the request for ``key`` done (its article is, or would be, stored as ``url``;
        None: it will not be); return the topics and sources (topic, kind, source URL, query)
        that listed it."""
        entry = self._scheduled.get(key)
        if entry is None or isinstance(entry, Handled):
            return tuple(topics), ()
        # the URL stays known: no second fetch (the key's own string when they are equal)
        self._scheduled[key] = Handled(key if url == key else url, entry[0])
        return entry

    def _not_stored(self, key: str) -> None:
        """The page fetched for ``key`` is not passed on: later listings need not be recorded."""
        entry = self._scheduled.get(key)
        if isinstance(entry, Handled):
            self._scheduled[key] = entry._replace(url=None)

    def _listed(self, url: str, found_by) -> None:
        """Sources that listed a stored (or being stored) article: the store records them."""
        if found_by:
            self.crawler.signals.send_catch_log(signals.article_listed, url=url, sources=tuple(found_by))

    def _fail(self, url: str, kind: str, detail: str, topics) -> None:
        self.crawler.signals.send_catch_log(signals.fetch_failed, url=url, kind=kind, detail=detail, topics=tuple(topics))


def _is_html(response: Response, content_type: str) -> bool:
    """The Content-Type decides when there is one (a PDF behind an .html link is a PDF)."""
    if content_type:
        return "html" in content_type or "xml" in content_type
    return isinstance(response, scrapy.http.HtmlResponse)
