"""The crawl database as the scheduler sees it: its own migrations and table schedule_runs
(read and written), and the crawler's crawl_runs (read only)."""

from __future__ import annotations

import os
import statistics
import threading
from datetime import datetime
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from crawler.runs import run_process_alive
from newsdaemon.clock import iso, parse_time, utcnow
from newsdaemon.judge import LOW_YIELD_HISTORY
from pipelines.db import open_db

__all__ = ["SCHEDULER_MIGRATIONS", "Store"]

SCHEDULER_MIGRATIONS = Migrations("news-scheduler")


@SCHEDULER_MIGRATIONS()
def m001_schedule_runs(db: sqlite_utils.Database) -> None:
    db["schedule_runs"].create(
        {
            "id": int,
            "topic": str,
            "trigger": str,  # scheduled | catch-up | once | manual
            "started_at": str,  # ISO UTC: when the run was recorded (a scheduled run: when due; it may then wait for a slot)
            "finished_at": str,
            "outcome": str,  # ok | failed | skipped | timeout | interrupted; NULL while running
            "reason": str,
            "crawl_run_id": int,  # crawl_runs.id of the crawl this run started, if it recorded itself
            "exit_code": int,  # the crawl process's exit code (negative: killed by that signal)
            "scheduler_pid": int,  # the scheduler process that made the run
        },
        pk="id",
    )
    db["schedule_runs"].create_index(["topic", "started_at"])
    db["schedule_runs"].create_index(["crawl_run_id"])


def scheduler_alive(pid: int | None, started_at: str | None) -> bool:
    """Whether the scheduler process that recorded a run (``pid``, ``started_at``) still runs:
    another process than this one, whose command line names the scheduler and which started
    before the run was recorded (not a reused pid)."""
    return run_process_alive(pid, started_at, markers=(b"scheduler",))


_TOPIC_IN_RUN = "EXISTS (SELECT 1 FROM json_each(r.topics) WHERE json_each.value = :topic)"


class Store:
    """The crawl database as the scheduler sees it: crawl_runs (read) and schedule_runs (read/write)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.db = open_db(self.path)
        SCHEDULER_MIGRATIONS.apply(self.db)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _query(self, sql: str, params: dict | tuple = ()) -> list[dict]:
        with self._lock:
            return list(self.db.query(sql, params))

    # schedule_runs -------------------------------------------------------------------
    def start_run(self, topic: str, trigger: str) -> int:
        row = {"topic": topic, "trigger": trigger, "started_at": iso(utcnow()), "scheduler_pid": os.getpid()}
        with self._lock:
            return self.db["schedule_runs"].insert(row).last_pk

    def finish_run(self, run_id: int, outcome: str, reason: str, crawl_run_id: int | None = None, exit_code: int | None = None) -> None:
        update = {"finished_at": iso(utcnow()), "outcome": outcome, "reason": reason, "crawl_run_id": crawl_run_id, "exit_code": exit_code}
        with self._lock:
            self.db["schedule_runs"].update(run_id, update)

    def record_skip(self, topic: str, trigger: str, reason: str) -> int:
        now = iso(utcnow())
        row = {"topic": topic, "trigger": trigger, "started_at": now, "finished_at": now, "outcome": "skipped", "reason": reason, "scheduler_pid": os.getpid()}
        with self._lock:
            return self.db["schedule_runs"].insert(row).last_pk

    def close_orphans(self) -> int:
        """Runs left without an outcome by a scheduler that died: mark them interrupted.
        Called before this process records any run, so a row with its own pid is a previous
        holder's (a daemon that was pid 1 in a container, killed and started again)."""
        rows = self._query("SELECT id, scheduler_pid, started_at FROM schedule_runs WHERE outcome IS NULL")
        orphans = [r for r in rows if not scheduler_alive(r["scheduler_pid"], r["started_at"])]
        for row in orphans:
            reason = f"the scheduler (pid {row['scheduler_pid']}) stopped before recording an outcome"
            with self._lock:
                self.db["schedule_runs"].update(row["id"], {"outcome": "interrupted", "reason": reason, "finished_at": iso(utcnow())})
        return len(orphans)

    def open_run(self, topic: str, before_id: int | None = None) -> dict | None:
        """The oldest run of ``topic`` without an outcome (due, waiting for a slot or crawling)
        held by a live scheduler process other than this one; only runs before ``before_id``
        if given."""
        rows = self._query(
            "SELECT * FROM schedule_runs WHERE topic = :topic AND outcome IS NULL AND id < :before ORDER BY id",
            {"topic": topic, "before": before_id if before_id is not None else 2**62},
        )
        for row in rows:
            if scheduler_alive(row["scheduler_pid"], row["started_at"]):
                return row
        return None

    def last_attempt(self, topic: str) -> dict | None:
        rows = self._query(
            "SELECT * FROM schedule_runs WHERE topic = ? AND outcome IS NOT NULL AND outcome != 'skipped' ORDER BY id DESC LIMIT 1", (topic,)
        )
        return rows[0] if rows else None

    def first_attempt_time(self, topic: str) -> datetime | None:
        rows = self._query("SELECT min(started_at) AS t FROM schedule_runs WHERE topic = ? AND outcome != 'skipped'", (topic,))
        return parse_time(rows[0]["t"]) if rows else None

    # crawl_runs ----------------------------------------------------------------------
    def max_crawl_id(self) -> int:
        return self._query("SELECT coalesce(max(id), 0) AS m FROM crawl_runs")[0]["m"]

    def find_crawl_run(self, topic: str, pid: int, after_id: int) -> dict | None:
        """The crawl_runs row a crawl process created: by its pid, else the newest one for the topic."""
        rows = self._query(
            f"SELECT * FROM crawl_runs r WHERE r.id > :after AND (r.pid = :pid OR {_TOPIC_IN_RUN}) ORDER BY r.id",
            {"after": after_id, "pid": pid, "topic": topic},
        )
        by_pid = [r for r in rows if r["pid"] == pid]
        row = (by_pid or rows or [None])[-1]
        if row is None:
            return None
        counts = self._query("SELECT * FROM crawl_run_topics WHERE run_id = ? AND topic = ?", (row["id"], topic))
        if counts:  # the topic's own counters rather than the whole crawl's
            row = {**row, **{k: v for k, v in counts[0].items() if k not in ("run_id", "topic")}}
        return row

    def last_success(self, topic: str) -> dict | None:
        """The topic's newest finished crawl that the scheduler did not judge failed."""
        rows = self._query(
            f"""SELECT r.*, t.stored AS topic_stored, t.discovered AS topic_discovered
                FROM crawl_runs r LEFT JOIN crawl_run_topics t ON t.run_id = r.id AND t.topic = :topic
                WHERE r.status = 'finished' AND {_TOPIC_IN_RUN}
                  AND NOT EXISTS (SELECT 1 FROM schedule_runs s WHERE s.crawl_run_id = r.id AND s.topic = :topic AND s.outcome != 'ok')
                ORDER BY r.id DESC LIMIT 1""",
            {"topic": topic},
        )
        return rows[0] if rows else None

    def baseline(self, topic: str, before_id: int) -> tuple[float | None, int]:
        """Median `discovered` over the topic's last finished crawls before ``before_id``, and how many there were."""
        rows = self._query(
            f"""SELECT coalesce(t.discovered, r.discovered) AS discovered
                FROM crawl_runs r LEFT JOIN crawl_run_topics t ON t.run_id = r.id AND t.topic = :topic
                WHERE r.status = 'finished' AND r.id < :before AND {_TOPIC_IN_RUN}
                ORDER BY r.id DESC LIMIT :n""",
            {"topic": topic, "before": before_id, "n": LOW_YIELD_HISTORY},
        )
        values = [r["discovered"] or 0 for r in rows]
        return (statistics.median(values) if values else None), len(values)

    def running_crawl(self, topic: str) -> dict | None:
        """A crawl of ``topic`` still running in some other process (by its live pid), if any."""
        rows = self._query(
            f"SELECT id, pid, started_at FROM crawl_runs r WHERE r.status = 'running' AND r.finished_at IS NULL AND {_TOPIC_IN_RUN} "
            "ORDER BY r.id DESC LIMIT 20",
            {"topic": topic},
        )
        for row in rows:
            if run_process_alive(row["pid"], row["started_at"]):  # a live crawl process, not a reused pid
                return row
        return None
