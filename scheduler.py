#!/usr/bin/env python3
"""The daily scheduler daemon: runs ``scrapy crawl news -a topic=NAME`` for every topic on a schedule.

    python scheduler.py                   # foreground daemon: every topic daily at 06:00 (server time)
    python scheduler.py --once            # every topic once, now; exit 0 only if all succeeded
    python scheduler.py --list            # topics, schedules, next run times
    python scheduler.py --status          # last successful run per topic; exit 1 when one is overdue

Each run is a ``scrapy crawl`` subprocess (Scrapy's reactor cannot restart in one process)
with a time limit. A run is judged from the crawl's own record in ``crawl_runs`` (status
and counters), not from its exit code alone, and the scheduler's view of every run is kept
in its own table ``schedule_runs``. See docs/scheduler.md for the rules and a systemd unit.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import logging.handlers
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import sqlite_utils
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlite_utils.migrations import Migrations

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # so that `python /path/to/scheduler.py` works from anywhere
    sys.path.insert(0, str(ROOT))

from crawler import settings as crawl_settings  # noqa: E402
from crawler.runs import pid_alive  # noqa: E402
from crawler.topics import Topic, TopicsError, load_topics, select_topics  # noqa: E402
from pipelines.db import open_db  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    "SCHEDULER_MIGRATIONS",
    "ScheduleError",
    "parse_cron",
    "parse_duration",
    "next_due_after",
    "judge",
    "Store",
    "Runner",
    "main",
]

DEFAULT_CRON = "0 6 * * *"
DEFAULT_TIME_LIMIT = 3600.0  # seconds one crawl may take
DEFAULT_GRACE = 120.0  # seconds a running crawl may go on after SIGTERM/SIGINT
INTERRUPT_WAIT = 45.0  # seconds between SIGINT to a crawl (graceful stop) and SIGKILL
HOOK_TIME_LIMIT = 120.0  # seconds an --on-failure command may take
STATUS_SLACK = 600.0  # --status: seconds of leeway after a due run's time limit
POLL = 0.2  # seconds between checks on a running crawl

# "far fewer articles than usual" (see judge())
LOW_YIELD_HISTORY = 5  # baseline: median `discovered` of the topic's last N finished crawls
LOW_YIELD_MIN_HISTORY = 3  # ... of which at least this many are needed
LOW_YIELD_MIN_BASELINE = 5  # a baseline below this is too small to judge from
LOW_YIELD_RATIO = 0.2  # fewer than a fifth of the usual count is "far fewer"
MANY_ERRORS = 10  # at least this many failed fetches, and more than pages fetched

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
CRAWL_COMMAND_ENV = "NEWS_CRAWL_COMMAND"
CRAWL_LOG_FORMAT = "%(levelname)s [%(name)s] %(message)s"  # the scheduler's logging adds the time


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# --- the scheduler's own table ----------------------------------------------------------

SCHEDULER_MIGRATIONS = Migrations("news-scheduler")


@SCHEDULER_MIGRATIONS()
def m001_schedule_runs(db: sqlite_utils.Database) -> None:
    db["schedule_runs"].create(
        {
            "id": int,
            "topic": str,
            "trigger": str,  # scheduled | catch-up | once | manual
            "started_at": str,  # ISO UTC
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


# --- schedules -------------------------------------------------------------------------


class ScheduleError(ValueError):
    """A bad schedule, time zone or duration, with a message naming where it came from."""


_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_CRON_FIELD_NAMES = {"day": "day of month", "day_of_week": "day of week"}
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 (and 7) = Sunday


def parse_cron(expr: str, tz) -> CronTrigger:
    """A CronTrigger for a standard 5-field crontab expression (or @daily & co) in ``tz``.

    Day-of-week numbers follow cron (0 or 7 = Sunday), not APScheduler 3.x (0 = Monday).
    Raises ScheduleError naming the faulty field.
    """
    text = " ".join(str(expr).split())
    text = _CRON_ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise ScheduleError(f"{expr!r}: unknown shortcut; use one of {', '.join(sorted(_CRON_ALIASES))} or 5 cron fields")
    values = text.split(" ")
    if len(values) != 5:
        raise ScheduleError(
            f"{expr!r} has {len(values)} field(s); a cron expression has 5: minute hour day-of-month month day-of-week, "
            f"e.g. \"0 6 * * *\" for 06:00 every day"
        )
    fields = dict(zip(_CRON_FIELDS, values))
    fields["day_of_week"] = _cron_weekdays(fields["day_of_week"], expr)
    for name, value in fields.items():  # one at a time, so the message can name the field
        try:
            CronTrigger(**{name: value}, timezone=tz)
        except ValueError as exc:
            label = _CRON_FIELD_NAMES.get(name, name)
            raise ScheduleError(f"{expr!r}: bad {label} field {value!r}: {exc}") from None
    return CronTrigger(**fields, timezone=tz)


def _cron_weekdays(value: str, expr: str) -> str:
    """Translate a cron day-of-week field into APScheduler 3.x day names."""
    if value in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in value.lower().split(","):
        days |= _cron_weekday_part(part, expr)
    if len(days) == 7:
        return "*"
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _cron_weekday_part(part: str, expr: str) -> set[int]:
    match = re.fullmatch(r"(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/(\d+))?", part)
    if not match or (match.group(1) == "*" and match.group(2)):
        raise ScheduleError(f"{expr!r}: bad day of week field: {part!r} is not a day, a range or a step (e.g. 1-5, mon,wed, */2)")
    start, end, step = match.groups()
    if start == "*":
        first, last = 0, 6
    else:
        first = _cron_weekday(start, expr)
        last = _cron_weekday(end, expr) if end else (6 if step else first)
    if last < first:
        raise ScheduleError(f"{expr!r}: bad day of week field: range {part!r} runs backwards; write it as e.g. 1-5 or mon-fri")
    stride = int(step) if step else 1
    if stride < 1:
        raise ScheduleError(f"{expr!r}: bad day of week field: step in {part!r} must be at least 1")
    return {day % 7 for day in range(first, last + 1, stride)}


def _cron_weekday(token: str, expr: str) -> int:
    """0-7 as written (7 = Sunday again, so that 1-7 works), or a day name as 0-6."""
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    raise ScheduleError(f"{expr!r}: bad day of week field: {token!r} is not a day (0-7, 0 and 7 = Sunday, or sun-sat)")


def parse_timezone(name: str | None):
    """The named IANA time zone, or the server's own when ``name`` is empty."""
    if not name:
        import tzlocal  # an APScheduler 3.x dependency

        return tzlocal.get_localzone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC") from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '30m', '2h' or '1d'."""
    match = _DURATION.match(str(text))
    if not match:
        raise ScheduleError(f"{text!r} is not a duration; write seconds (90) or use a unit: 90s, 30m, 2h, 1d")
    number, unit = match.groups()
    return float(number) * _UNITS[unit.lower() if unit else None]


@dataclass(frozen=True)
class TopicSchedule:
    name: str
    trigger: CronTrigger | IntervalTrigger
    expr: str  # as given, for display
    source: str  # default | --cron | topics file | --interval
    interval: float | None = None

    @property
    def job_id(self) -> str:
        return f"topic:{self.name}"


def build_schedules(topics, *, default_cron: str, cron_source: str, tz, interval: float | None, topics_path) -> list[TopicSchedule]:
    """One schedule per topic: --interval, else the topic's own `schedule`, else --cron / the default."""
    if interval is not None:
        return [
            TopicSchedule(t.name, IntervalTrigger(seconds=interval, timezone=tz), f"every {interval:g}s", "--interval", interval)
            for t in topics
        ]
    try:
        default = parse_cron(default_cron, tz)
    except ScheduleError as exc:
        raise ScheduleError(f"{cron_source}: {exc}") from None
    schedules = []
    for index, topic in enumerate(topics, 1):
        if topic.schedule:
            try:
                trigger = parse_cron(topic.schedule, tz)
            except ScheduleError as exc:
                raise ScheduleError(f"{topics_path}: topic #{index} ({topic.name!r}), field 'schedule': {exc}") from None
            schedules.append(TopicSchedule(topic.name, trigger, topic.schedule, "topics file"))
        else:
            schedules.append(TopicSchedule(topic.name, default, default_cron, cron_source))
    return schedules


def next_due_after(schedule: TopicSchedule, when: datetime) -> datetime:
    """The first scheduled time strictly after ``when``."""
    if schedule.interval is not None:
        return when + timedelta(seconds=schedule.interval)
    return schedule.trigger.get_next_fire_time(None, when + timedelta(microseconds=1))


# --- the database ------------------------------------------------------------------------


def _looks_like_crawl(pid: int) -> bool:
    """Whether live process ``pid`` is plausibly a crawl (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists() and pid_alive(pid)  # no /proc: trust the pid
    except OSError:
        return True
    return b"crawl" in cmdline or b"scrapy" in cmdline


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
        row = {"topic": topic, "trigger": trigger, "started_at": _iso(_utcnow()), "scheduler_pid": os.getpid()}
        with self._lock:
            return self.db["schedule_runs"].insert(row).last_pk

    def finish_run(self, run_id: int, outcome: str, reason: str, crawl_run_id: int | None = None, exit_code: int | None = None) -> None:
        update = {"finished_at": _iso(_utcnow()), "outcome": outcome, "reason": reason, "crawl_run_id": crawl_run_id, "exit_code": exit_code}
        with self._lock:
            self.db["schedule_runs"].update(run_id, update)

    def record_skip(self, topic: str, trigger: str, reason: str) -> int:
        now = _iso(_utcnow())
        row = {"topic": topic, "trigger": trigger, "started_at": now, "finished_at": now, "outcome": "skipped", "reason": reason, "scheduler_pid": os.getpid()}
        with self._lock:
            return self.db["schedule_runs"].insert(row).last_pk

    def close_orphans(self) -> int:
        """Runs left without an outcome by a scheduler that died: mark them interrupted."""
        rows = self._query("SELECT id, scheduler_pid FROM schedule_runs WHERE outcome IS NULL")
        orphans = [r for r in rows if r["scheduler_pid"] != os.getpid() and not pid_alive(r["scheduler_pid"])]
        for row in orphans:
            reason = f"the scheduler (pid {row['scheduler_pid']}) stopped before recording an outcome"
            with self._lock:
                self.db["schedule_runs"].update(row["id"], {"outcome": "interrupted", "reason": reason, "finished_at": _iso(_utcnow())})
        return len(orphans)

    def last_attempt(self, topic: str) -> dict | None:
        rows = self._query(
            "SELECT * FROM schedule_runs WHERE topic = ? AND outcome IS NOT NULL AND outcome != 'skipped' ORDER BY id DESC LIMIT 1", (topic,)
        )
        return rows[0] if rows else None

    def first_attempt_time(self, topic: str) -> datetime | None:
        rows = self._query("SELECT min(started_at) AS t FROM schedule_runs WHERE topic = ? AND outcome != 'skipped'", (topic,))
        return _parse_time(rows[0]["t"]) if rows else None

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
            if row["pid"] != os.getpid() and pid_alive(row["pid"]) and _looks_like_crawl(row["pid"]):
                return row
        return None


# --- judging a run ----------------------------------------------------------------------


def judge(
    row: dict | None, exit_code: int | None, stopped: str | None = None, baseline: tuple[float | None, int] = (None, 0), stop_note: str = ""
) -> tuple[str, str]:
    """(outcome, reason) for one crawl, from its crawl_runs row (with the topic's counters).

    ``stopped`` is 'timeout' or 'shutdown' when the scheduler stopped the crawl itself;
    ``baseline`` is (median discovered of the topic's recent finished crawls, how many);
    ``stop_note`` says why a shutdown stopped it.
    """
    if row is not None and row.get("status") == "finished" and exit_code == 0:
        return _judge_counts(row, baseline)
    if stopped == "timeout":
        return "timeout", f"time limit reached; crawl stopped ({_crawl_state(row, exit_code)})"
    if stopped == "shutdown":
        return "interrupted", f"scheduler stopping; crawl stopped{' ' + stop_note if stop_note else ''} ({_crawl_state(row, exit_code)})"
    if row is None:
        return "failed", f"the crawl {_describe_exit(exit_code)} without recording itself in crawl_runs (see its log)"
    status = row.get("status")
    if status == "running":
        return "failed", f"crashed: the crawl {_describe_exit(exit_code)} leaving crawl run {row['id']} unfinished"
    if status == "failed":
        what = "bad topics configuration" if row.get("finish_reason") == "config_error" else "crawl failed"
        return "failed", f"{what} (crawl run {row['id']}: {row.get('finish_reason')}); see the crawl log"
    if status == "interrupted":
        return "failed", f"crawl run {row['id']} was interrupted from outside the scheduler ({row.get('finish_reason')})"
    if status == "finished":
        return "failed", f"crawl run {row['id']} finished but the crawl {_describe_exit(exit_code)}"
    return "failed", f"crawl run {row['id']} has unexpected status {status!r}"


def _judge_counts(row: dict, baseline: tuple[float | None, int]) -> tuple[str, str]:
    found, unchanged, errors, fetched = (row.get(k) or 0 for k in ("discovered", "not_modified", "errors", "fetched"))
    summary = f"crawl run {row['id']}: {found} found, {row.get('stored') or 0} stored, {unchanged} unchanged source(s), {errors} error(s)"
    if found == 0 and unchanged == 0 and errors > 0:
        return "failed", f"no source answered: nothing found and {errors} failed fetch(es) ({summary})"
    if errors >= MANY_ERRORS and errors > fetched:
        return "failed", f"too many errors: {errors} failed fetches, {fetched} page(s) fetched ({summary})"
    median, history = baseline
    if (
        unchanged == 0
        and median is not None
        and history >= LOW_YIELD_MIN_HISTORY
        and median >= LOW_YIELD_MIN_BASELINE
        and found < median * LOW_YIELD_RATIO
    ):
        return "failed", f"far fewer articles than usual: {found} found, usually {median:g} (median of the last {history} crawls) ({summary})"
    return "ok", summary


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _crawl_state(row: dict | None, exit_code: int | None) -> str:
    if row is None:
        return f"no crawl record; it {_describe_exit(exit_code)}"
    return f"crawl run {row['id']} {row.get('status')}; it {_describe_exit(exit_code)}"


# --- running crawls ---------------------------------------------------------------------


@dataclass
class Config:
    topics_path: Path
    db_path: Path
    time_limit: float = DEFAULT_TIME_LIMIT
    grace: float = DEFAULT_GRACE
    max_parallel: int = 1
    on_failure: str | None = None
    crawl_command: tuple[str, ...] = ()
    scrapy_settings: tuple[str, ...] = ()
    interrupt_wait: float = INTERRUPT_WAIT

    def command_for(self, topic: str) -> list[str]:
        base = list(self.crawl_command) or [sys.executable, "-m", "scrapy", "crawl", "news"]
        args = ["-a", f"topic={topic}", "-s", f"NEWS_TOPICS={self.topics_path}", "-s", f"NEWS_DB={self.db_path}", "-s", f"LOG_FORMAT={CRAWL_LOG_FORMAT}"]
        for setting in self.scrapy_settings:
            args += ["-s", setting]
        return base + args


@dataclass
class RunResult:
    topic: str
    trigger: str
    outcome: str
    reason: str
    run_id: int | None = None
    crawl_run_id: int | None = None
    exit_code: int | None = None


@dataclass
class _Crawl:
    """One crawl process and what the scheduler has done to it."""

    topic: str
    proc: subprocess.Popen
    deadline: float
    stopped: str | None = None  # 'timeout' | 'shutdown'
    kill_at: float | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=20))
    reader: threading.Thread | None = None


class Runner:
    """Runs one topic's crawl at a time per topic, at most ``max_parallel`` crawls in all."""

    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.stopping = threading.Event()  # no new crawls
        self.aborting = threading.Event()  # stop running crawls now
        self.abort_note = ""  # why, for the records
        self._slots = threading.BoundedSemaphore(config.max_parallel)
        self._locks: dict[str, threading.Lock] = {}
        self._active: dict[str, _Crawl] = {}
        self._waiting: set[str] = set()  # topics waiting for a crawl slot
        self._busy = 0
        self._state = threading.Condition()

    # public ----------------------------------------------------------------------------
    def run(self, topic: str, trigger: str) -> RunResult:
        """Run ``topic`` now (skipping if it is already running); never raises."""
        with self._state:
            self._busy += 1
        try:
            return self._run_guarded(topic, trigger)
        except Exception as exc:  # the daemon must keep going
            logger.exception("Topic %s: internal error in the scheduler", topic)
            return RunResult(topic, trigger, "failed", f"internal scheduler error: {exc!r}")
        finally:
            with self._state:
                self._busy -= 1
                self._state.notify_all()

    def running_note(self, topic: str) -> str:
        crawl = self._active.get(topic)
        if crawl:
            return f" (pid {crawl.proc.pid})"
        return " (waiting for a free crawl slot)" if topic in self._waiting else ""

    def abort(self, note: str) -> None:
        """Stop running crawls now (SIGINT, then SIGKILL after --kill-after)."""
        if not self.aborting.is_set():
            self.abort_note = note
            self.aborting.set()

    def active_topics(self) -> list[str]:
        with self._state:
            return list(self._active)

    def drain(self, grace: float) -> None:
        """After stopping: let running crawls finish within ``grace`` seconds, then stop them."""
        self.stopping.set()
        deadline = time.monotonic() + grace
        with self._state:
            if self._active:
                logger.warning("Waiting up to %ss for %d running crawl(s) to finish: %s", f"{grace:g}", len(self._active), ", ".join(self._active))
            while self._active and not self.aborting.is_set() and time.monotonic() < deadline:
                self._state.wait(POLL)
            if self._active and not self.aborting.is_set():
                logger.warning("Grace period over: stopping crawl(s) %s", ", ".join(self._active))
                self.abort("after the grace period")
            while self._busy:
                self._state.wait(POLL)

    # one run ---------------------------------------------------------------------------
    def _run_guarded(self, topic: str, trigger: str) -> RunResult:
        if self.stopping.is_set():
            return self.skip(topic, trigger, "the scheduler is stopping")
        lock = self._locks.setdefault(topic, threading.Lock())
        if not lock.acquire(blocking=False):
            return self.skip(topic, trigger, f"the previous run of {topic!r} is still going{self.running_note(topic)}")
        try:
            if not self._wait_for_slot(topic):
                return self.skip(topic, trigger, "the scheduler is stopping")
            try:
                other = self.store.running_crawl(topic)
                if other:
                    reason = f"crawl run {other['id']} of {topic!r} is still running in another process (pid {other['pid']}, started {other['started_at']})"
                    return self.skip(topic, trigger, reason)
                return self._run_crawl(topic, trigger)
            finally:
                self._slots.release()
        finally:
            lock.release()

    def _wait_for_slot(self, topic: str) -> bool:
        if self._slots.acquire(blocking=False):
            return True
        logger.info("Topic %s: waiting for a free crawl slot (--max-parallel %d)", topic, self.config.max_parallel)
        self._waiting.add(topic)
        try:
            while not self._slots.acquire(timeout=POLL):
                if self.stopping.is_set():
                    return False
        finally:
            self._waiting.discard(topic)
        if self.stopping.is_set():
            self._slots.release()
            return False
        return True

    def skip(self, topic: str, trigger: str, reason: str) -> RunResult:
        logger.warning("Topic %s: %s run skipped: %s", topic, trigger, reason)
        run_id = self.store.record_skip(topic, trigger, reason)
        return RunResult(topic, trigger, "skipped", reason, run_id)

    def _run_crawl(self, topic: str, trigger: str) -> RunResult:
        run_id = self.store.start_run(topic, trigger)
        try:
            return self._crawl_and_judge(topic, trigger, run_id)
        except Exception as exc:  # never leave the run without an outcome
            logger.exception("Topic %s: internal error in the scheduler during run %d", topic, run_id)
            reason = f"internal scheduler error: {exc!r}"
            with contextlib.suppress(Exception):
                self.store.finish_run(run_id, "failed", reason)
            return RunResult(topic, trigger, "failed", reason, run_id)

    def _crawl_and_judge(self, topic: str, trigger: str, run_id: int) -> RunResult:
        before = self.store.max_crawl_id()
        command = self.config.command_for(topic)
        logger.info("Topic %s: starting %s run %d: %s", topic, trigger, run_id, shlex.join(command))
        started = time.monotonic()
        try:
            crawl = self._start(topic, command)
        except OSError as exc:
            reason = f"cannot start the crawl command {command[0]!r}: {exc.strerror or exc}"
            return self._finish(RunResult(topic, trigger, "failed", reason, run_id), started, ())
        exit_code = self._supervise(crawl)
        row = self.store.find_crawl_run(topic, crawl.proc.pid, before)
        baseline = self.store.baseline(topic, row["id"]) if row else (None, 0)
        outcome, reason = judge(row, exit_code, crawl.stopped, baseline, self.abort_note)
        result = RunResult(topic, trigger, outcome, reason, run_id, row["id"] if row else None, exit_code)
        return self._finish(result, started, crawl.tail)

    def _start(self, topic: str, command: list[str]) -> _Crawl:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the scheduler only; it decides
        )
        crawl = _Crawl(topic, proc, time.monotonic() + self.config.time_limit)
        crawl.reader = threading.Thread(target=_forward_output, args=(proc, topic, crawl.tail), name=f"crawl-log-{topic}", daemon=True)
        crawl.reader.start()
        with self._state:
            self._active[topic] = crawl
        return crawl

    def _supervise(self, crawl: _Crawl) -> int:
        """Wait for the crawl, stopping it at its time limit or when the scheduler aborts."""
        try:
            while True:
                try:
                    code = crawl.proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                self._check(crawl)
        finally:
            with self._state:
                self._active.pop(crawl.topic, None)
                self._state.notify_all()
        crawl.reader.join(timeout=5)  # worker processes may hold the pipe a little longer
        return code

    def _check(self, crawl: _Crawl) -> None:
        now = time.monotonic()
        if crawl.stopped is None:
            if now >= crawl.deadline:
                logger.error("Topic %s: time limit of %ss reached; stopping the crawl (pid %d)", crawl.topic, f"{self.config.time_limit:g}", crawl.proc.pid)
                self._interrupt(crawl, "timeout")
            elif self.aborting.is_set():
                self._interrupt(crawl, "shutdown")
        elif crawl.kill_at is not None and now >= crawl.kill_at:
            logger.error("Topic %s: the crawl did not stop within %ss of SIGINT; killing it", crawl.topic, f"{self.config.interrupt_wait:g}")
            _kill_group(crawl.proc)
            crawl.kill_at = None

    def _interrupt(self, crawl: _Crawl, why: str) -> None:
        """SIGINT first: Scrapy shuts down gracefully and records the crawl as interrupted."""
        crawl.stopped = why
        crawl.kill_at = time.monotonic() + self.config.interrupt_wait
        try:
            crawl.proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    def _finish(self, result: RunResult, started: float, tail) -> RunResult:
        self.store.finish_run(result.run_id, result.outcome, result.reason, result.crawl_run_id, result.exit_code)
        took = time.monotonic() - started
        if result.outcome == "ok":
            logger.info("Topic %s: %s run %d ok in %.1fs: %s", result.topic, result.trigger, result.run_id, took, result.reason)
        elif result.outcome == "interrupted":
            logger.warning("Topic %s: %s run %d interrupted after %.1fs: %s", result.topic, result.trigger, result.run_id, took, result.reason)
        else:
            lines = "\n".join(tail)
            logger.error(
                "Topic %s: %s run %d %s after %.1fs: %s%s",
                result.topic, result.trigger, result.run_id, result.outcome.upper(), took, result.reason,
                f"\nLast lines of the crawl's output:\n{lines}" if lines else "",
            )
            self._on_failure(result)
        return result

    def _on_failure(self, result: RunResult) -> None:
        if not self.config.on_failure:
            return
        env = {
            **os.environ,
            "NEWS_TOPIC": result.topic,
            "NEWS_TRIGGER": result.trigger,
            "NEWS_OUTCOME": result.outcome,
            "NEWS_REASON": result.reason,
            "NEWS_SCHEDULE_RUN_ID": str(result.run_id or ""),
            "NEWS_CRAWL_RUN_ID": str(result.crawl_run_id or ""),
            "NEWS_EXIT_CODE": "" if result.exit_code is None else str(result.exit_code),
            "NEWS_DB": str(self.config.db_path),
        }
        try:
            done = subprocess.run(self.config.on_failure, shell=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=HOOK_TIME_LIMIT)
        except subprocess.TimeoutExpired:
            logger.error("--on-failure command took longer than %ss and was stopped", f"{HOOK_TIME_LIMIT:g}")
            return
        except OSError as exc:
            logger.error("--on-failure command could not run: %s", exc)
            return
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            logger.error("--on-failure command exited with code %d%s", done.returncode, f": {output[-2000:]}" if output else "")
        elif output:
            logger.info("--on-failure command: %s", output[-2000:])


def _forward_output(proc: subprocess.Popen, topic: str, tail: deque) -> None:
    """Re-log the crawl's output line by line (level taken from the line), keeping the last lines."""
    crawl_logger = logging.getLogger(f"{__name__}.crawl")
    level = logging.INFO
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            continue
        head = line.split(" ", 1)[0]
        if head in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            level = logging.getLevelName(head)
        tail.append(line)
        crawl_logger.log(level, "[%s] %s", topic, line)
    proc.stdout.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the crawl and its worker processes (its own session: pgid = its pid)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


# --- the daemon -------------------------------------------------------------------------


class Daemon:
    def __init__(self, config: Config, store: Store, schedules: list[TopicSchedule], tz):
        self.config = config
        self.store = store
        self.schedules = schedules
        self.tz = tz
        self.runner = Runner(config, store)
        self.scheduler = BlockingScheduler(
            timezone=tz,
            executors={"default": ThreadPoolExecutor(max_workers=2 * len(schedules) + 2)},
            # coalesce: one run for many missed fire times, never a burst; no misfire limit
            # (APScheduler's default of 1 s would drop a run that is a little late, e.g. after a suspend)
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._job_topics: dict[str, str] = {}

    def run(self) -> int:
        for schedule in self.schedules:
            self._add_job(schedule)
        self._add_catch_ups()
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        self._install_signals()
        logger.info(
            "Scheduler started (pid %d): %d topic(s), time zone %s, database %s; stop with SIGTERM or Ctrl-C",
            os.getpid(), len(self.schedules), self.tz, self.config.db_path,
        )
        if not self.runner.stopping.is_set():
            self.scheduler.start()  # blocks until a signal shuts it down
        self.runner.drain(self.config.grace)
        logger.info("Scheduler stopped")
        return EXIT_OK

    def _add_job(self, schedule: TopicSchedule) -> None:
        job = self.scheduler.add_job(
            self.runner.run, schedule.trigger, args=(schedule.name, "scheduled"), id=schedule.job_id, name=f"crawl {schedule.name}"
        )
        self._job_topics[job.id] = schedule.name
        first = schedule.trigger.get_next_fire_time(None, _utcnow())
        logger.info("Topic %s: %s (%s); next run %s", schedule.name, schedule.expr, schedule.source, _show(first, self.tz))

    def _add_catch_ups(self) -> None:
        now = _utcnow()
        for schedule in self.schedules:
            missed = overdue_since(self.store, schedule, now)
            if missed is None:
                continue
            last = self.store.last_success(schedule.name)
            logger.warning(
                "Topic %s is overdue: a run was due %s and the last successful crawl was %s; one catch-up run now",
                schedule.name, _show(missed, self.tz), _show(_parse_time(last["started_at"]), self.tz) if last else "never",
            )
            job_id = f"catch-up:{schedule.name}"
            self.scheduler.add_job(self.runner.run, "date", run_date=now, args=(schedule.name, "catch-up"), id=job_id, name=f"catch-up {schedule.name}")
            self._job_topics[job_id] = schedule.name

    def _on_event(self, event) -> None:
        topic = self._job_topics.get(event.job_id, event.job_id)
        trigger = "catch-up" if event.job_id.startswith("catch-up:") else "scheduled"
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.runner.skip(topic, trigger, f"the previous run of {topic!r} is still going{self.runner.running_note(topic)}")
        elif event.code == EVENT_JOB_MISSED:
            logger.warning("Topic %s: run due %s was missed", topic, _show(event.scheduled_run_time, self.tz))
        elif event.code == EVENT_JOB_ERROR:
            logger.error("Topic %s: job error: %r", topic, event.exception)

    def _install_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.runner.stopping.is_set():
            logger.warning("Received %s again: stopping running crawls now", name)
            self.runner.abort(f"on a second {name}")
            return
        logger.warning(
            "Received %s: no new crawls; running crawls get %ss to finish (send %s again to stop them now)",
            name, f"{self.config.grace:g}", name,
        )
        self.runner.stopping.set()
        # not from the handler itself: it may have interrupted the scheduler while it holds its locks
        threading.Thread(target=self._stop_scheduler, name="scheduler-stop", daemon=True).start()

    def _stop_scheduler(self) -> None:
        for _ in range(200):
            if self.scheduler.state != STATE_STOPPED:
                self.scheduler.shutdown(wait=False)
                return
            time.sleep(0.05)


def overdue_since(store: Store, schedule: TopicSchedule, now: datetime) -> datetime | None:
    """The scheduled time the topic missed, if a run was due since its last successful crawl.

    A topic never crawled successfully counts from the scheduler's first attempt at it; a
    brand-new topic (no attempt yet) is not overdue: it waits for its first scheduled time.
    """
    last = store.last_success(schedule.name)
    since = _parse_time(last["started_at"]) if last else store.first_attempt_time(schedule.name)
    if since is None:
        return None
    due = next_due_after(schedule, since)
    return due if due is not None and due <= now else None


def _show(when: datetime | None, tz) -> str:
    if when is None:
        return "-"
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


# --- --once, --list, --status -----------------------------------------------------------


def run_once(config: Config, store: Store, names: list[str], trigger: str) -> int:
    """Every topic once; 0 only if all succeeded. SIGTERM/SIGINT stop it as they stop the daemon."""
    runner = Runner(config, store)
    results: dict[str, RunResult] = {}

    def on_signal(signum, frame):
        if runner.stopping.is_set():
            runner.abort(f"on a second {signal.Signals(signum).name}")
        else:
            logger.warning("Received %s: no new crawls; running crawls get %ss to finish", signal.Signals(signum).name, f"{config.grace:g}")
            runner.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    pending = deque(names)
    pending_lock = threading.Lock()

    def worker() -> None:  # topics in file order, max_parallel at a time
        while True:
            with pending_lock:
                if not pending:
                    return
                name = pending.popleft()
            results[name] = runner.run(name, trigger)

    threads = [threading.Thread(target=worker, name=f"once-{i}") for i in range(min(config.max_parallel, len(names)))]
    for thread in threads:
        thread.start()
    deadline = None
    while any(t.is_alive() for t in threads):
        time.sleep(POLL)  # the main thread stays free for signal handlers
        if runner.stopping.is_set() and deadline is None:
            deadline = time.monotonic() + config.grace
        if deadline is not None and time.monotonic() >= deadline and not runner.aborting.is_set():
            logger.warning("Grace period over: stopping crawl(s) %s", ", ".join(runner.active_topics()))
            runner.abort("after the grace period")
    failed = [r for r in results.values() if r.outcome != "ok"]
    for name in names:
        result = results.get(name)
        click.echo(f"{name}: {result.outcome if result else 'not run'}{f' ({result.reason})' if result else ''}")
    return EXIT_FAILED if failed or len(results) < len(names) else EXIT_OK


def list_topics(store: Store | None, schedules: list[TopicSchedule], tz) -> None:
    now = _utcnow()
    rows = []
    for schedule in schedules:
        next_run = schedule.trigger.get_next_fire_time(None, now)
        last = store.last_success(schedule.name) if store else None
        missed = overdue_since(store, schedule, now) if store else None
        rows.append(
            (
                schedule.name,
                schedule.expr,
                schedule.source,
                _show(now if missed else next_run, tz) + (" (catch-up)" if missed else ""),
                f"{_show(_parse_time(last['started_at']), tz)} (crawl run {last['id']})" if last else "never",
            )
        )
    click.echo(f"Time zone: {tz}")
    _table(("topic", "schedule", "from", "next run", "last success"), rows)
    if any(r[3].endswith("(catch-up)") for r in rows):
        click.echo("(catch-up): overdue; the daemon starts one catch-up run for it as soon as it starts")


def status(store: Store | None, schedules: list[TopicSchedule], tz, time_limit: float) -> int:
    """Print the last successful run per topic; 1 if any topic is overdue or never succeeded."""
    now = _utcnow()
    leeway = timedelta(seconds=time_limit + STATUS_SLACK)
    rows, problems = [], []
    for schedule in schedules:
        row, problem = _status_row(store, schedule, now, leeway, tz)
        rows.append(row)
        if problem:
            problems.append(problem)
    click.echo(f"Time zone: {tz}")
    _table(("topic", "state", "last success", "next due", "last scheduler run"), rows)
    for problem in problems:
        click.echo(problem, err=True)
    return EXIT_FAILED if problems else EXIT_OK


def _status_row(store: Store | None, schedule: TopicSchedule, now: datetime, leeway: timedelta, tz) -> tuple[tuple, str | None]:
    last = store.last_success(schedule.name) if store else None
    attempt = store.last_attempt(schedule.name) if store else None
    attempt_text = f"{attempt['outcome']} {_show(_parse_time(attempt['started_at']), tz)}" if attempt else "-"
    why = f"; last scheduler run {attempt['outcome']}: {attempt['reason']}" if attempt and attempt["outcome"] != "ok" else ""
    if last is None:
        return (schedule.name, "NEVER", "never", "-", attempt_text), f"NEVER: topic {schedule.name} has no successful crawl yet{why}"
    started = _parse_time(last["started_at"])
    stored = last["topic_stored"] if last["topic_stored"] is not None else last["stored"]
    last_text = f"{_show(started, tz)} (crawl run {last['id']}, {stored} stored)"
    due = next_due_after(schedule, started)
    if due is not None and now > due + leeway:
        problem = f"OVERDUE: topic {schedule.name} has no successful crawl since {last_text}; a run was due {_show(due, tz)}{why}"
        return (schedule.name, "OVERDUE", last_text, _show(due, tz), attempt_text), problem
    return (schedule.name, "ok", last_text, _show(due, tz), attempt_text), None


def _table(header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


# --- command line -----------------------------------------------------------------------


class ConfigError(click.ClickException):
    exit_code = EXIT_CONFIG

    def show(self, file=None) -> None:
        click.echo(f"scheduler.py: error: {self.format_message()}", err=True)


class _RenameMain(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("__main__"):
            record.name = "scheduler" + record.name[len("__main__"):]
        return True


def setup_logging(level: str, log_file: str | None) -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.WatchedFileHandler(log_file, encoding="utf-8"))  # logrotate-friendly
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_RenameMain())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel("DEBUG" if level == "DEBUG" else "WARNING")


def _lock_daemon(db_path: Path):
    """One daemon per database: an exclusive lock on <db>.scheduler.lock, held while it runs."""
    path = Path(f"{db_path}.scheduler.lock")
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(f"another scheduler (pid {other}) is already running for {db_path} (lock file {path})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _duration(ctx, param, value):
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ScheduleError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0 and param.name != "grace":
        raise click.BadParameter("must be more than 0")
    return seconds


EPILOG = """\b
Examples:
  python scheduler.py                          # daemon: every topic daily at 06:00 (server time)
  python scheduler.py --cron "30 5 * * 1-5" --timezone Europe/Berlin
  python scheduler.py --topics /etc/news/topics.toml --db /var/lib/news/news.db \\
      --log-file /var/log/news/scheduler.log --on-failure 'mail -s "crawl $NEWS_TOPIC failed" me@example.com </dev/null'
  python scheduler.py --once                   # every topic now; exit 0 only if all succeeded
  python scheduler.py --once --topic ai-model-theft
  python scheduler.py --list                   # schedules and next run times
  python scheduler.py --status || alert        # exit 1 when a topic is overdue (monitoring)
  python scheduler.py -s LOG_LEVEL=WARNING -s NEWS_CONTACT=https://example.com/contact

\b
A topic's own `schedule = "0 7 * * *"` in the topics file overrides --cron. Cron fields:
minute hour day-of-month month day-of-week (0 or 7 = Sunday), or @daily, @hourly, ...
Exit codes: 0 ok; 1 a run failed (--once) or a topic is overdue (--status); 2 bad options
or configuration. See docs/scheduler.md (systemd unit, how runs are judged)."""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--topics", "topics_path", type=click.Path(dir_okay=False), default=crawl_settings.NEWS_TOPICS, show_default=True,
    help="Topics file, passed to every crawl.",
)
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), default=crawl_settings.NEWS_DB, show_default=True,
    help="SQLite store, passed to every crawl.",
)
@click.option("--cron", default=None, metavar="EXPR", help=f"Default schedule (cron, 5 fields) for topics without their own. [default: {DEFAULT_CRON}]")
@click.option("--timezone", "tz_name", default=None, metavar="TZ", help="Time zone of the schedules, e.g. Europe/Berlin. [default: the server's]")
@click.option("--topic", "topic_filter", default=None, metavar="NAMES", help="Only these topics (comma-separated).")
@click.option("--once", is_flag=True, help="Run every topic once now and exit: 0 only if all succeeded.")
@click.option("--list", "list_", is_flag=True, help="Show the topics, their schedules and next run times.")
@click.option("--status", "status_", is_flag=True, help="Show the last successful run per topic; exit 1 if one is overdue.")
@click.option(
    "--time-limit", default=str(int(DEFAULT_TIME_LIMIT)), callback=_duration, metavar="DURATION", show_default=True,
    help="Longest one crawl may run (90, 90s, 30m, 2h); then it is stopped and recorded as timeout.",
)
@click.option(
    "--grace", default=str(int(DEFAULT_GRACE)), callback=_duration, metavar="DURATION", show_default=True,
    help="On SIGTERM/SIGINT, how long a running crawl may go on before it is stopped.",
)
@click.option(
    "--kill-after", default=str(int(INTERRUPT_WAIT)), callback=_duration, metavar="DURATION", show_default=True,
    help="A crawl being stopped gets SIGINT (Scrapy shuts down cleanly); still running this much later, SIGKILL.",
)
@click.option("--max-parallel", default=1, type=click.IntRange(1, 64), show_default=True, help="Crawls at once; topics due together wait their turn.")
@click.option(
    "--on-failure", metavar="CMD", default=None,
    help="Shell command run after a failed or timed-out run, with NEWS_TOPIC, NEWS_OUTCOME, NEWS_REASON, ... in its environment.",
)
@click.option("-s", "--set", "scrapy_settings", multiple=True, metavar="NAME=VALUE", help="Scrapy setting for every crawl (repeatable), as `scrapy crawl -s`.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None, help="Also log to this file (reopened when logrotate moves it).")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), default="INFO", show_default=True)
@click.option(
    "--interval", default=None, callback=_duration, metavar="DURATION",
    help="Advanced/testing: run every topic every DURATION instead of on cron schedules.",
)
@click.option(
    "--crawl-command", envvar=CRAWL_COMMAND_ENV, default=None, hidden=True,
    help="Advanced/testing: command run instead of `python -m scrapy crawl news` (the -a/-s arguments are appended).",
)
def main(
    topics_path, db_path, cron, tz_name, topic_filter, once, list_, status_, time_limit, grace, kill_after, max_parallel,
    on_failure, scrapy_settings, log_file, log_level, interval, crawl_command,
):
    """Run the news crawl for every topic on a schedule (a foreground daemon).

    Each run is `scrapy crawl news -a topic=NAME` in a subprocess, judged from its record in
    the database (table crawl_runs) and recorded in table schedule_runs. Runs of one topic
    never overlap; after downtime each overdue topic gets one catch-up run at start-up;
    SIGTERM/SIGINT let a running crawl finish within --grace, then stop it.
    """
    modes = [name for name, on in (("--once", once), ("--list", list_), ("--status", status_)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"{' and '.join(modes)} cannot be combined; pick one")
    for setting in scrapy_settings:
        if "=" not in setting:
            raise click.BadParameter(f"{setting!r}: write NAME=VALUE, e.g. -s LOG_LEVEL=WARNING", param_hint="-s/--set")
    setup_logging(log_level.upper(), log_file)
    topics_file, db_file = Path(topics_path).resolve(), Path(db_path).resolve()  # crawls run in the project root
    tz, topics, schedules = _load(topics_file, topic_filter, cron, tz_name, interval)
    config = Config(
        topics_path=topics_file,
        db_path=db_file,
        time_limit=time_limit,
        grace=grace,
        max_parallel=max_parallel,
        on_failure=on_failure,
        crawl_command=tuple(shlex.split(crawl_command)) if crawl_command else (),
        scrapy_settings=tuple(scrapy_settings),
        interrupt_wait=kill_after,
    )
    if list_ or status_:
        store = Store(db_file) if db_file.exists() else None
        if list_:
            list_topics(store, schedules, tz)
            sys.exit(EXIT_OK)
        sys.exit(status(store, schedules, tz, time_limit))
    store = Store(db_file)
    if once:
        store.close_orphans()
        trigger = "manual" if topic_filter else "once"
        sys.exit(run_once(config, store, [t.name for t in topics], trigger))
    lock = _lock_daemon(db_file)
    closed = store.close_orphans()
    if closed:
        logger.warning("Marked %d run(s) left unfinished by an earlier scheduler as interrupted", closed)
    code = Daemon(config, store, schedules, tz).run()
    lock.close()
    sys.exit(code)


def _load(topics_file: Path, topic_filter: str | None, cron: str | None, tz_name: str | None, interval: float | None):
    try:
        tz = parse_timezone(tz_name)
    except ScheduleError as exc:
        raise ConfigError(f"--timezone: {exc}") from None
    try:
        topics: tuple[Topic, ...] = select_topics(load_topics(topics_file), topic_filter)
    except TopicsError as exc:
        raise ConfigError(str(exc)) from None
    try:
        schedules = build_schedules(
            topics, default_cron=cron or DEFAULT_CRON, cron_source="--cron" if cron else "default", tz=tz, interval=interval, topics_path=topics_file
        )
    except ScheduleError as exc:
        raise ConfigError(str(exc)) from None
    return tz, topics, schedules


if __name__ == "__main__":
    main()
