"""Judging one crawl: (outcome, reason) from its crawl_runs row, its exit code and the topic's usual yield.

Pure functions: the caller reads the row and the baseline (Store.find_crawl_run, Store.baseline).
"""

from __future__ import annotations

import signal

__all__ = ["LOW_YIELD_HISTORY", "LOW_YIELD_MIN_HISTORY", "LOW_YIELD_MIN_BASELINE", "LOW_YIELD_RATIO", "MANY_ERRORS", "judge"]

# "far fewer articles than usual" (see judge())
LOW_YIELD_HISTORY = 5  # baseline: median `discovered` of the topic's last N finished crawls
LOW_YIELD_MIN_HISTORY = 3  # ... of which at least this many are needed
LOW_YIELD_MIN_BASELINE = 5  # a baseline below this is too small to judge from
LOW_YIELD_RATIO = 0.2  # fewer than a fifth of the usual count is "far fewer"
MANY_ERRORS = 10  # at least this many failed fetches, and more than pages fetched


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
