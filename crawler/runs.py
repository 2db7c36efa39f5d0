"""Crawl run records (table ``crawl_runs``) and the end-of-crawl summary.

A row is written when the crawl starts (status ``running``) and completed when it
closes, with the counts of the crawl in total and per topic (``crawl_run_topics``) and
its full Scrapy stats. Failed fetches are kept in ``fetch_errors``. A run that never
reaches ``finished`` (killed, crashed) keeps status ``running`` with no finish time until
the next crawl starts and finds its process gone: then it becomes ``failed`` with the
reason "process gone (killed or crashed)".
"""

from __future__ import annotations

import json
import logging
import os
import resource
from datetime import datetime, timezone
from pathlib import Path

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import signals as news_signals
from crawler.stats import topic_counts, totals
from pipelines.db import COUNTERS, open_db

logger = logging.getLogger(__name__)

_STATUS = {"finished": "finished", "shutdown": "interrupted", "config_error": "failed"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CrawlRunRecorder:
    def __init__(self, crawler, db_path: str):
        self.crawler = crawler
        self.stats = crawler.stats
        self.db_path = str(Path(db_path).resolve())
        self.db = None
        self.run_id: int | None = None
        self.topics: list[str] = []
        self._errors: list[dict] = []
        self._error_kinds: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler):
        db_path = crawler.settings.get("NEWS_DB")
        if not db_path:
            raise NotConfigured("NEWS_DB is not set")
        ext = cls(crawler, db_path)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(ext.fetch_failed, signal=news_signals.fetch_failed)
        return ext

    def spider_opened(self, spider):
        self.db = open_db(self.db_path)
        self._close_abandoned_runs()
        self.topics = [t.name for t in getattr(spider, "topics", ())]
        row = {"topics": json.dumps(self.topics), "started_at": _now(), "status": "running", "db_path": self.db_path, "pid": os.getpid()}
        with self.db.atomic():
            self.run_id = self.db["crawl_runs"].insert(row).last_pk
        self.stats.set_value("news/run_id", self.run_id)
        logger.info("Crawl run %d started; database %s", self.run_id, self.db_path)

    def _close_abandoned_runs(self) -> None:
        """Runs still 'running' whose process is gone were killed or crashed: say so."""
        gone = [
            run_id
            for run_id, pid in self.db.execute("SELECT id, pid FROM crawl_runs WHERE status = 'running'").fetchall()
            if not pid_alive(pid)
        ]
        if gone:
            with self.db.atomic():
                for run_id in gone:
                    self.db["crawl_runs"].update(run_id, {"status": "failed", "finish_reason": "process gone (killed or crashed)"})
            logger.warning("Marked %d earlier crawl run(s) whose process is gone as failed: %s", len(gone), gone)

    def fetch_failed(self, url, kind, detail, topics=()):
        self._error_kinds[kind] = self._error_kinds.get(kind, 0) + 1
        self._errors.append({"run_id": self.run_id, "url": url, "kind": kind, "detail": detail, "at": _now()})
        if len(self._errors) >= 100:
            self._write_errors()

    def _write_errors(self) -> None:
        if self._errors and self.db is not None:
            with self.db.atomic():
                self.db["fetch_errors"].insert_all(self._errors)
            self._errors = []

    def spider_closed(self, spider, reason):
        if self.db is None:
            return
        self._write_errors()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.stats.set_value("news/main_process_cpu_seconds", round(usage.ru_utime + usage.ru_stime, 2))
        total = totals(self.stats, COUNTERS)
        per_topic = {t: topic_counts(self.stats, t, COUNTERS) for t in self.topics}
        status = _STATUS.get(reason, "failed")
        update = {
            "finished_at": _now(),
            "status": status,
            "finish_reason": reason,
            **total,
            "error_kinds": json.dumps(dict(sorted(self._error_kinds.items()))),
            "stats": _stats_json(self.stats.get_stats()),
        }
        with self.db.atomic():
            self.db["crawl_runs"].update(self.run_id, update)
            self.db["crawl_run_topics"].insert_all(
                [{"run_id": self.run_id, "topic": t, **c} for t, c in per_topic.items()], replace=True
            )
        logger.info("%s", format_summary(self.run_id, status, reason, total, per_topic, self.db_path))
        self.db.close()
        self.db = None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (used for abandoned runs here and in scheduler.py)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stats_json(stats: dict) -> str:
    return json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in stats.items()}, default=str, sort_keys=True)


_LABELS = {
    "discovered": "found",
    "skipped_seen": "seen",
    "skipped_old": "old",
    "robots_blocked": "robots",
    "fetched": "fetched",
    "not_modified": "304",
    "not_article": "not art.",
    "irrelevant": "irrelev.",
    "stored": "stored",
    "errors": "errors",
}


def format_summary(run_id, status, reason, total: dict, per_topic: dict, db_path: str) -> str:
    """The one-screen table logged at the end of each crawl."""
    width = max([len("topic"), len("total"), *(len(t) for t in per_topic)])
    header = "topic".ljust(width) + "".join(f"{_LABELS[c]:>10}" for c in COUNTERS)
    lines = [
        f"News crawl summary: run {run_id}, {status} ({reason})",
        header,
        "-" * len(header),
    ]
    for topic, counts in per_topic.items():
        lines.append(topic.ljust(width) + "".join(f"{counts[c]:>10}" for c in COUNTERS))
    lines.append("total".ljust(width) + "".join(f"{total[c]:>10}" for c in COUNTERS))
    lines.append(f"Database: {db_path}  (explore: make serve DB={db_path})")
    return "\n".join(lines)
