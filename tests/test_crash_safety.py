"""Crash safety: SIGKILL at any moment leaves a consistent store, and a rerun completes the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

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
    return [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", f"NEWS_DB={db}",
            "-s", "NEWS_STORE_BATCH_SIZE=1", "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False",
            "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", "-s", "NEWS_EXTRACT_WORKERS=1"]


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


def test_sigkill_at_several_points_then_rerun_completes(tmp_path, manifest):
    pages = _site(manifest)
    server = FixtureServer(routes={path: _slow(body) for path, body in pages.items()})
    with server:
        items = "".join(f"<item><title>t</title><link>{server.base}{p}</link></item>" for p in pages)
        server.pages["/feed.xml"] = f"<rss version='2.0'><channel><title>f</title>{items}</channel></rss>".encode()
        topics = tmp_path / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "t"\nmax_age_days = 0\nfeeds = ["{server.base}/feed.xml"]\n')
        db = tmp_path / "news.db"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        stored_after_kill = []
        refetched = []
        stored_paths: set[str] = set()
        for target in (1, 6, 12, 17):  # kill once this many articles are stored: early, middle, late
            server.clear()
            proc = subprocess.Popen(_crawl_cmd(topics, db), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline and _stored(db) < target:
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)  # the crawl and its extraction workers, mid-write or not
            proc.wait()
            _check_consistent(db)
            refetched += [p for p in server.paths() if p in stored_paths]
            stored_after_kill.append(_stored(db))
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
    assert [r["status"] for r in runs] == ["failed"] * 4 + ["finished"]
    assert all(r["finish_reason"] == "process gone (killed or crashed)" and r["finished_at"] is None for r in runs[:4])
    assert stored_after_kill == sorted(stored_after_kill) and 0 < stored_after_kill[-1] < N_ARTICLES, stored_after_kill
    assert runs[-1]["stored"] == N_ARTICLES - stored_after_kill[-1]
    # articles stored before a kill are never fetched again (in-flight ones are, and then stored)
    assert refetched == []
    assert json.loads(runs[-1]["stats"])["news/fetched"] == N_ARTICLES - stored_after_kill[-1]
