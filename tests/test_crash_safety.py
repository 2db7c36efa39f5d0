"""Crash safety: SIGKILL at any moment leaves a consistent store, and a rerun completes the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from demo.server import FixtureServer, Response
from tests.conftest import ROOT, open_store

N_ARTICLES = 24


def _site(manifest) -> dict:
    paragraphs = [p for a in manifest["articles"] for p in a["paragraphs"]]
    pages = {}
    for i in range(N_ARTICLES):
        body = "".join(f"<p>{paragraphs[(i * 3 + k) % len(paragraphs)]}</p>" for k in range(4))
        pages[f"/news/story-number-{i:03d}.html"] = (
            f"<html><head><title>Story {i}</title></head><body><article><h1>Story number {i}</h1>"
            f"<p>Dispatch {i} opens with its own sentence about item {i}.</p>{body}</article></body></html>"
        ).encode()
    return pages


def _slow(body: bytes):
    def route(handler):
        time.sleep(0.2)
        return Response(200, body, {"Content-Type": "text/html; charset=utf-8"})

    return route


def _crawl_cmd(topics, db):
    # one page at a time paces the crawl (with DOWNLOAD_DELAY=0 the per-domain limit holds only
    # because crawler/politeness.py raises the delay to a millisecond; CONCURRENT_REQUESTS=1 too)
    return [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", f"NEWS_DB={db}",
            "-s", "NEWS_STORE_BATCH_SIZE=1", "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False",
            "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", "-s", "CONCURRENT_REQUESTS=1", "-s", "NEWS_EXTRACT_WORKERS=1"]


def _stored(db_path) -> int:
    if not db_path.exists():
        return 0
    try:
        db = open_store(db_path)
        n = db.execute("select count(*) from articles").fetchone()[0]
        db.conn.close()
        return n
    except Exception:  # schema not created yet
        return 0


def _check_consistent(db_path):
    db = open_store(db_path)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    # an article is written with its topics and raw HTML in one transaction: never without them
    orphans = db.execute(
        "select count(*) from articles a where not exists (select 1 from article_topics t where t.url = a.url) "
        "or not exists (select 1 from raw_html r where r.url = a.url)"
    ).fetchone()[0]
    assert orphans == 0
    assert db.execute("select count(*) from articles where text is null or text = ''").fetchone()[0] == 0
    fts = db.execute("select count(*) from articles_fts").fetchone()[0]
    assert fts == db.execute("select count(*) from articles").fetchone()[0]
    db.conn.close()


def _newest_run_errors(db_path) -> set[str]:
    try:
        db = open_store(db_path)
        rows = db.execute("select url from fetch_errors where run_id = (select max(id) from crawl_runs)").fetchall()
        db.conn.close()
    except Exception:  # schema not created yet
        return set()
    return {"/news/" + u.split("/news/")[1] for (u,) in rows}


# kill points, in order: once the run stored this many more articles; once its first fetch
# errors are written; in the middle of a batch write (NEWS_TEST_WRITE_PAUSE_FILE)
KILLS = [("stored", 1), ("errors", 0), ("stored", 4), ("mid-write", 0), ("stored", 4)]
# how long a recorded failure may take to reach fetch_errors (runs.ERRORS_FLUSH_SECONDS + margin)
ERRORS_LAG = 2.5


def test_sigkill_at_several_points_then_rerun_completes(tmp_path, manifest):
    pages = _site(manifest)
    # at both ends of the feed: some are fetched early, whichever order Scrapy takes the feed in
    missing = [f"/news/missing-story-{i:03d}.html" for i in range(4)]
    answered: list[tuple[str, float]] = []  # (missing page, when it was answered 404)

    def not_found(handler):
        answered.append((handler.path, time.monotonic()))
        return Response(404, b"not here", {"Content-Type": "text/html"})

    server = FixtureServer(routes={**{path: _slow(body) for path, body in pages.items()}, **{p: not_found for p in missing}})
    with server:
        items = "".join(f"<item><title>t</title><link>{server.base}{p}</link></item>" for p in [*missing[:2], *pages, *missing[2:]])
        server.pages["/feed.xml"] = f"<rss version='2.0'><channel><title>f</title>{items}</channel></rss>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
        db = tmp_path / "news.db"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        stored_after_kill = []
        refetched = []
        stored_paths: set[str] = set()
        for run_id, (point, target) in enumerate(KILLS, start=1):
            server.clear()
            answered.clear()
            marker = tmp_path / f"pause-{run_id}"
            extra = ["-s", f"NEWS_TEST_WRITE_PAUSE_FILE={marker}", "-s", "NEWS_STORE_BATCH_SIZE=3"] if point == "mid-write" else []
            before = _stored(db)
            proc = subprocess.Popen(_crawl_cmd(topics, db) + extra, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            reached = {
                "errors": lambda: bool(_newest_run_errors(db) & set(missing)),  # written while the crawl runs
                "stored": lambda: _stored(db) >= before + target,
                "mid-write": marker.exists,  # the writer is inside its transaction, articles inserted, topics not
            }[point]
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline and not reached():
                time.sleep(0.02)
            killed_at = time.monotonic()
            assert proc.poll() is None, (point, "the crawl ended before its kill point")
            os.killpg(proc.pid, signal.SIGKILL)  # the crawl and its extraction workers, mid-write or not
            proc.wait()
            assert time.monotonic() < deadline, (point, "kill point not reached")
            _check_consistent(db)
            if point == "mid-write":
                assert _stored(db) == before  # the batch being written when killed left no trace
            # failures recorded before the kill survive it
            recorded = _newest_run_errors(db)
            assert {p for p, at in answered if at < killed_at - ERRORS_LAG} <= recorded, (point, answered, killed_at, recorded)
            refetched += [p for p in server.paths() if p in stored_paths]
            stored_after_kill.append(_stored(db))
            assert stored_after_kill[-1] < N_ARTICLES, (point, "killed only once all the work was done")
            stored_paths = {"/news/" + u.split("/news/")[1] for (u,) in open_store(db).execute("select url from articles")}
        server.clear()
        final = subprocess.run(_crawl_cmd(topics, db), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        refetched += [p for p in server.paths() if p in stored_paths]
    assert final.returncode == 0, final.stderr[-2000:]
    _check_consistent(db)
    store = open_store(db)
    assert store.execute("select count(*) from articles").fetchone()[0] == N_ARTICLES
    assert store.execute("select count(distinct content_hash) from articles").fetchone()[0] == N_ARTICLES
    # killed runs are marked failed by the next crawl (their process is gone); the last one finished
    runs = list(store["crawl_runs"].rows_where(order_by="id"))
    assert [r["status"] for r in runs] == ["failed"] * len(KILLS) + ["finished"]
    assert all(r["finish_reason"] == "process gone (killed or crashed)" and r["finished_at"] is None for r in runs[:-1])
    # the run killed once its errors were written keeps them, and their counts by kind
    assert json.loads(runs[KILLS.index(("errors", 0))]["error_kinds"])["http_404"] >= 1
    assert json.loads(runs[-1]["error_kinds"]) == {"http_404": len(missing)}
    assert stored_after_kill == sorted(stored_after_kill) and 0 < stored_after_kill[-1] < N_ARTICLES, stored_after_kill
    assert runs[-1]["stored"] == N_ARTICLES - stored_after_kill[-1]
    # articles stored before a kill are never fetched again (in-flight ones are, and then stored)
    assert refetched == []
    assert json.loads(runs[-1]["stats"])["news/fetched"] == N_ARTICLES - stored_after_kill[-1]


def test_abandoned_runs_need_their_own_process(tmp_path):
    """A 'running' row whose pid now belongs to another process (reboot, pid reuse) is failed."""
    from crawler.runs import CrawlRunRecorder
    from pipelines.db import open_db

    def at(seconds: float) -> str:
        return datetime.fromtimestamp(time.time() + seconds, timezone.utc).isoformat(timespec="seconds")

    other = subprocess.Popen(["sleep", "60"])  # alive, but no crawl
    crawl = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "scrapy", "crawl", "news"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        time.sleep(0.3)
        db = open_db(tmp_path / "news.db")
        rows = {
            "crawl_alive": (crawl.pid, at(+1)),  # the crawl that wrote the row: keeps running
            "crawl_started_after_run": (crawl.pid, at(-3600)),  # the pid was reused by a later crawl
            "not_a_crawl": (other.pid, at(+1)),  # after a reboot: an unrelated process holds the pid
            "this_process": (os.getpid(), at(-3600)),  # same pid as the crawl now starting (containers)
            "dead": (dead.pid, at(-10)),
        }
        ids = {name: db["crawl_runs"].insert({"status": "running", "pid": pid, "started_at": started, "topics": "[]"}).last_pk
               for name, (pid, started) in rows.items()}
        recorder = CrawlRunRecorder(type("Crawler", (), {"stats": None})(), str(tmp_path / "news.db"))
        recorder.db = db
        recorder._close_abandoned_runs()
        status = {name: db["crawl_runs"].get(i)["status"] for name, i in ids.items()}
    finally:
        other.kill()
        crawl.kill()
        other.wait()
        crawl.wait()
    assert status == {"crawl_alive": "running", "crawl_started_after_run": "failed", "not_a_crawl": "failed",
                      "this_process": "failed", "dead": "failed"}
