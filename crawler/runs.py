"""Crawl run records (table ``crawl_runs``) and the end-of-crawl summary.

A row is written when the crawl starts (status ``running``) and completed when it
closes, with the counts of the crawl in total and per topic (``crawl_run_topics``) and
its full Scrapy stats. Failed fetches are kept in ``fetch_errors``, written within
``ERRORS_FLUSH_SECONDS`` of being recorded (with the run's ``error_kinds`` so far), so a
killed crawl keeps them. A run that never reaches ``finished`` (killed, crashed) keeps
status ``running`` with no finish time until the next crawl starts and finds its process
gone (or its pid held by another process, see :func:`run_process_alive`): then it
becomes ``failed`` with the reason "process gone (killed or crashed)".
"""

from __future__ import annotations

import json
import logging
import os
import resource
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import call_later

from crawler import signals as news_signals
from crawler.stats import topic_counts, totals
from pipelines.db import COUNTERS, open_db, write_transaction

logger = logging.getLogger(__name__)

_STATUS = {"finished": "finished", "shutdown": "interrupted", "config_error": "failed"}

#: recorded failures wait at most this long before they are written to fetch_errors ...
ERRORS_FLUSH_SECONDS = 1.0
#: ... or until this many are waiting
ERRORS_FLUSH_ROWS = 50
#: a live process holding a run's pid that started this long after the run is another process
_START_SLACK_SECONDS = 60


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
        self._flush_call = None
        # fetch_errors are written on this thread: the reactor never waits for the store's
        # writer to release SQLite's write lock (open_db's busy timeout covers the wait)
        self._writer: ThreadPoolExecutor | None = None

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
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="news-runs")
        self.stats.set_value("news/run_id", self.run_id)
        logger.info("Crawl run %d started; database %s", self.run_id, self.db_path)

    def _close_abandoned_runs(self) -> None:
        """Runs still 'running' whose process is gone (or whose pid another process holds now)
        were killed or crashed: say so."""
        gone = [
            run_id
            for run_id, pid, started_at in self.db.execute("SELECT id, pid, started_at FROM crawl_runs WHERE status = 'running'").fetchall()
            if not run_process_alive(pid, started_at)
        ]
        if gone:
            with self.db.atomic():
                for run_id in gone:
                    self.db["crawl_runs"].update(run_id, {"status": "failed", "finish_reason": "process gone (killed or crashed)"})
            logger.warning("Marked %d earlier crawl run(s) whose process is gone as failed: %s", len(gone), gone)

    def fetch_failed(self, url, kind, detail, topics=()):
        self._error_kinds[kind] = self._error_kinds.get(kind, 0) + 1
        self._errors.append({"run_id": self.run_id, "url": url, "kind": kind, "detail": detail, "at": _now()})
        if len(self._errors) >= ERRORS_FLUSH_ROWS:
            self._flush_errors()
        elif self._flush_call is None and self._writer is not None:
            self._flush_call = call_later(ERRORS_FLUSH_SECONDS, self._flush_errors)

    def _flush_errors(self) -> None:
        """Hand the recorded failures (and the kinds counted so far) to the writer thread."""
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush_call = None
        if self._errors and self._writer is not None:
            rows, self._errors = self._errors, []
            self._writer.submit(self._write_errors, rows, dict(self._error_kinds))

    def _write_errors(self, rows: list[dict], kinds: dict[str, int]) -> None:
        try:
            with write_transaction(self.db):  # waits for the store's writer, never fails on it
                self.db["fetch_errors"].insert_all(rows)
                self.db["crawl_runs"].update(self.run_id, {"error_kinds": json.dumps(dict(sorted(kinds.items())))})
        except Exception:
            logger.exception("Could not write %d fetch error(s) to %s", len(rows), self.db_path)

    def spider_closed(self, spider, reason):
        if self.db is None:
            return
        self._flush_errors()
        if self._writer is not None:
            self._writer.shutdown(wait=True)  # every fetch_errors row is written
            self._writer = None
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.stats.set_value("news/main_process_cpu_seconds", round(usage.ru_utime + usage.ru_stime, 2))
        self.stats.set_value("news/main_process_peak_rss_mb", round(usage.ru_maxrss / 1024, 1))  # Linux: KiB
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


def run_process_alive(pid: int | None, started_at: str | None, markers: tuple[bytes, ...] = (b"scrapy", b"crawl")) -> bool:
    """Whether the crawl that recorded a 'running' row (``pid``, ``started_at``) is still running.

    A live pid is not enough: after a reboot or a pid wrap-around another process can hold
    it. Where /proc tells, that process must look like a crawl (its command line names one
    of ``markers``: scrapy or crawl; the scheduler passes its own) and must not have started
    after the run did; and it is never this process, which has not recorded its own run yet.
    """
    if not pid_alive(pid) or pid == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc here: trust the pid; else it just ended
    except OSError:
        return True  # /proc hidden from us: cannot tell
    if not any(marker in cmdline for marker in markers):
        return False
    proc_start = _process_start_time(pid)
    try:
        run_start = datetime.fromisoformat(started_at).timestamp() if started_at else None
    except ValueError:
        run_start = None
    return proc_start is None or run_start is None or proc_start <= run_start + _START_SLACK_SECONDS


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (Unix time) from /proc, or None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks after boot
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


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
