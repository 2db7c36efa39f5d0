"""The scheduler's modes: the APScheduler daemon (with catch-up after downtime and signal
handling), --once, --list and --status."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from datetime import datetime, timedelta

import click
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler

from newsdaemon.clock import parse_time, utcnow
from newsdaemon.runner import POLL, Config, Runner, RunResult
from newsdaemon.schedules import TopicSchedule, next_due_after
from newsdaemon.store import Store

logger = logging.getLogger(__name__)

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_CONFIG", "STATUS_SLACK", "Daemon", "overdue_since", "run_once", "list_topics", "status"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
STATUS_SLACK = 600.0  # --status: seconds of leeway after a due run's time limit


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
        first = schedule.trigger.get_next_fire_time(None, utcnow())
        logger.info("Topic %s: %s (%s); next run %s", schedule.name, schedule.expr, schedule.source, _show(first, self.tz))

    def _add_catch_ups(self) -> None:
        now = utcnow()
        for schedule in self.schedules:
            missed = overdue_since(self.store, schedule, now)
            if missed is None:
                continue
            last = self.store.last_success(schedule.name)
            logger.warning(
                "Topic %s is overdue: a run was due %s and the last successful crawl was %s; one catch-up run now",
                schedule.name, _show(missed, self.tz), _show(parse_time(last["started_at"]), self.tz) if last else "never",
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
    since = parse_time(last["started_at"]) if last else store.first_attempt_time(schedule.name)
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
    now = utcnow()
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
                f"{_show(parse_time(last['started_at']), tz)} (crawl run {last['id']})" if last else "never",
            )
        )
    click.echo(f"Time zone: {tz}")
    _table(("topic", "schedule", "from", "next run", "last success"), rows)
    if any(r[3].endswith("(catch-up)") for r in rows):
        click.echo("(catch-up): overdue; the daemon starts one catch-up run for it as soon as it starts")


def status(store: Store | None, schedules: list[TopicSchedule], tz, time_limit: float) -> int:
    """Print the last successful run per topic; 1 if any topic is overdue or never succeeded."""
    now = utcnow()
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
    attempt_text = f"{attempt['outcome']} {_show(parse_time(attempt['started_at']), tz)}" if attempt else "-"
    why = f"; last scheduler run {attempt['outcome']}: {attempt['reason']}" if attempt and attempt["outcome"] != "ok" else ""
    if last is None:
        return (schedule.name, "NEVER", "never", "-", attempt_text), f"NEVER: topic {schedule.name} has no successful crawl yet{why}"
    started = parse_time(last["started_at"])
    stored = last["topic_stored"] if last["topic_stored"] is not None else last["stored"]
    last_text = f"{_show(started, tz)} (crawl run {last['id']}, {stored} stored)"
    due = next_due_after(schedule, started)
    current = store.open_run(schedule.name) if due is not None and now > due + leeway else None
    failed_since = attempt is not None and parse_time(attempt["started_at"]) >= due  # a run since then ended without success
    if current and not failed_since and parse_time(current["started_at"]) >= due:  # due, and waiting for a slot or crawling
        since = f"{current['trigger']} run since {_show(parse_time(current['started_at']), tz)}"
        return (schedule.name, "running", last_text, _show(due, tz), since), None
    if due is not None and now > due + leeway:
        problem = f"OVERDUE: topic {schedule.name} has no successful crawl since {last_text}; a run was due {_show(due, tz)}{why}"
        return (schedule.name, "OVERDUE", last_text, _show(due, tz), attempt_text), problem
    return (schedule.name, "ok", last_text, _show(due, tz), attempt_text), None


def _table(header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
