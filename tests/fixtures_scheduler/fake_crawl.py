"""Stand-in for `python -m scrapy crawl news` in tests/test_scheduler.py.

The scheduler runs it through its hidden --crawl-command option (or NEWS_CRAWL_COMMAND),
appending the usual `-a topic=NAME -s NEWS_DB=... -s ...` arguments. Each invocation takes
the next step of FAKE_CRAWL_PLAN (comma-separated; the last step repeats), counting the
invocations in the file FAKE_CRAWL_STATE:

    crash     record a 'running' crawl run as the real crawl does, then die by SIGKILL
              (as after an out-of-memory kill): the record stays 'running'
    hold:N    record a 'running' crawl run as the real crawl does, then sleep N seconds and
              exit without finishing it: a crawl the scheduler did not start, still going
    exit      exit with code 3 without recording anything
    sleep:N   sleep N seconds, then exit 0 without recording anything
    hang      ignore SIGINT and sleep for a minute (only SIGKILL stops it)
    real      the real crawl: exec `python -m scrapy crawl news` with the same arguments
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _arg(flag: str, key: str) -> str | None:
    args = sys.argv[1:]
    for i, value in enumerate(args[:-1]):
        if value == flag and args[i + 1].startswith(key + "="):
            return args[i + 1].split("=", 1)[1]
    return None


def _next_step() -> str:
    plan = os.environ.get("FAKE_CRAWL_PLAN", "real").split(",")
    state = Path(os.environ["FAKE_CRAWL_STATE"]) if os.environ.get("FAKE_CRAWL_STATE") else None
    calls = int(state.read_text()) if state and state.exists() else 0
    if state:
        state.write_text(str(calls + 1))
    return plan[min(calls, len(plan) - 1)]


def _record_running() -> None:
    """A 'running' crawl_runs row for this process, as the real crawl writes when it starts."""
    sys.path.insert(0, str(ROOT))
    from pipelines.db import open_db

    db = open_db(_arg("-s", "NEWS_DB"))
    row = {
        "topics": json.dumps([_arg("-a", "topic")]),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "db_path": _arg("-s", "NEWS_DB"),
        "pid": os.getpid(),
    }
    db["crawl_runs"].insert(row)
    db.close()


def _crash() -> None:
    _record_running()
    print("fake crawl: crashing now", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    step = _next_step()
    if step == "crash":
        _crash()
    elif step == "exit":
        print("fake crawl: exiting with code 3", file=sys.stderr, flush=True)
        sys.exit(3)
    elif step.startswith("sleep:"):
        time.sleep(float(step.split(":", 1)[1]))
    elif step.startswith("hold:"):
        _record_running()
        print("fake crawl: holding", file=sys.stderr, flush=True)
        time.sleep(float(step.split(":", 1)[1]))
    elif step == "hang":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("fake crawl: hanging", file=sys.stderr, flush=True)
        time.sleep(60)
    elif step == "real":
        os.execv(sys.executable, [sys.executable, "-m", "scrapy", "crawl", "news", *sys.argv[1:]])
    else:
        sys.exit(f"fake crawl: unknown step {step!r}")


if __name__ == "__main__":
    main()
