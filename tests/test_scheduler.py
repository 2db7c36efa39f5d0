"""scheduler.py: the daily daemon, with real subprocesses and a tiny fixture site on 127.0.0.1.

The site (written to a temporary directory) has an RSS feed with three articles, and a
second feed whose one article answers slowly, so that a crawl can be caught mid-way.
Crawls are real `scrapy crawl news` subprocesses except where a crawl must crash: there the
scheduler's hidden --crawl-command / NEWS_CRAWL_COMMAND runs tests/fixtures_scheduler/fake_crawl.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import scheduler
from demo.server import FixtureServer, Response
from newsdaemon.store import Store
from pipelines.db import open_db
from tests.conftest import ROOT

SCHEDULER = ROOT / "scheduler.py"
FAKE_CRAWL = Path(__file__).resolve().parent / "fixtures_scheduler" / "fake_crawl.py"
SLOW_SECONDS = 3.0  # how long the slow article takes to answer
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "NEWS_EXTRACT_WORKERS=1", "-s", "NEWS_RETRY_BACKOFF_BASE=0.05"]
UTC = timezone.utc

# --- the fixture site -------------------------------------------------------------------------

ARTICLES = {
    "council-budget": (
        "Council approves the city budget after a long night",
        [
            "The city council approved next year's budget shortly after midnight on Wednesday, ending a session that "
            "began with more than two hundred residents signing up to speak about library hours and bus routes.",
            "The final plan keeps every branch library open on Saturdays, adds four electric buses to the eastern "
            "routes and delays the renovation of the old fire station on Harbour Street by a further eighteen months.",
            "Councillors who voted against it said the plan relies on an optimistic forecast of property tax revenue, "
            "and warned that a weaker housing market could force mid-year cuts to road maintenance and park staff.",
        ],
    ),
    "school-roof": (
        "Repairs to the school roof will start in the summer holidays",
        [
            "Work on the leaking roof of Riverside Primary School will begin on the first day of the summer holidays, "
            "the education department confirmed, after buckets had to be placed in two classrooms throughout March.",
            "The contractor expects to replace the entire flat section above the gym and the canteen within six weeks, "
            "using insulation panels that should also cut the heating bill of the building by about a fifth.",
            "Parents welcomed the news but asked why the repairs could not have been done last year, when the first "
            "complaints about water dripping onto the stage during the winter concert were sent to the council.",
        ],
    ),
    "market-hall": (
        "The market hall reopens with twelve new stalls",
        [
            "After two years of restoration the Victorian market hall in the town centre reopened on Saturday morning, "
            "with queues forming outside the cast-iron gates well before the mayor cut the ribbon at nine o'clock.",
            "Twelve new traders have joined the long-standing butchers and greengrocers, among them a cheese maker from "
            "the hills north of town, a bakery run by two former nurses and a stall repairing bicycles and prams.",
            "Rents for the smaller stalls have been frozen for three years to help young businesses settle in, and the "
            "hall will now stay open until eight in the evening on Thursdays and Fridays throughout the summer.",
        ],
    ),
    "slow-story": (
        "A story from a very slow server",
        [
            "This page is served by a deliberately slow route of the fixture server so that the tests can catch a crawl "
            "in the middle of its work and check what the scheduler does with it when it is told to stop.",
            "It has enough ordinary paragraph text to count as an article for the crawler, which throws away pages whose "
            "extracted text is shorter than four hundred characters, so here are a few more sentences about nothing much.",
        ],
    ),
}


def _article_html(slug: str) -> str:
    title, paragraphs = ARTICLES[slug]
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><article><h1>{title}</h1>\n{body}\n</article></body></html>"
    )


def _rss(slugs: list[str]) -> str:
    now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    items = "".join(
        f"<item><title>{ARTICLES[s][0]}</title><link>{{{{BASE}}}}/news/{s}.html</link><pubDate>{now}</pubDate></item>" for s in slugs
    )
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Town news</title><link>{{{{BASE}}}}/</link>{items}</channel></rss>'


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The fixture site on 127.0.0.1 and a topics file for it: topics 'budget' (3 articles) and 'slow'."""
    root = tmp_path_factory.mktemp("site")
    (root / "news").mkdir()
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    (root / "rss.xml").write_text(_rss(["council-budget", "school-roof", "market-hall"]))
    (root / "slow.xml").write_text(_rss(["slow-story"]))
    for slug in ("council-budget", "school-roof", "market-hall"):
        (root / "news" / f"{slug}.html").write_text(_article_html(slug))

    def slow(handler):
        time.sleep(SLOW_SECONDS)
        return Response(200, _article_html("slow-story").encode(), {"Content-Type": "text/html; charset=utf-8"})

    with FixtureServer(root=root, routes={"/news/slow-story.html": slow}) as server:
        topics = root / "topics.toml"
        topics.write_text(
            f'[[topic]]\nname = "budget"\nfeeds = ["{server.base}/rss.xml"]\n\n'
            f'[[topic]]\nname = "slow"\nfeeds = ["{server.base}/slow.xml"]\n'
        )
        yield {"server": server, "topics": topics}


# --- helpers ------------------------------------------------------------------------------------


def run_scheduler(*args: str, cwd: Path, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCHEDULER), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


class DaemonProcess:
    """`python scheduler.py ...` in the background, its output in a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None):
        self.log = cwd / f"daemon-{time.monotonic_ns()}.log"
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCHEDULER), *args], cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._out.close()


@pytest.fixture()
def daemons(tmp_path):
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict | None = None) -> DaemonProcess:
        daemon = DaemonProcess(list(args), tmp_path, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def query(db: Path, sql: str, params: tuple = ()) -> list[dict]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    except sqlite3.OperationalError as exc:  # tables not created yet
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def schedule_runs(db: Path, topic: str | None = None) -> list[dict]:
    if topic:
        return query(db, "SELECT * FROM schedule_runs WHERE topic = ? ORDER BY id", (topic,))
    return query(db, "SELECT * FROM schedule_runs ORDER BY id")


def wait_until(predicate, timeout: float, what: str, daemon: DaemonProcess | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if daemon is not None and not daemon.alive():
            break
        time.sleep(0.2)
    output = daemon.output()[-4000:] if daemon else ""
    pytest.fail(f"timed out waiting for {what}\n{output}")


def base_args(site, db: Path, *extra: str) -> list[str]:
    return ["--topics", str(site["topics"]), "--db", str(db), "--timezone", "UTC", *FAST, *extra]


def add_crawl_run(
    db: Path, topic: str, started: datetime, status: str = "finished", discovered: int = 3, stored: int = 3, also: dict[str, int] | None = None
) -> int:
    """A crawl_runs row (and its per-topic counts) as a crawl of ``topic`` would leave it.

    The database is created by the project's own migrations (open_db). ``also``: other
    topics the same crawl covered, with their `discovered` counts (added to the crawl's totals).
    """
    store = open_db(db)

    def counts(found: int, kept: int) -> dict:
        return {"discovered": found, "stored": kept, "fetched": kept, "errors": 0, "not_modified": 0}

    per_topic = {topic: counts(discovered, stored), **{name: counts(found, 0) for name, found in (also or {}).items()}}
    totals = {key: sum(c[key] for c in per_topic.values()) for key in counts(0, 0)}
    row = {
        "topics": json.dumps(list(per_topic)),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": (started + timedelta(minutes=2)).isoformat(timespec="seconds") if status != "running" else None,
        "status": status,
        "finish_reason": "finished" if status == "finished" else None,
        "pid": 0,
        **totals,
    }
    run_id = store["crawl_runs"].insert(row).last_pk
    for name, topic_counts in per_topic.items():
        store["crawl_run_topics"].insert({"run_id": run_id, "topic": name, **topic_counts})
    store.close()
    return run_id


def far_hour() -> int:
    """An hour of the day (UTC) twelve hours from now: no daily run at it fires during a test."""
    return (datetime.now(UTC).hour + 12) % 24


# --- unit tests: schedules and judging -----------------------------------------------------------


def test_cron_day_of_week_numbers_follow_cron_not_apscheduler():
    sunday_noon = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday
    assert sunday_noon.weekday() == 6

    def next_days(expr: str, n: int = 7) -> list[str]:
        trigger, when, days = scheduler.parse_cron(expr, UTC), sunday_noon, []
        for _ in range(n):
            when = trigger.get_next_fire_time(None, when + timedelta(seconds=1))
            days.append(when.strftime("%a"))
        return days

    assert next_days("0 6 * * 1", 1) == ["Mon"]
    assert next_days("0 6 * * 0", 1) == next_days("0 6 * * 7", 1) == ["Sun"]
    assert next_days("0 6 * * 1-5", 5) == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert next_days("0 6 * * */2", 4) == ["Tue", "Thu", "Sat", "Sun"]
    assert next_days("0 6 * * sat,SUN", 2) == ["Sat", "Sun"]
    assert scheduler.parse_cron("@daily", UTC).get_next_fire_time(None, sunday_noon) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_cron_in_a_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    trigger = scheduler.parse_cron("0 6 * * *", berlin)
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    assert fire.astimezone(UTC) == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # 06:00 CET


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("0 6 * *", "has 4 field(s)"),
        ("0 25 * * *", "bad hour field '25'"),
        ("61 6 * * *", "bad minute field '61'"),
        ("0 6 * * 9", "bad day of week field"),
        ("0 6 32 * *", "bad day of month field '32'"),
        ("@reboot", "unknown shortcut"),
    ],
)
def test_bad_cron_expressions_name_the_field(expr, expected):
    with pytest.raises(scheduler.ScheduleError, match=None) as info:
        scheduler.parse_cron(expr, UTC)
    assert expected in str(info.value)


def test_bad_schedule_in_topics_file_names_file_topic_and_field(tmp_path):
    topics = tmp_path / "topics.toml"
    topics.write_text(
        '[[topic]]\nname = "fine"\nfeeds = ["https://example.com/rss.xml"]\n\n'
        '[[topic]]\nname = "broken"\nfeeds = ["https://example.com/rss.xml"]\nschedule = "0 30 * * *"\n'
    )
    result = run_scheduler("--topics", str(topics), "--db", str(tmp_path / "news.db"), "--list", cwd=tmp_path)
    assert result.returncode == scheduler.EXIT_CONFIG
    assert f"{topics}: topic #2 ('broken'), field 'schedule': '0 30 * * *': bad hour field '30'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "news.db").exists()


def test_help_shows_examples(tmp_path):
    result = run_scheduler("--help", cwd=tmp_path)
    assert result.returncode == 0
    for text in ("Examples:", "--once", "--status", "--cron", "--on-failure", "docs/scheduler.md"):
        assert text in result.stdout


def test_durations():
    assert scheduler.parse_duration("90") == 90
    assert scheduler.parse_duration("30m") == 1800
    assert scheduler.parse_duration("2h") == 7200
    with pytest.raises(scheduler.ScheduleError, match="not a duration"):
        scheduler.parse_duration("soon")


def _row(**counts) -> dict:
    row = {"id": 7, "status": "finished", "finish_reason": "finished", "discovered": 10, "not_modified": 0, "errors": 0, "fetched": 10, "stored": 4}
    return {**row, **counts}


def test_judge_rules():
    judge = scheduler.judge
    assert judge(_row(), 0)[0] == "ok"
    # exit code 0 is not enough: the crawl's record decides
    assert judge(None, 0)[0] == "failed"
    assert "without recording itself" in judge(None, 0)[1]
    outcome, reason = judge(_row(status="running", finish_reason=None), -9)
    assert outcome == "failed" and "crashed" in reason and "SIGKILL" in reason
    outcome, reason = judge(_row(status="failed", finish_reason="config_error"), 0)
    assert outcome == "failed" and "bad topics configuration" in reason
    assert judge(_row(), 1)[0] == "failed"  # finished, but a non-zero exit
    # nothing found, every source failed
    outcome, reason = judge(_row(discovered=0, fetched=0, stored=0, errors=2), 0)
    assert outcome == "failed" and "no source answered" in reason
    # many errors
    outcome, reason = judge(_row(discovered=30, fetched=5, errors=25), 0)
    assert outcome == "failed" and "too many errors" in reason
    # far fewer articles than usual
    outcome, reason = judge(_row(discovered=1), 0, baseline=(20, 5))
    assert outcome == "failed" and "far fewer articles than usual" in reason
    assert judge(_row(discovered=8), 0, baseline=(20, 5))[0] == "ok"  # fewer, not far fewer
    assert judge(_row(discovered=0, not_modified=2), 0, baseline=(20, 5))[0] == "ok"  # feeds unchanged (304)
    assert judge(_row(discovered=0), 0, baseline=(20, 2))[0] == "ok"  # too little history
    assert judge(_row(discovered=0), 0, baseline=(3, 5))[0] == "ok"  # too small a baseline
    # stopped by the scheduler
    assert judge(_row(status="interrupted", finish_reason="shutdown"), 0, stopped="timeout")[0] == "timeout"
    assert judge(_row(status="interrupted", finish_reason="shutdown"), 0, stopped="shutdown")[0] == "interrupted"
    assert judge(_row(), 0, stopped="shutdown")[0] == "ok"  # it finished anyway
    assert judge(_row(status="interrupted", finish_reason="shutdown"), 0)[0] == "failed"  # stopped by someone else


def test_far_fewer_articles_than_usual_judged_from_real_crawl_runs_rows(tmp_path):
    """Store.baseline over rows in a database made by the project's migrations, fed to judge() as the runner does."""
    db = tmp_path / "news.db"
    start = datetime.now(UTC) - timedelta(days=10)
    day = timedelta(days=1)
    # five finished crawls of 'budget' (median 20); the first three also covered 'slow', so the
    # crawls' totals (218-222) differ from budget's own counts in crawl_run_topics
    for i, found in enumerate([20, 22, 18, 21, 19]):
        add_crawl_run(db, "budget", start + i * day, discovered=found, also={"slow": 200} if i < 3 else None)
    # newer, but not finished, or another topic's: none of them is "usual"
    for i, status in enumerate(["failed", "running", "interrupted"]):
        add_crawl_run(db, "budget", start + (5 + i) * day, status=status, discovered=0, stored=0)
    add_crawl_run(db, "slow", start + 8 * day, discovered=1, stored=1)
    store = scheduler.Store(db)
    try:

        def judged(found: int) -> tuple[tuple[float | None, int], tuple[str, str]]:
            run_id = add_crawl_run(db, "budget", datetime.now(UTC), discovered=found, stored=found)
            row = store.find_crawl_run("budget", 0, run_id - 1)
            assert row["id"] == run_id and row["discovered"] == found
            baseline = store.baseline("budget", row["id"])
            return baseline, scheduler.judge(row, 0, baseline=baseline)

        baseline, (outcome, reason) = judged(2)
        assert baseline == (20, 5)
        assert outcome == "failed"
        assert "far fewer articles than usual: 2 found, usually 20 (median of the last 5 crawls)" in reason
        # the low run is part of the history now: median of 2, 19, 21, 18, 22; 17 is fewer, not far fewer
        baseline, (outcome, reason) = judged(17)
        assert baseline == (19, 5)
        assert outcome == "ok", reason
        # a crawl of several topics counts for each with the topic's own count: 200, 200, 200 and 1
        assert store.baseline("slow", 10**6) == (200, 4)
    finally:
        store.close()


def test_schedule_runs_table_comes_from_its_own_migration_set(tmp_path):
    store = scheduler.Store(tmp_path / "news.db")
    applied = {(m["migration_set"], m["name"]) for m in store.db["_sqlite_migrations"].rows}
    assert ("news-scheduler", "m001_schedule_runs") in applied
    assert {"id", "topic", "trigger", "started_at", "finished_at", "outcome", "reason", "crawl_run_id", "exit_code"} <= set(
        store.db["schedule_runs"].columns_dict
    )
    store.close()


# --- acceptance: real subprocesses ----------------------------------------------------------------


def test_once_stores_articles_and_records_runs(site, tmp_path):
    db = tmp_path / "news.db"
    log_file = tmp_path / "logs" / "scheduler.log"
    result = run_scheduler(*base_args(site, db, "--once", "--topic", "budget", "--log-file", str(log_file)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "budget: ok" in result.stdout
    assert "Topic budget: manual run 1 ok" in log_file.read_text() and "[budget]" in log_file.read_text()

    articles = query(db, "SELECT url, title, text FROM articles")
    assert len(articles) == 3
    assert all(len(a["text"]) >= 400 for a in articles)
    crawl = query(db, "SELECT * FROM crawl_runs")
    assert len(crawl) == 1 and crawl[0]["status"] == "finished" and crawl[0]["stored"] == 3
    (run,) = schedule_runs(db)
    assert run["topic"] == "budget" and run["trigger"] == "manual" and run["outcome"] == "ok"
    assert run["crawl_run_id"] == crawl[0]["id"] and run["exit_code"] == 0 and run["finished_at"]
    # the crawl's output went through the scheduler's log
    assert "News crawl summary" in result.stderr

    # ... and --status is happy with it
    status = run_scheduler("--topics", str(site["topics"]), "--db", str(db), "--topic", "budget", "--status", cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "budget" in status.stdout and " ok " in status.stdout


def test_once_exits_nonzero_when_a_crawl_fails_and_runs_the_hook(site, tmp_path):
    db = tmp_path / "news.db"
    hook_out = tmp_path / "hook.txt"
    env = {"FAKE_CRAWL_PLAN": "exit", "FAKE_CRAWL_STATE": str(tmp_path / "calls")}
    result = run_scheduler(
        *base_args(site, db, "--once"),
        "--crawl-command", f"{sys.executable} {FAKE_CRAWL}",
        "--on-failure", f'echo "$NEWS_TOPIC $NEWS_OUTCOME $NEWS_EXIT_CODE" >> {hook_out}',
        cwd=tmp_path, env=env,
    )
    assert result.returncode == 1
    runs = schedule_runs(db)
    assert [(r["topic"], r["trigger"], r["outcome"], r["exit_code"]) for r in runs] == [("budget", "once", "failed", 3), ("slow", "once", "failed", 3)]
    assert all("without recording itself" in r["reason"] for r in runs)
    assert "ERROR newsdaemon.runner: Topic budget: once run 1 FAILED after" in result.stderr
    assert "ERROR newsdaemon.runner: Topic slow: once run 2 FAILED after" in result.stderr
    assert "fake crawl: exiting with code 3" in result.stderr
    assert hook_out.read_text().split("\n")[:2] == ["budget failed 3", "slow failed 3"]


def test_daemon_on_a_fast_schedule_runs_twice_and_records_both(site, tmp_path, daemons):
    db = tmp_path / "news.db"
    daemon = daemons(*base_args(site, db, "--interval", "5", "--topic", "budget"))
    ok = wait_until(
        lambda: [r for r in schedule_runs(db) if r["outcome"] == "ok"][:2] if len([r for r in schedule_runs(db) if r["outcome"] == "ok"]) >= 2 else None,
        timeout=45, what="two successful scheduled runs", daemon=daemon,
    )
    assert daemon.alive()
    assert daemon.terminate() == 0
    assert all(r["trigger"] == "scheduled" for r in ok)
    crawl_ids = [r["crawl_run_id"] for r in ok]
    assert len(set(crawl_ids)) == 2
    crawls = {r["id"]: r for r in query(db, "SELECT * FROM crawl_runs")}
    assert all(crawls[i]["status"] == "finished" for i in crawl_ids)
    assert crawls[crawl_ids[0]]["stored"] == 3
    # the second crawl found the feed unchanged (conditional GET) and that is fine
    assert crawls[crawl_ids[1]]["not_modified"] == 1
    assert len(query(db, "SELECT url FROM articles")) == 3
    assert "Scheduler stopped" in daemon.output()


def test_overlapping_trigger_is_skipped(site, tmp_path, daemons):
    """A run still going when the next one is due makes the new one skip, logged and recorded."""
    db = tmp_path / "news.db"
    # a crawl takes a few seconds (a Python process, Scrapy, the extraction pool): longer than the interval
    daemon = daemons(*base_args(site, db, "--interval", "1", "--topic", "budget"))
    wait_until(lambda: [r for r in schedule_runs(db) if r["outcome"] == "skipped"], timeout=30, what="a skipped run", daemon=daemon)
    # SIGTERM while the crawl is still going: it may finish within the grace period (default 120 s)
    assert daemon.terminate() == 0
    runs = schedule_runs(db)
    started = [r for r in runs if r["outcome"] != "skipped"]
    skipped = [r for r in runs if r["outcome"] == "skipped"]
    assert started and all(r["outcome"] == "ok" and r["finished_at"] for r in started), runs
    assert skipped and all("still going" in r["reason"] and r["trigger"] == "scheduled" for r in skipped)
    # every skip happened while a run was going, and runs never overlapped
    assert all(any(s["started_at"] <= r["started_at"] <= s["finished_at"] for s in started) for r in skipped)
    assert all(a["finished_at"] <= b["started_at"] for a, b in zip(started, started[1:]))
    assert "run skipped" in daemon.output()
    assert len(query(db, "SELECT id FROM crawl_runs")) == len(started)


def test_sigterm_during_a_crawl_exits_cleanly_with_the_run_recorded(site, tmp_path, daemons):
    db = tmp_path / "news.db"
    daemon = daemons(*base_args(site, db, "--interval", "1", "--topic", "slow", "--grace", "0.5"))
    crawl = wait_until(lambda: query(db, "SELECT * FROM crawl_runs WHERE status = 'running'"), timeout=30, what="a running crawl", daemon=daemon)
    time.sleep(0.5)  # the slow article is being fetched
    started = time.monotonic()
    assert daemon.terminate(timeout=60) == 0
    assert time.monotonic() - started < 30
    (run,) = [r for r in schedule_runs(db) if r["outcome"] != "skipped"]
    assert run["outcome"] == "interrupted" and run["finished_at"]
    assert "grace period" in run["reason"]
    assert run["crawl_run_id"] == crawl[0]["id"]
    # Scrapy was stopped with SIGINT, so it shut down cleanly and recorded itself
    (row,) = query(db, "SELECT * FROM crawl_runs WHERE id = ?", (crawl[0]["id"],))
    assert row["status"] == "interrupted" and row["finished_at"]
    assert not scheduler.pid_alive(crawl[0]["pid"])
    assert "Received SIGTERM" in daemon.output()


def test_crashing_crawl_is_recorded_as_failed_and_the_next_run_still_happens(site, tmp_path, daemons):
    db = tmp_path / "news.db"
    hook_out = tmp_path / "hook.txt"
    env = {
        "NEWS_CRAWL_COMMAND": f"{sys.executable} {FAKE_CRAWL}",
        "FAKE_CRAWL_PLAN": "crash,real",
        "FAKE_CRAWL_STATE": str(tmp_path / "calls"),
    }
    on_failure = f'echo "$NEWS_TOPIC|$NEWS_OUTCOME|$NEWS_CRAWL_RUN_ID|$NEWS_REASON" >> {hook_out}'
    daemon = daemons(*base_args(site, db, "--interval", "2", "--topic", "budget", "--on-failure", on_failure), env=env)
    wait_until(lambda: [r for r in schedule_runs(db) if r["outcome"] == "ok"], timeout=45, what="a successful run after the crash", daemon=daemon)
    assert daemon.alive()
    assert daemon.terminate() == 0
    runs = [r for r in schedule_runs(db) if r["outcome"] != "skipped"]
    crashed, ok = runs[0], runs[1]
    assert crashed["outcome"] == "failed" and "crashed" in crashed["reason"] and "SIGKILL" in crashed["reason"]
    assert crashed["exit_code"] == -signal.SIGKILL
    (crash_row,) = query(db, "SELECT * FROM crawl_runs WHERE id = ?", (crashed["crawl_run_id"],))
    # the crawl's own record was left unfinished; the next crawl found its process gone
    assert crash_row["status"] == "failed" and crash_row["finish_reason"] == "process gone (killed or crashed)"
    assert crash_row["finished_at"] is None
    assert ok["outcome"] == "ok" and ok["trigger"] == "scheduled"
    assert len(query(db, "SELECT url FROM articles")) == 3
    assert f"budget|failed|{crashed['crawl_run_id']}|crashed" in hook_out.read_text()
    assert f"ERROR newsdaemon.runner: Topic budget: scheduled run {crashed['id']} FAILED after" in daemon.output()


def test_time_limit_stops_the_crawl_sigint_then_sigkill(site, tmp_path):
    db = tmp_path / "news.db"
    env = {"NEWS_CRAWL_COMMAND": f"{sys.executable} {FAKE_CRAWL}", "FAKE_CRAWL_PLAN": "hang"}
    started = time.monotonic()
    result = run_scheduler(*base_args(site, db, "--once", "--topic", "budget", "--time-limit", "1", "--kill-after", "1"), cwd=tmp_path, env=env)
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    (run,) = schedule_runs(db)
    assert run["outcome"] == "timeout" and "time limit" in run["reason"]
    assert run["exit_code"] == -signal.SIGKILL  # it ignored SIGINT
    assert "did not stop within 1s of SIGINT; killing it" in result.stderr


def test_restart_after_a_missed_run_triggers_exactly_one_catch_up(site, tmp_path, daemons):
    db = tmp_path / "news.db"
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    add_crawl_run(db, "budget", three_days_ago)  # daily runs were missed on three days
    cron = f"0 {far_hour()} * * *"
    daemon = daemons(*base_args(site, db, "--cron", cron, "--topic", "budget"))
    wait_until(lambda: [r for r in schedule_runs(db) if r["outcome"]], timeout=30, what="the catch-up run", daemon=daemon)
    time.sleep(1.5)  # anything else would have started by now
    assert daemon.terminate() == 0
    runs = schedule_runs(db)
    assert [(r["trigger"], r["outcome"]) for r in runs] == [("catch-up", "ok")]
    assert "one catch-up run now" in daemon.output()

    # the catch-up succeeded, so a second restart has nothing to catch up
    again = daemons(*base_args(site, db, "--cron", cron, "--topic", "budget"))
    wait_until(lambda: "Scheduler started" in again.output(), timeout=20, what="the second start", daemon=again)
    time.sleep(1.5)
    assert again.terminate() == 0
    assert len(schedule_runs(db)) == 1
    assert "overdue" not in again.output()


def test_once_fails_a_real_crawl_that_finds_far_fewer_articles_than_usual(site, tmp_path):
    db = tmp_path / "news.db"
    for days in (5, 4, 3, 2, 1):  # a feed that used to list about 20 articles now lists 3
        add_crawl_run(db, "budget", datetime.now(UTC) - timedelta(days=days), discovered=20)
    result = run_scheduler(*base_args(site, db, "--once", "--topic", "budget"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-4000:]
    (run,) = schedule_runs(db)
    assert run["outcome"] == "failed"
    assert "far fewer articles than usual: 3 found, usually 20 (median of the last 5 crawls)" in run["reason"]
    (crawl,) = query(db, "SELECT * FROM crawl_runs WHERE id = ?", (run["crawl_run_id"],))
    assert crawl["status"] == "finished" and crawl["stored"] == 3  # the crawl itself went fine


def test_catch_up_of_two_overdue_topics_runs_each_once_one_after_the_other(site, tmp_path, daemons):
    db = tmp_path / "news.db"
    for topic in ("budget", "slow"):
        add_crawl_run(db, topic, datetime.now(UTC) - timedelta(days=3))
    daemon = daemons(*base_args(site, db, "--cron", f"0 {far_hour()} * * *"))  # default --max-parallel 1
    wait_until(lambda: len([r for r in schedule_runs(db) if r["outcome"]]) >= 2, timeout=60, what="two catch-up runs", daemon=daemon)
    time.sleep(1.5)  # a third run would have started by now
    assert daemon.terminate() == 0
    runs = schedule_runs(db)
    assert sorted((r["topic"], r["trigger"], r["outcome"]) for r in runs) == [("budget", "catch-up", "ok"), ("slow", "catch-up", "ok")], runs
    first, second = runs
    # both runs are recorded when due; the second waited for the slot, so the crawls did not overlap
    crawls = query(db, "SELECT * FROM crawl_runs WHERE id IN (?, ?) ORDER BY id", (first["crawl_run_id"], second["crawl_run_id"]))
    assert len(crawls) == 2 and crawls[0]["finished_at"] <= crawls[1]["started_at"]
    output = daemon.output()
    assert output.count("one catch-up run now") == 2
    assert f"Topic {second['topic']}: waiting for a free crawl slot (--max-parallel 1)" in output


def test_crawl_running_in_another_process_makes_the_scheduled_run_skip(site, tmp_path, daemons):
    """A crawl the daemon did not start (a manual `scrapy crawl`, a --once) holds the topic while its process lives."""
    db = tmp_path / "news.db"
    open_db(db).close()
    other = subprocess.Popen(
        [sys.executable, str(FAKE_CRAWL), "-a", "topic=budget", "-s", f"NEWS_DB={db}"],
        env={**os.environ, "FAKE_CRAWL_PLAN": "hold:60"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        (held,) = wait_until(lambda: query(db, "SELECT * FROM crawl_runs WHERE status = 'running'"), timeout=20, what="the other crawl")
        assert held["pid"] == other.pid
        daemon = daemons(*base_args(site, db, "--interval", "1", "--topic", "budget"))
        wait_until(lambda: len(schedule_runs(db)) >= 2, timeout=30, what="two skipped runs", daemon=daemon)
        assert all(r["outcome"] == "skipped" for r in schedule_runs(db))
    finally:
        other.kill()
        other.wait()
    gone_at = datetime.now(UTC).isoformat(timespec="seconds")
    # once that process is gone, the daemon crawls again
    wait_until(lambda: [r for r in schedule_runs(db) if r["outcome"] == "ok"], timeout=45, what="a run after the other crawl ended", daemon=daemon)
    assert daemon.terminate() == 0
    runs = schedule_runs(db)
    first_crawl = next(i for i, r in enumerate(runs) if r["outcome"] != "skipped")
    held_skips = runs[:first_crawl]
    assert len(held_skips) >= 2
    for run in held_skips:
        assert run["trigger"] == "scheduled" and run["finished_at"] and run["crawl_run_id"] is None
        assert f"crawl run {held['id']} of 'budget' is still running in another process (pid {other.pid}, started {held['started_at']})" in run["reason"]
    assert runs[first_crawl]["outcome"] == "ok" and runs[first_crawl]["started_at"] >= gone_at
    assert f"run skipped: crawl run {held['id']} of 'budget' is still running in another process" in daemon.output()


def test_running_crawl_needs_a_live_process_that_looks_like_a_crawl(tmp_path):
    """Store.running_crawl, the check behind that skip, against real processes: a reused pid is no crawl."""
    db = tmp_path / "news.db"
    store = scheduler.Store(db)
    crawl = subprocess.Popen([sys.executable, str(FAKE_CRAWL), "-a", "topic=budget", "-s", f"NEWS_DB={db}"], env={**os.environ, "FAKE_CRAWL_PLAN": "hold:60"})
    not_a_crawl = subprocess.Popen(["sleep", "60"])
    try:
        (row,) = wait_until(lambda: query(db, "SELECT * FROM crawl_runs"), timeout=20, what="the crawl's row")
        assert store.running_crawl("budget")["id"] == row["id"]
        assert store.running_crawl("slow") is None  # another topic's crawl does not hold it
        # the same row with its pid now held by a process that is no crawl, or by no process at all
        for pid in (not_a_crawl.pid, 2**22 + 1):
            store.db["crawl_runs"].update(row["id"], {"pid": pid})
            assert store.running_crawl("budget") is None, pid
        store.db["crawl_runs"].update(row["id"], {"pid": crawl.pid, "status": "finished", "finished_at": row["started_at"]})
        assert store.running_crawl("budget") is None  # finished
    finally:
        for proc in (crawl, not_a_crawl):
            proc.kill()
            proc.wait()
        store.close()


def test_status_exits_nonzero_for_an_overdue_topic(site, tmp_path):
    db = tmp_path / "news.db"
    add_crawl_run(db, "budget", datetime.now(UTC) - timedelta(days=3))
    add_crawl_run(db, "slow", datetime.now(UTC) - timedelta(minutes=5))
    args = ["--topics", str(site["topics"]), "--db", str(db), "--cron", "0 6 * * *", "--timezone", "UTC", "--status"]
    result = run_scheduler(*args, cwd=tmp_path)
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.split() and line.split()[0] in ("budget", "slow")}
    assert "OVERDUE" in lines["budget"] and " ok " in lines["slow"]
    assert "OVERDUE: topic budget" in result.stderr
    assert run_scheduler(*args, "--topic", "slow", cwd=tmp_path).returncode == 0
    # a topic that never ran is overdue too (monitoring must notice a scheduler that never ran)
    fresh = run_scheduler(*args[:3], str(tmp_path / "empty.db"), *args[4:], cwd=tmp_path)
    assert fresh.returncode == 1 and "NEVER" in fresh.stdout


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def live_scheduler():
    """A process whose command line names the scheduler: it holds runs recorded under its pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "scheduler.py"])
    yield proc.pid
    proc.kill()
    proc.wait()


def record_open_run(db: Path, topic: str, pid: int, trigger: str = "scheduled") -> int:
    """A run recorded as due by the scheduler process ``pid`` and not finished (waiting for a slot or crawling)."""
    store = Store(db)
    run_id = store.start_run(topic, trigger)
    store.db["schedule_runs"].update(run_id, {"scheduler_pid": pid})
    store.close()
    return run_id


def test_status_shows_a_due_run_still_going_as_running_not_overdue(site, tmp_path, live_scheduler):
    """A run waiting for a --max-parallel slot behind other topics (or crawling) is not missed."""
    db = tmp_path / "news.db"
    add_crawl_run(db, "budget", datetime.now(UTC) - timedelta(days=3))
    run_id = record_open_run(db, "budget", live_scheduler)
    args = ["--topics", str(site["topics"]), "--db", str(db), "--cron", "0 6 * * *", "--timezone", "UTC", "--topic", "budget", "--status"]
    result = run_scheduler(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("budget ")]
    assert line.split()[1] == "running" and "scheduled run since" in line
    # the same row left by a scheduler that has died does not count
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schedule_runs SET scheduler_pid = ? WHERE id = ?", (dead_pid(), run_id))
    result = run_scheduler(*args, cwd=tmp_path)
    assert result.returncode == 1 and "OVERDUE: topic budget" in result.stderr
    # so does a pid now held by a process that is no scheduler (a reused pid)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE schedule_runs SET scheduler_pid = ? WHERE id = ?", (other.pid, run_id))
        assert run_scheduler(*args, cwd=tmp_path).returncode == 1
    finally:
        other.kill()
        other.wait()


def test_status_does_not_hide_failures_behind_a_run_that_is_going(site, tmp_path, live_scheduler):
    """A topic whose runs failed since its due time stays OVERDUE while its next run waits or crawls."""
    db = tmp_path / "news.db"
    add_crawl_run(db, "budget", datetime.now(UTC) - timedelta(days=3))
    store = Store(db)
    store.finish_run(store.start_run("budget", "scheduled"), "failed", "crawl crashed")
    store.close()
    record_open_run(db, "budget", live_scheduler)
    args = ["--topics", str(site["topics"]), "--db", str(db), "--cron", "0 6 * * *", "--timezone", "UTC", "--topic", "budget", "--status"]
    result = run_scheduler(*args, cwd=tmp_path)
    assert result.returncode == 1 and "OVERDUE: topic budget" in result.stderr and "crawl crashed" in result.stderr


def test_a_run_recorded_by_another_live_scheduler_makes_once_skip(site, tmp_path, live_scheduler):
    """The daemon records a due run before its crawl starts: a --once of the same topic next to it skips."""
    db = tmp_path / "news.db"
    held = record_open_run(db, "budget", live_scheduler)
    result = run_scheduler(*base_args(site, db, "--once", "--topic", "budget"), cwd=tmp_path)
    assert result.returncode == 1
    (mine,) = [r for r in schedule_runs(db, "budget") if r["id"] != held]
    assert mine["outcome"] == "skipped" and mine["trigger"] == "manual" and mine["finished_at"]
    assert f"scheduler run {held} of 'budget' (scheduled, pid {live_scheduler}," in mine["reason"]
    assert query(db, "SELECT * FROM crawl_runs") == []  # no crawl was started
    # a run left open by a scheduler that died holds nothing, and is closed as interrupted
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schedule_runs SET scheduler_pid = ? WHERE id = ?", (dead_pid(), held))
    result = run_scheduler(*base_args(site, db, "--once", "--topic", "budget"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {r["id"]: r for r in schedule_runs(db, "budget")}
    assert runs[held]["outcome"] == "interrupted" and list(runs.values())[-1]["outcome"] == "ok"


def test_list_shows_topics_and_next_run_times(site, tmp_path):
    topics = tmp_path / "topics.toml"
    topics.write_text(site["topics"].read_text() + '\n[[topic]]\nname = "weekly"\nfeeds = ["https://example.com/rss.xml"]\nschedule = "30 7 * * 1"\n')
    result = run_scheduler("--topics", str(topics), "--db", str(tmp_path / "news.db"), "--cron", "15 5 * * *", "--timezone", "Europe/Berlin", "--list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "Europe/Berlin" in result.stdout
    assert "15 5 * * *" in lines["budget"] and "--cron" in lines["budget"]
    assert "30 7 * * 1" in lines["weekly"] and "topics file" in lines["weekly"]
    berlin = ZoneInfo("Europe/Berlin")
    expected = scheduler.parse_cron("30 7 * * 1", berlin).get_next_fire_time(None, datetime.now(berlin))
    assert expected.strftime("%Y-%m-%d 07:30:00") in lines["weekly"]
    assert datetime.strptime(expected.strftime("%Y-%m-%d"), "%Y-%m-%d").weekday() == 0  # a Monday
    assert "never" in lines["budget"]


def test_list_without_cron_shows_the_default_schedule_at_six_in_the_time_zone(site, tmp_path):
    """No --cron and no `schedule` in the topics file: 0 6 * * *, i.e. the next 06:00 in --timezone."""
    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9 all year: far from the server's UTC, no daylight saving

    def next_six() -> str:
        now = datetime.now(tokyo)
        six = now.replace(hour=6, minute=0, second=0, microsecond=0)
        return (six if six > now else six + timedelta(days=1)).strftime("%Y-%m-%d 06:00:00 JST")

    before = next_six()
    result = run_scheduler("--topics", str(site["topics"]), "--db", str(tmp_path / "news.db"), "--timezone", "Asia/Tokyo", "--list", cwd=tmp_path)
    after = next_six()
    assert result.returncode == 0, result.stderr
    assert "Time zone: Asia/Tokyo" in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for topic in ("budget", "slow"):
        assert "0 6 * * *" in lines[topic] and " default " in lines[topic], lines[topic]
        assert before in lines[topic] or after in lines[topic], (before, lines[topic])


def test_a_second_daemon_on_the_same_database_is_refused(site, tmp_path, daemons):
    db = tmp_path / "news.db"
    first = daemons(*base_args(site, db, "--cron", f"0 {far_hour()} * * *"))
    wait_until(lambda: "Scheduler started" in first.output(), timeout=20, what="the first daemon", daemon=first)
    second = run_scheduler(*base_args(site, db, "--cron", f"0 {far_hour()} * * *"), cwd=tmp_path, timeout=30)
    assert second.returncode == scheduler.EXIT_CONFIG
    assert "another scheduler" in second.stderr and str(first.proc.pid) in second.stderr
    assert first.terminate() == 0
