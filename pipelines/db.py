"""The SQLite store: connection set-up and schema migrations.

Every component that touches the database opens it with :func:`open_db`, which sets WAL
mode (so Datasette can read while a crawl writes), a busy timeout, and applies pending
migrations. Schema changes are new functions registered on ``migrations`` below: never
edit one that has shipped.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

__all__ = ["open_db", "migrations", "COUNTERS"]

migrations = Migrations("news")

#: crawl counters stored per run and per (run, topic), in summary order
COUNTERS = (
    "discovered",
    "skipped_seen",
    "skipped_old",
    "robots_blocked",
    "fetched",
    "not_modified",
    "not_article",
    "irrelevant",
    "stored",
    "errors",
)


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["articles"].create(
        {
            "url": str,  # canonical URL
            "fetched_url": str,  # the URL requested
            "title": str,
            "text": str,
            "published": str,  # ISO date (YYYY-MM-DD) or datetime, never the crawl date
            "published_source": str,  # jsonld | meta | page | feed | sitemap | url
            "authors": str,  # "; "-separated
            "sitename": str,
            "hostname": str,
            "language": str,
            "description": str,
            "tags": str,  # JSON list
            "image": str,
            "word_count": int,
            "content_hash": str,  # sha1 of normalised text: exact copies share it
            "cluster_id": str,  # near-duplicate group
            "story_id": str,  # same-story group
            "fetched_at": str,
            "run_id": int,  # crawl that stored it
        },
        pk="url",
    )
    db["articles"].create_index(["content_hash"])
    db["articles"].create_index(["published"])
    db["articles"].create_index(["hostname"])
    db["articles"].enable_fts(["title", "text"], create_triggers=True, tokenize="porter")

    db["article_topics"].create(
        {"url": str, "topic": str, "matched": str, "run_id": int, "added_at": str},
        pk=("url", "topic"),
        foreign_keys=[("url", "articles", "url")],
    )
    db["article_topics"].create_index(["topic"])

    db["raw_html"].create(
        {"url": str, "fetched_url": str, "status": int, "content_type": str, "html_zlib": bytes, "fetched_at": str},
        pk="url",
        foreign_keys=[("url", "articles", "url")],
    )

    counters = {name: int for name in COUNTERS if name != "robots_blocked"}  # as shipped in m001
    db["crawl_runs"].create(
        {
            "id": int,
            "topics": str,  # JSON list of topic names
            "started_at": str,
            "finished_at": str,
            "status": str,  # running | finished | failed | interrupted
            "finish_reason": str,
            "db_path": str,
            "pid": int,
            **counters,
            "stats": str,  # JSON of the crawl's full Scrapy stats
        },
        pk="id",
    )
    db["crawl_run_topics"].create(
        {"run_id": int, "topic": str, **counters},
        pk=("run_id", "topic"),
        foreign_keys=[("run_id", "crawl_runs", "id")],
    )

    db["source_state"].create(
        {"url": str, "kind": str, "etag": str, "last_modified": str, "last_status": int, "checked_at": str},
        pk="url",
    )

    db["fetch_errors"].create(
        {"id": int, "run_id": int, "url": str, "kind": str, "detail": str, "at": str},
        pk="id",
    )
    db["fetch_errors"].create_index(["run_id"])


@migrations()
def m002_url_outcomes(db: sqlite_utils.Database) -> None:
    # pages fetched and not kept, so later crawls do not fetch them again:
    # topic '' = the page itself (not an article); otherwise irrelevant to that topic
    db["url_outcomes"].create(
        {"url": str, "topic": str, "outcome": str, "reason": str, "run_id": int, "at": str},
        pk=("url", "topic"),
    )


@migrations()
def m003_robots_blocked(db: sqlite_utils.Database) -> None:
    db["crawl_runs"].add_column("robots_blocked", int)
    db["crawl_run_topics"].add_column("robots_blocked", int)


@migrations()
def m004_site_blocks(db: sqlite_utils.Database) -> None:
    # per site, how many pages each short text block appeared on (site-template removal)
    db["site_blocks"].create(
        {"host": str, "key": int, "pages": int, "last_seen": str},
        pk=("host", "key"),
    )


@migrations()
def m005_article_sources(db: sqlite_utils.Database) -> None:
    # which feed, sitemap, listing page or news search (and query) found each article
    db["article_sources"].create(
        {"url": str, "topic": str, "kind": str, "source": str, "query": str, "run_id": int, "found_at": str},
        pk=("url", "topic", "kind", "source"),
    )
    db["article_sources"].create_index(["kind"])


@migrations()
def m006_error_kinds(db: sqlite_utils.Database) -> None:
    # failures of a crawl counted by kind (http_404, timeout, too_large, ...), as JSON
    db["crawl_runs"].add_column("error_kinds", str)


@migrations()
def m007_google_links(db: sqlite_utils.Database) -> None:
    # Google News ids (newer format) resolved to their publisher URL: not asked again
    db["google_links"].create({"id": str, "url": str, "resolved_at": str}, pk="id")


@migrations()
def m008_outcome_query(db: sqlite_utils.Database) -> None:
    # the fingerprint of the topic's query that judged a page irrelevant: a changed query
    # judges the page again (NULL on rows written before this column: their verdict stands)
    db["url_outcomes"].add_column("query_fingerprint", str)


@contextlib.contextmanager
def write_transaction(db):
    """A write transaction that takes SQLite's write lock first (``BEGIN IMMEDIATE``).

    A crawl has more than one writing connection (the store's writer thread; the crawl-run
    recorder's fetch_errors, crawler/runs.py; the template pipeline's re-clean; the
    scheduler's process). A plain deferred
    ``BEGIN`` that reads first fails at once with "database is locked" when another
    connection commits before it writes; an immediate one waits for the lock instead
    (open_db's busy timeout). Savepoints (``db.atomic()``) nest inside it.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    else:
        try:
            db.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise


def open_db(path: str | Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (and create) the store at ``path``: WAL, busy timeout, schema up to date."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA busy_timeout = 30000")
    db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    if migrate:
        from pipelines.group import GROUP_MIGRATIONS

        migrations.apply(db)
        GROUP_MIGRATIONS.apply(db)
    return db
