"""Running crawls: one ``scrapy crawl`` subprocess per run, supervised (time limit, stop on
shutdown), its output re-logged, judged and recorded, and the --on-failure hook."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from newsdaemon.judge import judge
from newsdaemon.store import Store

logger = logging.getLogger(__name__)
# the crawl's own output, re-logged line by line: its documented name (docs/scheduler.md),
# not this module's, so that log filters on "scheduler.crawl" keep working
_crawl_logger = logging.getLogger("scheduler.crawl")

__all__ = ["ROOT", "DEFAULT_TIME_LIMIT", "DEFAULT_GRACE", "INTERRUPT_WAIT", "HOOK_TIME_LIMIT", "POLL", "CRAWL_LOG_FORMAT", "Config", "RunResult", "Runner"]

ROOT = Path(__file__).resolve().parent.parent  # the project root: crawls run there
DEFAULT_TIME_LIMIT = 3600.0  # seconds one crawl may take
DEFAULT_GRACE = 120.0  # seconds a running crawl may go on after SIGTERM/SIGINT
INTERRUPT_WAIT = 45.0  # seconds between SIGINT to a crawl (graceful stop) and SIGKILL
HOOK_TIME_LIMIT = 120.0  # seconds an --on-failure command may take
POLL = 0.2  # seconds between checks on a running crawl
CRAWL_LOG_FORMAT = "%(levelname)s [%(name)s] %(message)s"  # the scheduler's logging adds the time


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
            # recorded from the moment it is due, so --status sees a run waiting for a slot and
            # a second scheduler process (a --once next to the daemon) sees it too
            run_id = self.store.start_run(topic, trigger)
            try:
                return self._run_recorded(topic, trigger, run_id)
            except Exception as exc:  # never leave the run without an outcome
                logger.exception("Topic %s: internal error in the scheduler during run %d", topic, run_id)
                reason = f"internal scheduler error: {exc!r}"
                with contextlib.suppress(Exception):
                    self.store.finish_run(run_id, "failed", reason)
                return RunResult(topic, trigger, "failed", reason, run_id)
        finally:
            lock.release()

    def _run_recorded(self, topic: str, trigger: str, run_id: int) -> RunResult:
        earlier = self.store.open_run(topic, before_id=run_id)
        if earlier:
            reason = f"scheduler run {earlier['id']} of {topic!r} ({earlier['trigger']}, pid {earlier['scheduler_pid']}, started {earlier['started_at']}) is still going"
            return self._skipped(run_id, topic, trigger, reason)
        if not self._wait_for_slot(topic):
            return self._skipped(run_id, topic, trigger, "the scheduler is stopping")
        try:
            other = self.store.running_crawl(topic)
            if other:
                reason = f"crawl run {other['id']} of {topic!r} is still running in another process (pid {other['pid']}, started {other['started_at']})"
                return self._skipped(run_id, topic, trigger, reason)
            return self._crawl_and_judge(topic, trigger, run_id)
        finally:
            self._slots.release()

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
        """A run skipped before it was recorded."""
        return self._skip_result(self.store.record_skip(topic, trigger, reason), topic, trigger, reason)

    def _skipped(self, run_id: int, topic: str, trigger: str, reason: str) -> RunResult:
        """A run already recorded as due that does not crawl after all."""
        self.store.finish_run(run_id, "skipped", reason)
        return self._skip_result(run_id, topic, trigger, reason)

    @staticmethod
    def _skip_result(run_id: int, topic: str, trigger: str, reason: str) -> RunResult:
        logger.warning("Topic %s: %s run skipped: %s", topic, trigger, reason)
        return RunResult(topic, trigger, "skipped", reason, run_id)

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
    level = logging.INFO
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            continue
        head = line.split(" ", 1)[0]
        if head in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            level = logging.getLevelName(head)
        tail.append(line)
        _crawl_logger.log(level, "[%s] %s", topic, line)
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

