"""Datasette over the store: canned queries, story page, Atom feed, digest, browser, concurrent crawl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import pytest

from demo.server import FixtureServer
from tests.conftest import DEMO_SITE, ROOT, open_store, run_crawl, write_topics

TEMPLATE = (DEMO_SITE.parent / "topics.template.toml").read_text(encoding="utf-8")
ATOM = "{http://www.w3.org/2005/Atom}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Datasette:
    def __init__(self, db: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "datasette", "serve", str(db), "--port", str(self.port),
               "--metadata", str(ROOT / "datasette" / "metadata.yml"),
               "--plugins-dir", str(ROOT / "datasette" / "plugins"),
               "--template-dir", str(ROOT / "datasette" / "templates")]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/-/versions.json", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("datasette did not start: " + (self.proc.stdout.read() if self.proc.stdout else ""))

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str):
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("datasette")
    db = tmp / "news.db"  # the metadata's canned queries are for a database named "news"
    with FixtureServer(root=DEMO_SITE) as server:
        result = run_crawl(write_topics(tmp / "topics.toml", TEMPLATE, server.base), db)
    assert result.returncode == 0, result.stderr[-2000:]
    ds = Datasette(db)
    yield {"db": db, "ds": ds, "tmp": tmp}
    ds.stop()


def _ai_story(db) -> tuple[str, str]:
    row = open_store(db).execute(
        "select story_id, count(*) n from articles where url like '%anthropic-alibaba-distillation%' or url like '%claude-scraping-opinion%' "
        "or url like '%wire-anthropic-alibaba%' group by story_id order by n desc limit 1"
    ).fetchone()
    return row[0], open_store(db).execute("select title from stories where id = ?", [row[0]]).fetchone()[0]


def test_canned_queries(store):
    ds = store["ds"]
    latest = ds.json("/news/latest_stories.json?topic=&_shape=objects")["rows"]
    assert latest and {"story_id", "title", "article_count", "distinct_sites", "first_seen", "last_seen", "topics"} <= set(latest[0])
    only_city = ds.json("/news/latest_stories.json?topic=city-budget&_shape=objects")["rows"]
    assert len(only_city) == 1 and "city-budget" in only_city[0]["topics"]
    story_id, _ = _ai_story(store["db"])
    rows = ds.json(f"/news/story.json?story_id={story_id}&_shape=objects")["rows"]
    assert len(rows) >= 2 and {r["role"] for r in rows} >= {"original"}
    hits = ds.json("/news/search.json?q=" + quote("council") + "&_shape=objects")["rows"]
    assert hits and any("council" in (h["titles"] or "").lower() for h in hits)


def test_story_page(store):
    story_id, title = _ai_story(store["db"])
    status, body = store["ds"].get(f"/-/news/story/{story_id}")
    page = body.decode()
    assert status == 200 and title in page and "Timeline" in page and "Outlets" in page
    assert store["ds"].get("/-/news/story/nope")[0] == 404


def test_atom_feed_one_entry_per_story(store):
    status, body = store["ds"].get("/-/news/topic/ai-model-theft.atom")
    assert status == 200
    feed = ET.fromstring(body)
    entries = feed.findall(f"{ATOM}entry")
    expected = open_store(store["db"]).execute(
        "select count(distinct a.story_id) from articles a join article_topics t on t.url = a.url where t.topic = 'ai-model-theft'"
    ).fetchone()[0]
    assert len(entries) == expected >= 2
    assert all(e.find(f"{ATOM}title").text and e.find(f"{ATOM}link").get("href") for e in entries)


def test_digest(store):
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.digest", "--topic", "city-budget", "--since", "3650d", "--db", str(store["db"])],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    title = open_store(store["db"]).execute(
        "select title from articles a join article_topics t on t.url = a.url where t.topic = 'city-budget'"
    ).fetchone()[0]
    assert title in out.stdout and "New stories" in out.stdout and "█" in out.stdout
    none = subprocess.run(
        [sys.executable, "-m", "pipelines.digest", "--topic", "city-budget", "--since", "2099-01-01", "--db", str(store["db"])],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert none.returncode == 0 and title not in none.stdout
    bad = subprocess.run([sys.executable, "-m", "pipelines.digest", "--topic", "nope", "--db", str(store["db"])], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "city-budget" in bad.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_browser_story_page_and_search(store, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    story_id, title = _ai_story(store["db"])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shots = Path(os.environ.get("NEWS_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    pages = {
        "story": (f"{store['ds'].base}/-/news/story/{story_id}", [title, "Timeline", "Outlets"]),
        "search": (f"{store['ds'].base}/news/search?q=council", ["council", "matching_articles"]),
    }
    for name, (url, expected) in pages.items():
        dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
        for text in expected:
            assert text in dom, (name, text)
        shot = shots / f"{name}.png"
        subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,900", url], capture_output=True, timeout=90)
        assert shot.exists() and shot.stat().st_size > 5000, name


def test_datasette_reads_while_a_crawl_writes(tmp_path):
    db = tmp_path / "news.db"
    with FixtureServer(root=DEMO_SITE) as server:
        topics = write_topics(tmp_path / "topics.toml", TEMPLATE, server.base)
        assert run_crawl(topics, db, "-a", "topic=city-budget").returncode == 0
        ds = Datasette(db)
        try:
            before = ds.json("/news/articles.json?_shape=array&_col=url")
            cmd = [sys.executable, "-m", "scrapy", "crawl", "news", "-a", "topic=ai-model-theft", "-s", f"NEWS_TOPICS={topics}",
                   "-s", f"NEWS_DB={db}", "-s", "NEWS_STORE_BATCH_SIZE=1", "-s", "DOWNLOAD_DELAY=0.2", "-s", "AUTOTHROTTLE_ENABLED=False"]
            crawl = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            statuses, counts = [], []
            while crawl.poll() is None:
                status, body = ds.get("/news/articles.json?_shape=array&_col=url")
                statuses.append(status)
                if status == 200:
                    counts.append(len(json.loads(body)))
                time.sleep(0.1)
            assert crawl.returncode == 0, crawl.stderr.read()[-2000:]
            after = ds.json("/news/articles.json?_shape=array&_col=url")
        finally:
            ds.stop()
    assert statuses and set(statuses) == {200}
    assert len(after) > len(before)
    assert counts == sorted(counts)  # rows appear, none vanish, no half-written states
