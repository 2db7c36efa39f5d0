"""Store: batched, transactional writes of articles to the SQLite store.

All writes go through one dedicated thread that owns the connection, so the reactor
never waits on SQLite. Each batch (articles, their topics, their raw HTML) is one
transaction: a crash leaves whole articles or none.

Test-only setting (not for users, not in the README's settings table):
``NEWS_TEST_WRITE_PAUSE_FILE``: a path; the first batch that stores an article creates
this file and then sleeps ``TEST_WRITE_PAUSE_SECONDS`` inside its transaction, between
the article row and its topics and raw HTML rows, so tests/test_crash_safety.py can
SIGKILL the crawl in the middle of a batch write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import signals as news_signals
from crawler.items import ArticleItem
from crawler.stats import count
from crawler.topics import topics_by_name
from pipelines.db import open_db, write_transaction
from pipelines.drops import IrrelevantDrop, NotAnArticleDrop
from pipelines.group import Grouper, features
from pipelines.memory import HeapTrimmer, fix_mmap_threshold

logger = logging.getLogger(__name__)

# batches handed to the writer thread and not yet written: one being written, one waiting.
# An article arriving when both are taken waits (process_item does not return), so fetching
# and extraction cannot run ahead of SQLite and pile up articles in memory (pipelines/flow.py)
MAX_PENDING_BATCHES = 2

#: resolved Google News ids older than this are forgotten at crawl start (google_links): a
#: search returning one again costs one more resolution; the table stays small
GOOGLE_LINKS_KEEP_DAYS = 90

#: how long the NEWS_TEST_WRITE_PAUSE_FILE hook holds the write transaction open
TEST_WRITE_PAUSE_SECONDS = 5.0

ARTICLE_COLUMNS = (
    "url",
    "fetched_url",
    "title",
    "text",
    "published",
    "published_source",
    "authors",
    "sitename",
    "hostname",
    "language",
    "description",
    "tags",
    "image",
    "word_count",
    "content_hash",
    "cluster_id",
    "story_id",
    "fetched_at",
)


class StorePipeline:
    """Writes kept articles to NEWS_DB in batches of NEWS_STORE_BATCH_SIZE.

    A batch is also written when its oldest article has waited NEWS_STORE_FLUSH_SECONDS,
    and at the end of the crawl. An article whose URL is already stored is not written
    again (its new topics are still recorded) and counts as ``skipped_seen``.

    Pages dropped as not an article, or as irrelevant to all their topics, are recorded in
    ``url_outcomes`` (through the item_dropped signal) so later crawls do not fetch them again.

    A source listing an article the spider does not fetch (again) (signal article_listed: the
    article is stored, or this crawl fetched it and it may still be in extraction) tags the
    stored article with that source's topic when the topic's query matches its stored title
    and text, and is recorded in ``article_sources`` for the topics the article is tagged
    with. Listings of an article not stored yet wait for it until the end of the crawl.
    """

    def __init__(
        self,
        crawler,
        db_path: str,
        batch_size: int,
        flush_seconds: float,
        grouper=None,
        trimmer: HeapTrimmer | None = None,
        test_pause_file: str | None = None,
        topics: dict | None = None,
    ):
        self.crawler = crawler
        self.stats = crawler.stats
        self.db_path = db_path
        self.batch_size = max(1, batch_size)
        self.flush_seconds = flush_seconds
        self.grouper = grouper
        self.trimmer = trimmer
        self.test_pause_file = test_pause_file  # NEWS_TEST_WRITE_PAUSE_FILE (tests only)
        self._buffer: list[dict] = []
        self._outcomes: list[dict] = []
        self.topics = topics or {}  # name -> Topic, to tag articles listed again
        self._listed: list[tuple[str, tuple]] = []  # (url, sources) from article_listed, not written yet
        self._listed_waiting: list[tuple[str, tuple]] = []  # those whose article is not stored yet
        self._google_links: list[dict] = []  # Google ids resolved (signal google_link_resolved)
        self._executor: ThreadPoolExecutor | None = None
        self._db = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Future] = set()
        self._writing: set[asyncio.Future] = set()  # batches submitted to the writer thread

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        db_path = settings.get("NEWS_DB")
        if not db_path:
            raise NotConfigured("NEWS_DB is not set")
        pipeline = cls(
            crawler,
            db_path,
            settings.getint("NEWS_STORE_BATCH_SIZE", 50),
            settings.getfloat("NEWS_STORE_FLUSH_SECONDS", 2.0),
            Grouper.from_settings(settings) if settings.getbool("NEWS_GROUPING", True) else None,
            HeapTrimmer(settings.getfloat("NEWS_MALLOC_TRIM_SECONDS", 1.0)),
            settings.get("NEWS_TEST_WRITE_PAUSE_FILE") or None,
            topics_by_name(settings),
        )
        fix_mmap_threshold(settings.getint("NEWS_MALLOC_MMAP_THRESHOLD", 1 << 20))  # the crawl process's heap (pipelines/memory.py)
        crawler.signals.connect(pipeline.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(pipeline.article_listed, signal=news_signals.article_listed)
        crawler.signals.connect(pipeline.google_link_resolved, signal=news_signals.google_link_resolved)
        crawler.signals.connect(pipeline.articles_recleaned, signal=news_signals.articles_recleaned)
        return pipeline

    # -- lifecycle ------------------------------------------------------------------
    def open_spider(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="news-store")
        self._db = self._executor.submit(open_db, self.db_path).result()
        self._executor.submit(self._forget_old_google_links).result()
        if self.grouper is not None:
            # the grouping indexes live in the writer thread: assign() and persist() run
            # there, in arrival order, with no await between a query and its insert
            self._executor.submit(self.grouper.restore, self._db).result()

    async def close_spider(self):
        if self._timer is not None:
            self._timer.cancel()
        while self._flushing or self._writing:  # batches on their way: their waiting listings come back
            await asyncio.gather(*self._flushing, *self._writing, return_exceptions=True)
        await self._flush(final=True)
        # everything is written: components that post-process this crawl's articles go now,
        # before the run is recorded as finished (the writer thread is still there for
        # articles_recleaned)
        self.crawler.signals.send_catch_log(news_signals.store_finished, run_id=self.stats.get_value("news/run_id"))
        self._executor.submit(self._db.close).result()
        self._executor.shutdown(wait=True)

    # -- items ----------------------------------------------------------------------
    async def process_item(self, item):
        if not isinstance(item, ArticleItem):
            return item
        while len(self._writing) >= MAX_PENDING_BATCHES:
            self.stats.inc_value("news/store_waits")
            await asyncio.wait(set(self._writing), return_when=asyncio.FIRST_COMPLETED)
        self._buffer.append(_row(item))
        await self._added()
        return item

    def item_dropped(self, item, response, exception, spider=None):
        if not isinstance(exception, (NotAnArticleDrop, IrrelevantDrop)) or not isinstance(item, ArticleItem):
            return
        topics = [""] if isinstance(exception, NotAnArticleDrop) else list(item.get("topics") or ())
        for topic in topics:
            # the query that judged it (see _StoreReader.known); a topic unknown here gets "",
            # which matches no query, so the page is judged again
            fingerprint = (self.topics[topic].query_fingerprint if topic in self.topics else "") if topic else None
            self._outcomes.append(
                {"url": item["url"], "topic": topic, "outcome": exception.outcome, "reason": str(exception), "query_fingerprint": fingerprint}
            )
        self._track(asyncio.ensure_future(self._added()))

    def articles_recleaned(self, rows):
        """Articles whose text TemplatePipeline cleaned again at the end of the crawl: regroup
        them on the writer thread (waits: a page of rows at a time, at the end of the crawl)."""
        if self.grouper is None or self._executor is None:
            return
        try:
            self._executor.submit(self._rejoin, rows).result()
        except Exception:
            logger.exception("Could not regroup %d article(s) cleaned again (python -m pipelines.cluster regroup --db %s regroups the store)", len(rows), self.db_path)

    def _rejoin(self, rows) -> None:
        moved = []
        with write_transaction(self._db):
            for url, title, text in rows:
                hostname = urlsplit(url).netloc.lower()  # a site is host[:port], as in _group
                try:
                    feats = features(title or "", text or "", **self.grouper.feature_kwargs)
                    assignment = self.grouper.rejoin(url, hostname, feats)
                except Exception:  # this article keeps its groups; the others go on
                    logger.exception("Could not regroup %s after it was cleaned again", url)
                    continue
                if assignment is not None:
                    moved.append((url, assignment))
            self.grouper.persist_rejoined(self._db, moved)
        joined = sum(1 for _, a in moved if a.duplicate_of)
        if joined:
            logger.info("%d article(s) cleaned again joined the near-duplicate group of another article", joined)
            self.stats.inc_value("news/rejoined_copies", joined)

    def article_listed(self, url: str, sources=()):
        """A source listed an article that is not fetched (again): ``sources`` are (topic,
        kind, source URL, query)."""
        self._listed.append((url, tuple(sources)))
        self._track(asyncio.ensure_future(self._added()))

    def google_link_resolved(self, article_id: str, url: str):
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._google_links.append({"id": article_id, "url": url, "resolved_at": now})
        self._track(asyncio.ensure_future(self._added()))

    def _track(self, task: asyncio.Future) -> None:
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _added(self) -> None:
        if len(self._buffer) + len(self._outcomes) + len(self._listed) + len(self._google_links) >= self.batch_size:
            await self._flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_seconds, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        self._track(asyncio.ensure_future(self._flush()))

    async def _flush(self, final: bool = False) -> None:
        """Write what is buffered. ``final``: the crawl's last write; listings still waiting
        for their article after it are dropped (the article was not stored)."""
        if not self._buffer and not self._outcomes and not self._listed and not self._google_links and not final:
            return
        batch, self._buffer = self._buffer, []
        outcomes, self._outcomes = self._outcomes, []
        google_links, self._google_links = self._google_links, []
        listed, self._listed, self._listed_waiting = self._listed_waiting + self._listed, [], []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        run_id = self.stats.get_value("news/run_id")
        writing = asyncio.wrap_future(self._executor.submit(self._write, batch, outcomes, run_id, listed, google_links))
        self._writing.add(writing)
        writing.add_done_callback(self._writing.discard)
        try:
            stored, seen, tagged, waiting = await writing
        except Exception:
            logger.exception("Could not write %d article(s) to %s", len(batch), self.db_path)
            for row in batch:
                count(self.stats, "errors", row["topics"])
            if not final:  # the listings and Google links are tried again with the next batch
                self._listed_waiting.extend(listed)
                self._google_links.extend(google_links)
            return
        for row in stored:
            count(self.stats, "stored", row["topics"])
        for row in seen:
            count(self.stats, "skipped_seen", row["topics"])
        for topic in tagged:  # a stored article tagged with one more topic: stored for it, not in total
            count(self.stats, "stored", [topic], total=False)
        if final and waiting:
            logger.debug("%d listing(s) of articles that were not stored are not recorded", len(waiting))
        elif waiting:
            self._listed_waiting.extend(waiting)
        logger.debug("Stored %d article(s), %d already present", len(stored), len(seen))

    # -- the writer thread ----------------------------------------------------------------
    def _write(
        self, batch: list[dict], outcomes: list[dict], run_id: int | None, listed: list[tuple[str, tuple]] = (), google_links: list[dict] = ()
    ) -> tuple[list[dict], list[dict], list[str], list[tuple[str, tuple]]]:
        """Write one batch in one transaction; return the rows stored, the rows already
        present, the topics newly tagged on listed articles, and the listings still waiting."""
        db = self._db
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        stored, seen = [], []
        with write_transaction(db):
            if outcomes:
                db["url_outcomes"].insert_all(({**o, "run_id": run_id, "at": now} for o in outcomes), replace=True)
            if google_links:
                db["google_links"].insert_all(google_links, replace=True)
            for row in batch:
                exists = db.execute("SELECT 1 FROM articles WHERE url = ?", [row["url"]]).fetchone()
                topic_rows = [_topic_row(row["url"], t, row["matches"].get(t, []), run_id, now) for t in row["topics"]]
                sources = [(src["topic"], src["kind"], src["source"], src["query"]) for src in row["sources"]]
                db["article_sources"].insert_all(_source_rows(row["url"], sources, row["topics"], run_id, now), ignore=True)
                if exists:
                    seen.append(row)
                    db["article_topics"].insert_all(topic_rows, ignore=True)
                    continue
                article = {k: row.get(k) for k in ARTICLE_COLUMNS}
                article["run_id"] = run_id
                db["articles"].insert(article)
                # verdicts of earlier crawls for these topics (irrelevant to an older query) are void now
                db.conn.executemany("DELETE FROM url_outcomes WHERE url = ? AND topic = ?", [(row["url"], t) for t in row["topics"]])
                if self.test_pause_file:
                    self._test_pause()
                db["article_topics"].insert_all(topic_rows, ignore=True)
                if row.get("html_zlib") is not None:
                    db["raw_html"].insert(
                        {
                            "url": row["url"],
                            "fetched_url": row["fetched_url"],
                            "status": row.get("status"),
                            "content_type": row.get("content_type"),
                            "html_zlib": row["html_zlib"],
                            "fetched_at": row["fetched_at"],
                        }
                    )
                stored.append(row)
            if self.grouper is not None and stored:
                self._group(db, stored)
            tagged, waiting = self._write_listed(db, listed, run_id, now)
        if self.trimmer is not None:
            # this batch's rows and grouping features are garbage now: hand the pages back
            self.trimmer.maybe_trim()
        return stored, seen, tagged, waiting

    def _write_listed(self, db, listed, run_id, now) -> tuple[list[str], list[tuple[str, tuple]]]:
        """Topics and sources of articles listed again (see the class docstring), in a
        savepoint: a failure here loses these rows (logged), never the batch's articles."""
        try:
            with db.atomic():
                return self._tag_listed(db, listed, run_id, now)
        except Exception:
            logger.exception("Could not record %d listing(s) of stored articles", len(listed))
            return [], []

    def _tag_listed(self, db, listed, run_id, now) -> tuple[list[str], list[tuple[str, tuple]]]:
        tagged_now, waiting = [], []
        for url, sources in listed:
            if not db.execute("SELECT 1 FROM articles WHERE url = ?", [url]).fetchone():
                # dropped in this crawl (not an article, irrelevant): never stored; else on its way
                if not db.execute("SELECT 1 FROM url_outcomes WHERE url = ? AND run_id IS ?", [url, run_id]).fetchone():
                    waiting.append((url, sources))
                continue
            tagged = {t for (t,) in db.execute("SELECT topic FROM article_topics WHERE url = ?", [url]).fetchall()}
            article = None
            for name in dict.fromkeys(source[0] for source in sources):
                topic = self.topics.get(name)
                if name in tagged or topic is None:
                    continue
                if article is None:  # the text is read only when a new topic's query needs it
                    article = db.execute("SELECT title, text FROM articles WHERE url = ?", [url]).fetchone()
                matched = topic.match(f"{article[0] or ''}\n{article[1] or ''}")
                if matched is not None:
                    db["article_topics"].insert(_topic_row(url, name, sorted(matched), run_id, now), ignore=True)
                    tagged.add(name)
                    tagged_now.append(name)
            db["article_sources"].insert_all(_source_rows(url, sources, tagged, run_id, now), ignore=True)
        return tagged_now, waiting

    def _forget_old_google_links(self) -> None:
        cutoff = (datetime.now(timezone.utc) - timedelta(days=GOOGLE_LINKS_KEEP_DAYS)).isoformat(timespec="seconds")
        with write_transaction(self._db):
            self._db.execute("DELETE FROM google_links WHERE resolved_at < ?", [cutoff])

    def _test_pause(self) -> None:
        """NEWS_TEST_WRITE_PAUSE_FILE: mark the moment, then hold the open transaction (once)."""
        path, self.test_pause_file = self.test_pause_file, None
        Path(path).write_text("writing\n", encoding="utf-8")
        logger.warning("NEWS_TEST_WRITE_PAUSE_FILE: pausing %.0f s inside a write transaction", TEST_WRITE_PAUSE_SECONDS)
        time.sleep(TEST_WRITE_PAUSE_SECONDS)

    def _group(self, db, rows: list[dict]) -> None:
        """Assign groups to newly stored articles; a grouping failure never loses the articles."""
        try:
            with db.atomic():  # a savepoint inside the batch's transaction
                assigned = []
                for row in rows:
                    if row.get("group_features") is None:
                        continue
                    site = urlsplit(row["url"]).netloc.lower()  # host[:port]: one site per origin
                    a = self.grouper.assign(row["url"], row.get("title"), row.get("published"), site, row["group_features"])
                    db.execute("UPDATE articles SET cluster_id = ?, story_id = ? WHERE url = ?", [a.cluster_id, a.story_id, row["url"]])
                    assigned.append((row["url"], a))
                self.grouper.persist(db, assigned)
        except Exception:
            logger.exception("Grouping failed for %d article(s); they are stored without groups (regroup later)", len(rows))
            self.stats.inc_value("news/grouping_errors", len(rows))


def _topic_row(url: str, topic: str, matched: list, run_id, now: str) -> dict:
    """An article_topics row: the article tagged with ``topic``, with its matched terms."""
    return {"url": url, "topic": topic, "matched": json.dumps(matched), "run_id": run_id, "added_at": now}


def _source_rows(url: str, sources, topics, run_id, now: str) -> list[dict]:
    """article_sources rows of ``sources`` ((topic, kind, source URL, query)) for the
    topics the article is tagged with."""
    return [
        {"url": url, "topic": t, "kind": kind, "source": source, "query": query, "run_id": run_id, "found_at": now}
        for t, kind, source, query in sources
        if t in topics
    ]


def _row(item: ArticleItem) -> dict:
    row = {k: item.get(k) for k in ARTICLE_COLUMNS}
    row.update(
        topics=tuple(item.get("topics") or ()),
        sources=list(item.get("sources") or ()),
        matches=item.get("matches") or {},
        html_zlib=item.get("html_zlib"),
        group_features=item.get("group_features"),
        status=item.get("status"),
        content_type=item.get("content_type"),
    )
    return row
