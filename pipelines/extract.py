"""Extraction: HTML -> clean text and metadata with trafilatura, in a process pool.

``extract()`` is a pure function (bytes in, dict out) run by ``ExtractPipeline`` in worker
processes, so the Twisted reactor keeps fetching while pages are being extracted.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import multiprocessing
import os
import threading
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from scrapy.exceptions import DropItem

from crawler.items import ArticleItem
from crawler.stats import count
from pipelines.drops import NotAnArticleDrop
from pipelines.flow import InFlight, limit as in_flight_limit
from pipelines.dates import resolve_published
from pipelines.detect import PROSE_LINE_CHARS, article_verdict, declares_article
from pipelines.group import Grouper, features
from pipelines.textclean import clean_text, clean_title, page_text_chars, paragraph_text_chars
from pipelines.textnorm import block_key, content_hash

logger = logging.getLogger(__name__)

__all__ = ["ExtractOptions", "extract", "ExtractPipeline", "NotAnArticle"]


@dataclass(frozen=True)
class ExtractOptions:
    min_text_chars: int = 400
    keep_raw_html: bool = True
    template_block_chars: int = 300  # NEWS_TEMPLATE_MAX_BLOCK_CHARS
    group_features: dict | None = None  # pipelines.group.features() keyword arguments; None = no grouping
    detect_articles: bool = True  # NEWS_DETECT_ARTICLES: reject listing, forum, product, docs pages
    site_rules: dict = field(default_factory=dict)  # NEWS_SITE_RULES
    recall_fallback: bool = True  # retry in trafilatura's recall mode when the text covers little of the page

    def rules_for(self, host: str) -> dict:
        """The NEWS_SITE_RULES entry for ``host`` or its closest parent domain."""
        host = host.lower()
        while host:
            if host in self.site_rules:
                return self.site_rules[host]
            host = host.partition(".")[2]
        return {}


RECALL_PAGE_SHARE = 0.5  # retry when the text is under this share of the page's visible text
RECALL_ACCEPT_RATIO = 1.5  # keep the recall-mode text when it is this much longer (both cleaned)
FAST_TEXT_SHARE = 0.6  # fast mode's text must reach this share of the page's <p> text (docs/extraction.md)
BASELINE_PARAGRAPH_SHARE = 0.5  # try trafilatura's baseline() when the text is under this share of the <p> text
BASELINE_ACCEPT_RATIO = 2.0  # and keep it when it is this much longer (both cleaned)
BASELINE_PROSE_SHARE = 0.8  # and what it adds is mostly lines of PROSE_LINE_CHARS (detect.py) or more


def _as_dict(doc) -> dict:
    if doc is None:
        return {}
    return doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)


class NotAnArticle(Exception):
    """Raised by extract() with the reason a page is not kept."""


def decode_html(body: bytes, encoding: str | None) -> str:
    """Decode with the response's encoding, replacing invalid bytes instead of failing."""
    try:
        return body.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # unknown charset name
        return body.decode("utf-8", errors="replace")


def extract(body: bytes, encoding: str | None, url: str, hints: dict | None, options: ExtractOptions) -> dict:
    """Extract one page. Returns the article fields, or raises NotAnArticle(reason)."""
    import trafilatura  # imported in the worker process

    hints = hints or {}
    from trafilatura.utils import load_html

    html = decode_html(body, encoding)
    if not html.strip():
        raise NotAnArticle("empty page")
    tree = load_html(html)
    if tree is None:
        raise NotAnArticle("not parseable as HTML")
    keys = html_block_keys(tree, options.template_block_chars)  # before trafilatura prunes the tree
    host = (urlsplit(url).hostname or "").lower()
    prune_xpath = options.rules_for(host).get("prune_xpath") or None
    settings = dict(
        url=url,
        prune_xpath=prune_xpath,
        include_comments=False,
        include_tables=True,
        deduplicate=False,  # trafilatura's cache is process-global: grouping is our job
        date_extraction_params={"extensive_search": True, "original_date": True},
    )
    declared = declares_article(tree)
    doc, data, raw = _first_pass(tree, declared, options.min_text_chars, settings)
    text = clean_text(raw, tree, url, data.get("title"))
    # recall fallback: trafilatura's recall mode, kept when it gives 1.5x more text once both
    # are cleaned (needs_recall_retry says when to try)
    if options.recall_fallback and needs_recall_retry(doc is not None, raw, tree, declared):
        again = trafilatura.bare_extraction(tree, favor_recall=True, with_metadata=doc is None, **settings)
        if again is not None:
            again_data = _as_dict(again)
            more = clean_text((again_data.get("text") or "").strip(), tree, url, data.get("title") or again_data.get("title"))
            if len(more) > RECALL_ACCEPT_RATIO * len(text):
                if doc is None:
                    data = again_data
                doc, text = again, more
    if doc is None:
        raise NotAnArticle("no main text found")
    if len(text) >= options.min_text_chars and not prune_xpath:  # baseline() knows no prune rules
        text = _baseline_if_longer(text, tree, url, data.get("title"))
    if len(text) < options.min_text_chars:
        raise NotAnArticle(f"too little text ({len(text)} < {options.min_text_chars} characters)")
    if options.detect_articles:
        verdict = article_verdict(tree, url, data)  # trafilatura worked on a copy: the tree is intact
        if verdict:
            raise NotAnArticle(verdict)
    title = clean_title((data.get("title") or hints.get("title") or "").strip(), data.get("sitename"), url) or None
    published, published_source = resolve_published(tree, url, data.get("date"), hints)
    result = {
        "title": title,
        "text": text,
        "published": published,
        "published_source": published_source,
        "authors": _clean(data.get("author")),
        "sitename": _clean(data.get("sitename")),
        "hostname": host,
        "language": _clean(data.get("language")) or _clean(hints.get("language")),  # trafilatura sets none without a target language; GDELT tells
        "description": _clean(data.get("description")),
        "tags": json.dumps(_tags(data), ensure_ascii=False),
        "image": _clean(data.get("image")),
        "word_count": len(text.split()),
        "content_hash": content_hash(text),
        "html_zlib": zlib.compress(body, 1) if options.keep_raw_html else None,  # level 1: 3x faster than 6, ~15% larger
        "block_keys": keys,
    }
    if options.group_features is not None:
        result["group_features"] = features(title or "", text, **options.group_features)
    return result


def _first_pass(tree, declared: bool, min_chars: int, settings: dict):
    """trafilatura's extraction: (document or None, its fields, its text). A page whose JSON-LD
    declares an article is extracted in fast mode (no readability/jusText comparison: about
    7 ms less on a news page), and again in full when that falls short; the full text is
    kept unless it is shorter (docs/extraction.md)."""
    import trafilatura  # imported in the worker process

    doc = trafilatura.bare_extraction(tree, with_metadata=True, fast=declared, **settings)
    data = _as_dict(doc)
    raw = (data.get("text") or "").strip()
    if declared and (doc is None or fast_pass_fell_short(raw, tree, min_chars)):
        # fast mode's metadata is the full mode's (the date search is configured explicitly)
        full = trafilatura.bare_extraction(tree, with_metadata=doc is None, **settings)
        full_raw = (_as_dict(full).get("text") or "").strip()
        if full is not None and len(full_raw) >= len(raw):
            data = _as_dict(full) if doc is None else {**data, "text": full_raw}
            doc, raw = full, full_raw
    return doc, data, raw


def _baseline_if_longer(text: str, tree, url: str, title: str | None) -> str:
    """trafilatura's baseline() (the JSON-LD articleBody, the <article>, else every
    paragraph) instead of ``text`` when ``text`` holds under BASELINE_PARAGRAPH_SHARE of the
    page's <p> text and the cleaned baseline is BASELINE_ACCEPT_RATIO times longer: the
    extractor kept one part of a long article (docs/extraction.md, "Baseline fallback")."""
    import trafilatura  # imported in the worker process

    if len(text) >= BASELINE_PARAGRAPH_SHARE * paragraph_text_chars(tree):
        return text
    # on a copy: trafilatura 2.3 copies an lxml tree itself, older releases may not (not checked),
    # and detection and dates read this tree afterwards
    fallback = clean_text(trafilatura.baseline(copy.deepcopy(tree))[1].strip(), tree, url, title)
    if len(fallback) <= BASELINE_ACCEPT_RATIO * len(text):
        return text
    # what it adds must be prose: a list of short card descriptions (a "Featured" sidebar of
    # <p> teasers) is also <p> text, and is exactly what must stay out
    have = {line.strip() for line in text.split("\n")}
    added = [line.strip() for line in fallback.split("\n") if line.strip() and line.strip() not in have]
    prose = sum(len(line) for line in added if len(line) >= PROSE_LINE_CHARS)
    return fallback if prose >= BASELINE_PROSE_SHARE * sum(map(len, added)) else text


def fast_pass_fell_short(raw: str, tree, min_chars: int) -> bool:
    """Whether a fast-mode extraction must be redone with trafilatura's full cascade: its text
    is under the article minimum, or under FAST_TEXT_SHARE of the text in the page's <p>
    elements (it took one block of a longer text that the readability comparison would find)."""
    return len(raw) < min_chars or len(raw) < FAST_TEXT_SHARE * paragraph_text_chars(tree)


def needs_recall_retry(found: bool, raw: str, tree, declared: bool) -> bool:
    """Whether to extract again in trafilatura's recall mode: when the first pass found
    nothing, or when its text covers under half of the page's visible text (it may have taken
    one block of a longer text), except on pages whose JSON-LD declares an article
    (``declared``, detect.declares_article): there (most news pages) the retry gained no text
    on any benchmark page (docs/extraction.md)."""
    if not found:
        return True
    return not declared and len(raw) < RECALL_PAGE_SHARE * page_text_chars(tree)


_BLOCK_TAGS = ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a", "dt", "dd", "td", "th", "blockquote", "figcaption", "caption")


def html_block_keys(tree, max_chars: int) -> list[int]:
    """Keys of the page's short text blocks, for site-template removal (pipelines/template.py)."""
    texts = set()  # about half the blocks repeat another's text (a link alone in its list item)
    for element in tree.iter(_BLOCK_TAGS):
        text = " ".join(element.itertext()).strip()
        if text and len(text) <= max_chars:
            texts.add(text)
    return list({block_key(text) for text in texts})


def _clean(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _tags(data: dict) -> list[str]:
    tags: list[str] = []
    for key in ("categories", "tags"):
        value = data.get(key) or []
        if isinstance(value, str):
            value = [v for v in value.split(",")]
        tags.extend(t.strip() for t in value if t and t.strip())
    return list(dict.fromkeys(tags))


def _extract_job(body, encoding, url, hints, options):
    """Worker entry point: returns ("ok", fields) or ("not_article", reason)."""
    try:
        return "ok", extract(body, encoding, url, hints, options)
    except NotAnArticle as exc:
        return "not_article", str(exc)


_WARM_PAGE = (
    b"<html><head><title>Warm-up</title><meta property='article:published_time' content='2020-01-01'></head>"
    b"<body><article><h1>Warm-up</h1><p>" + b"A sentence to warm up the extractor's lazy imports. " * 12 + b"</p></article></body></html>"
)


def _worker_init() -> None:
    """Run once per worker: the first extraction pays for lazy imports and caches."""
    try:
        extract(_WARM_PAGE, "utf-8", "http://warm.up/a", {}, ExtractOptions(min_text_chars=0, keep_raw_html=False))
    except NotAnArticle:
        pass


def _noop() -> None:
    return None


def read_site_rules(settings) -> dict:
    try:
        rules = settings.getdict("NEWS_SITE_RULES")
    except ValueError as exc:
        raise ValueError(f"NEWS_SITE_RULES is not valid JSON: {exc}") from None
    for host, rule in rules.items():
        if not isinstance(rule, dict) or set(rule) - {"prune_xpath"}:
            raise ValueError(
                f"NEWS_SITE_RULES[{host!r}] = {rule!r}: each rule is a dict with a 'prune_xpath' "
                "(one XPath or a list), e.g. {\"example.com\": {\"prune_xpath\": [\"//aside\"]}}"
            )
    return {host.lower(): rule for host, rule in rules.items()}


class ExtractPipeline:
    """Runs :func:`extract` in a process pool sized to the machine (NEWS_EXTRACT_WORKERS)."""

    def __init__(
        self,
        stats,
        workers: int,
        options: ExtractOptions,
        max_tasks_per_child: int | None = None,
        in_flight: InFlight | None = None,
        stop_crawl: Callable[[str], object] | None = None,
    ):
        self.stats = stats
        self.workers = workers
        self.max_tasks_per_child = max_tasks_per_child
        self.options = options
        self.in_flight = in_flight  # pauses fetching while too many articles are in the pipelines (pipelines/flow.py)
        self._pool: ProcessPoolExecutor | None = None
        self._starting: Future | None = None  # the first pool, being started in a thread
        self.stop_crawl = stop_crawl  # called with a reason when no pool can start
        self._stopping = False

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        workers = settings.getint("NEWS_EXTRACT_WORKERS", 0)
        if workers < 0:
            raise ValueError(f"NEWS_EXTRACT_WORKERS={workers}: the number of extraction processes must be 1 or more (0 = one per CPU core)")
        workers = workers or os.cpu_count() or 1
        options = ExtractOptions(
            min_text_chars=settings.getint("NEWS_MIN_TEXT_CHARS", 400),
            keep_raw_html=settings.getbool("NEWS_KEEP_RAW_HTML", True),
            site_rules=read_site_rules(settings),
            template_block_chars=settings.getint("NEWS_TEMPLATE_MAX_BLOCK_CHARS", 300),
            detect_articles=settings.getbool("NEWS_DETECT_ARTICLES", True),
            group_features=Grouper.from_settings(settings).feature_kwargs if settings.getbool("NEWS_GROUPING", True) else None,
        )
        in_flight = InFlight.from_crawler(crawler, in_flight_limit(settings, workers))
        return cls(
            crawler.stats,
            workers,
            options,
            settings.getint("NEWS_EXTRACT_MAX_TASKS_PER_CHILD", 500) or None,
            in_flight,
            stop_crawl=lambda reason: asyncio.ensure_future(crawler.engine.close_spider_async(reason=reason)),
        )

    def open_spider(self):
        # Starting the workers takes about half a second (the forkserver imports trafilatura):
        # in a thread, so that discovery runs meanwhile; the first page waits for it.
        self._starting = Future()
        threading.Thread(target=self._start_first_pool, args=(self._starting,), name="news-extract-pool", daemon=True).start()

    def _start_first_pool(self, started: Future) -> None:
        try:
            pool = self._new_pool()
        except BaseException as exc:  # the first page to wait for it stops the crawl
            logger.exception("Could not start the extraction pool (%d worker processes)", self.workers)
            started.set_exception(exc)
            return
        started.set_result(pool)
        logger.info("Extraction pool: %d worker process(es)", self.workers)

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: workers fork from a clean server process (never from the reactor's),
        # with the extraction code already imported
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["pipelines.extract", "pipelines.group", "trafilatura"])
        # (ProcessPoolExecutor's own max_tasks_per_child is not used: with CPython 3.11 it can
        # leave a future pending for ever when a worker is replaced; see _submit for recycling)
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_worker_init)
        for _ in range(self.workers):  # start the workers now, while discovery runs
            pool.submit(_noop)
        self._submitted = 0
        return pool

    def _submit(self, *args):
        """Submit one page; every max_tasks_per_child x workers pages, start a fresh pool so that
        lxml/trafilatura caches and fragmentation cannot grow without bound on long crawls (the
        old pool finishes the pages it has, then its workers exit)."""
        if self.max_tasks_per_child and self._submitted >= self.max_tasks_per_child * self.workers:
            old, self._pool = self._pool, self._new_pool()
            old.shutdown(wait=False)
            logger.debug("Extraction pool recycled")
        self._submitted += 1
        return self._pool.submit(_extract_job, *args)

    def _restart_pool(self) -> None:
        broken, self._pool = self._pool, self._new_pool()
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        logger.warning("Extraction pool restarted after a worker died")

    def close_spider(self):
        if self._pool is None and self._starting is not None:
            try:
                self._pool = self._starting.result()  # waits, in a crawl that ended while the pool started
            except Exception:  # logged by _start_first_pool
                pass
        self._starting = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def process_item(self, item):
        if not isinstance(item, ArticleItem):
            return item
        if self.in_flight is not None:
            self.in_flight.enter(item)  # it leaves on item_scraped / item_dropped / item_error
        args = (item["html"], item.get("encoding"), item["url"], item.get("hints"), self.options)
        try:
            if self._pool is None:
                pool = await asyncio.wrap_future(self._starting)
                if self._pool is None:  # (a page that waited longer must not undo a restart)
                    self._pool = pool
            future = self._submit(*args)
            pool = self._pool
            try:
                status, payload = await asyncio.wrap_future(future)
            except BrokenProcessPool:
                # a worker died (killed, out of memory, a crash in a C extension): start a new
                # pool (once, however many pages were waiting on the broken one) and retry
                if self._pool is pool:
                    self._restart_pool()
                status, payload = await asyncio.wrap_future(self._submit(*args))
        except Exception as exc:  # a crashed worker or a bug: count it, keep crawling
            if self._pool is None and not self._stopping and self.stop_crawl is not None:
                self._stopping = True  # no pool could start: no page can be extracted
                self.stop_crawl("extraction_pool_failed")
            count(self.stats, "errors", item["topics"])
            logger.error("Extraction failed for %s: %r", item["url"], exc)
            raise DropItem(f"extraction failed: {exc!r}", log_level="DEBUG") from None
        finally:
            item["html"] = None  # the body is not needed past this point
        if status == "not_article":
            count(self.stats, "not_article", item["topics"])
            logger.info("Not an article (%s): %s", payload, item["url"])
            raise NotAnArticleDrop(f"not an article: {payload}", log_level="DEBUG")
        item.update(payload)
        return item
