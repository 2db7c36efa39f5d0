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

This file is the entry point: the command line, logging set-up and the daemon lock. The
work is done by package ``newsdaemon/`` (schedules, store, judge, runner, service); its public
names are re-exported here (``scheduler.parse_cron``, ``scheduler.Store``, ...).
"""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import shlex
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # so that `python /path/to/scheduler.py` works from anywhere
    sys.path.insert(0, str(ROOT))

from crawler import settings as crawl_settings  # noqa: E402
from crawler.runs import pid_alive  # noqa: E402
from crawler.topics import Topic, TopicsError, load_topics, select_topics  # noqa: E402
from newsdaemon.judge import (  # noqa: E402
    LOW_YIELD_HISTORY,
    LOW_YIELD_MIN_BASELINE,
    LOW_YIELD_MIN_HISTORY,
    LOW_YIELD_RATIO,
    MANY_ERRORS,
    judge,
)
from newsdaemon.runner import (  # noqa: E402
    CRAWL_LOG_FORMAT,
    DEFAULT_GRACE,
    DEFAULT_TIME_LIMIT,
    HOOK_TIME_LIMIT,
    INTERRUPT_WAIT,
    POLL,
    Config,
    Runner,
    RunResult,
)
from newsdaemon.schedules import (  # noqa: E402
    DEFAULT_CRON,
    ScheduleError,
    TopicSchedule,
    build_schedules,
    next_due_after,
    parse_cron,
    parse_duration,
    parse_timezone,
)
from newsdaemon.service import (  # noqa: E402
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    STATUS_SLACK,
    Daemon,
    list_topics,
    overdue_since,
    run_once,
    status,
)
from newsdaemon.store import SCHEDULER_MIGRATIONS, Store  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    # schedules
    "DEFAULT_CRON",
    "ScheduleError",
    "TopicSchedule",
    "build_schedules",
    "next_due_after",
    "parse_cron",
    "parse_duration",
    "parse_timezone",
    # store
    "SCHEDULER_MIGRATIONS",
    "Store",
    "pid_alive",
    # judge
    "LOW_YIELD_HISTORY",
    "LOW_YIELD_MIN_BASELINE",
    "LOW_YIELD_MIN_HISTORY",
    "LOW_YIELD_RATIO",
    "MANY_ERRORS",
    "judge",
    # runner
    "CRAWL_LOG_FORMAT",
    "DEFAULT_GRACE",
    "DEFAULT_TIME_LIMIT",
    "HOOK_TIME_LIMIT",
    "INTERRUPT_WAIT",
    "POLL",
    "Config",
    "RunResult",
    "Runner",
    # service
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "STATUS_SLACK",
    "Daemon",
    "list_topics",
    "overdue_since",
    "run_once",
    "status",
    # command line
    "CRAWL_COMMAND_ENV",
    "ConfigError",
    "setup_logging",
    "main",
]

CRAWL_COMMAND_ENV = "NEWS_CRAWL_COMMAND"


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
