"""Datasette over the store: canned queries, story page, Atom feed, digest, browser, concurrent crawl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import lxml.html
import pytest
import yaml

from demo.server import FixtureServer
from tests.conftest import DEMO_SITE, ROOT, open_store, run_crawl, write_topics

TEMPLATE = (DEMO_SITE.parent / "topics.template.toml").read_text(encoding="utf-8")
ATOM = "{http://www.w3.org/2005/Atom}"
METADATA = ROOT / "datasette" / "metadata.yml"
ROWS = "//table[contains(concat(' ', normalize-space(@class), ' '), ' rows-and-columns ')]/tbody/tr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Datasette:
    def __init__(self, db: Path, serve_py: bool = False, *extra: str):
        """Datasette on ``db`` as README's command runs it, or through datasette/serve.py (with ``extra`` options)."""
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        if serve_py:
            cmd = [sys.executable, str(ROOT / "datasette" / "serve.py"), str(db), "--port", str(self.port), *extra]
        else:
            cmd = [sys.executable, "-m", "datasette", "serve", str(db), "--port", str(self.port),
                   "--metadata", str(METADATA),
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


def _by_slug(manifest) -> dict:
    return {a["slug"]: a for a in manifest["articles"]}


def _copy_store(db: Path, to: Path) -> Path:
    """A consistent copy of a WAL store, to change without touching the served one."""
    with sqlite3.connect(db) as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    return to


def _fetched(db: Path, when: dict[str, str], default: str) -> None:
    """Pin articles.fetched_at: ``when`` maps a manifest slug to its time, the others get ``default``."""
    with sqlite3.connect(db) as conn:
        conn.execute("update articles set fetched_at = ?", [default])
        for slug, at in when.items():
            assert conn.execute("update articles set fetched_at = ? where url like ?", [at, f"%/{slug}.html"]).rowcount == 1, slug


def _digest(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.digest", "--db", str(db), *args], cwd=ROOT, capture_output=True, text=True)


def _md_sections(text: str) -> dict[str, str]:
    """A Markdown digest's sections by heading ("New stories", "Growing stories", "Coverage per day")."""
    return {part.split("\n", 1)[0].strip(): part.split("\n", 1)[-1] for part in text.split("\n## ")[1:]}


def _check_story_page(page: str, manifest) -> None:
    """The AI story page shows its real articles: headline, the wire copy folded under the original, the outlet."""
    articles = _by_slug(manifest)
    original, copy = articles["anthropic-alibaba-distillation"]["title"], articles["wire-anthropic-alibaba"]["title"]
    doc = lxml.html.fromstring(page)
    assert doc.xpath("string(//h1[@class='story-headline'])").strip() == original
    groups = doc.xpath("//div[@class='group'][.//details[@class='copies']]")
    assert len(groups) == 1, "one text with copies"
    assert groups[0].xpath("string(div[@class='original']/a)").strip() == original
    assert groups[0].xpath("string(.//details[@class='copies']/summary)").strip() == "1 copy of this text"
    assert [a.text_content().strip() for a in groups[0].xpath(".//details[@class='copies']//li/a")] == [copy]
    assert [li.text_content().strip() for li in doc.xpath("//ul[@class='outlets']/li")] == ["127.0.0.1 (2)"]  # the fixture site's host, both articles
    # which sources found each article (article_sources): the original is in the RSS and Atom feeds, the copy in a sitemap
    found_original = groups[0].xpath("string(div[@class='original']//span[@class='found-via'])")
    found_copy = groups[0].xpath("string(.//details[@class='copies']//li//span[@class='found-via'])")
    assert found_original.startswith("found via") and "feed" in found_original
    assert "sitemap" in found_copy


def test_canned_queries(store):
    ds = store["ds"]
    latest = ds.json("/news/latest_stories.json?topic=&_shape=objects")["rows"]
    assert latest and {"story_id", "title", "article_count", "distinct_sites", "first_seen", "last_seen", "topics"} <= set(latest[0])
    db = open_store(store["db"])
    assert [r["story_id"] for r in latest] == [r[0] for r in db.execute("select id from stories order by last_seen desc, article_count desc")]
    only_city = ds.json("/news/latest_stories.json?topic=city-budget&_shape=objects")["rows"]
    assert len(only_city) == 1 and "city-budget" in only_city[0]["topics"]
    # the AI story: the original first, then its wire copy (same near-duplicate group), then the other outlet's text
    story_id, _ = _ai_story(store["db"])
    rows = ds.json(f"/news/story.json?story_id={story_id}&_shape=objects")["rows"]
    expected = db.execute(
        "select a.url, a.cluster_id, c.representative_url = a.url from articles a join clusters c on c.id = a.cluster_id where a.story_id = ?", [story_id]
    ).fetchall()
    copies = [url for url, cluster, first in expected if not first]
    assert [r["url"] for r in rows if r["role"] == "copy"] == copies and len(copies) == 1 and "wire-anthropic-alibaba" in copies[0]
    originals = [r for r in rows if r["role"] == "original"]
    assert len(originals) == len(expected) - 1 and {r["url"] for r in originals} == {u for u, _, first in expected if first}
    copy_at = next(i for i, r in enumerate(rows) if r["role"] == "copy")
    assert rows[copy_at - 1]["role"] == "original" and "anthropic-alibaba-distillation" in rows[copy_at - 1]["url"]  # under its original
    hits = ds.json("/news/search.json?q=" + quote("council") + "&_shape=objects")["rows"]
    assert hits and any("council" in (h["titles"] or "").lower() for h in hits)


@pytest.mark.parametrize("q", ["", " ", "\t", '"', '""', "ai-model", "it's", '"unbalanced quote', "council OR"])
def test_search_takes_any_text(store, q):
    """Plain text never breaks the search page (the front page links to it with no q)."""
    status, body = store["ds"].get("/news/search?q=" + quote(q))
    assert status == 200, body[:300]
    rows = store["ds"].json("/news/search.json?q=" + quote(q) + "&_shape=objects")["rows"]
    if not q.strip(' \t"'):
        assert rows == []


def test_search_words_and_fts_syntax(store):
    ds = store["ds"]
    # every word must appear (AND): the search for two words finds no more than each word alone
    plain = ds.json("/news/search.json?q=" + quote("council budget") + "&_shape=objects")["rows"]
    alone = [{h["story_id"] for h in ds.json(f"/news/search.json?q={w}&_shape=objects")["rows"]} for w in ("council", "budget")]
    assert plain and {h["story_id"] for h in plain} <= alone[0] & alone[1]
    assert not ds.json("/news/search.json?q=" + quote("council distillation") + "&_shape=objects")["rows"]
    # search_fts: FTS5 operators
    both = ds.json("/news/search_fts.json?q=" + quote("council OR distillation") + "&_shape=objects")["rows"]
    council = ds.json("/news/search_fts.json?q=council&_shape=objects")["rows"]
    distillation = ds.json("/news/search_fts.json?q=distillation&_shape=objects")["rows"]
    assert council and distillation and {h["story_id"] for h in both} == {h["story_id"] for h in council + distillation}
    status, _ = ds.get("/news/search_fts.json?q=" + quote("council NOT"))
    assert status == 400  # invalid FTS5: SQLite's error, as the description says


def test_public_setting_turns_arbitrary_sql_off(store, tmp_path):
    ds = Datasette(_copy_store(store["db"], tmp_path / "news.db"), True, "--public")
    try:
        assert ds.get("/news.json?sql=" + quote("select 1"))[0] == 403
        assert ds.get("/news.db")[0] == 403
        assert ds.json("/news/latest_stories.json?topic=&_shape=objects")["rows"]  # canned queries still work
        assert ds.get("/-/news/topic/ai-model-theft.atom")[0] == 200
    finally:
        ds.stop()


def test_story_page(store, manifest):
    story_id, _ = _ai_story(store["db"])
    status, body = store["ds"].get(f"/-/news/story/{story_id}")
    assert status == 200
    _check_story_page(body.decode(), manifest)
    assert store["ds"].get("/-/news/story/nope")[0] == 404


def test_article_sources_table(store, manifest):
    rows = store["ds"].json("/news/article_sources.json?_shape=objects&_size=max")["rows"]
    found = {(r["url"].split("/")[-1].removesuffix(".html"), r["topic"], r["kind"], r["source"].split("/", 3)[-1]) for r in rows}
    assert ("council-approves-budget", "city-budget", "page", "local/") in found  # the manifest's local_page source
    assert ("wire-anthropic-alibaba", "ai-model-theft", "sitemap", "sitemaps/articles.xml.gz") in found
    assert ("anthropic-alibaba-distillation", "ai-model-theft", "feed", "feeds/rss.xml") in found
    assert ("anthropic-alibaba-distillation", "ai-model-theft", "feed", "feeds/atom.xml") in found
    page = lxml.html.fromstring(store["ds"].get("/news/article_sources")[1])
    assert len(page.xpath(ROWS)) == len(rows) >= 5


def test_atom_feed_one_entry_per_story(store, manifest):
    status, body = store["ds"].get("/-/news/topic/ai-model-theft.atom")
    assert status == 200
    feed = ET.fromstring(body)
    assert feed.findtext(f"{ATOM}author/{ATOM}name")  # RFC 4287 4.1.1: required when entries have no author
    entries = feed.findall(f"{ATOM}entry")
    # expected from the fixture: the stories of the articles the manifest says the topic stores
    stored = [a["path"] for a in manifest["articles"] if a["expected"].get("ai-model-theft", "").startswith("stored")]
    db = open_store(store["db"])
    stories = [db.execute("select story_id from articles where url like ?", ["%" + path]).fetchone()[0] for path in stored]
    assert len(stored) == 5 and len(set(stories)) < len(stored)  # the wire copy shares its original's story
    ids = [e.findtext(f"{ATOM}id").removeprefix("tag:newscrawler,2026:story/") for e in entries]
    assert sorted(ids) == sorted(set(stories))
    assert all(e.find(f"{ATOM}title").text and e.find(f"{ATOM}link").get("href") for e in entries)
    # RFC 3339 times with an offset everywhere (RFC 4287 3.3)
    times = [feed.findtext(f"{ATOM}updated")] + [e.findtext(f"{ATOM}{tag}") for e in entries for tag in ("updated", "published")]
    assert all(datetime.fromisoformat(t.replace("Z", "+00:00")).tzinfo is not None for t in times), times
    # newest first by when the crawler found the story (an older event found later comes first)
    found = [db.execute("select min(fetched_at) from articles where story_id = ?", [i]).fetchone()[0] for i in ids]
    assert found == sorted(found, reverse=True)
    published = [datetime.fromisoformat(e.findtext(f"{ATOM}published")) for e in entries]
    assert published == [datetime.fromisoformat(f) for f in found]


def test_atom_feed_orders_by_discovery_not_publication(store, tmp_path):
    """A story about a 2019 event found today is new to a feed reader: it comes first."""
    db = _copy_store(store["db"], tmp_path / "news.db")
    _fetched(db, {}, "2026-11-22T06:00:00+00:00")
    with sqlite3.connect(db) as conn:
        oldest = conn.execute(
            "select s.id from stories s join articles a on a.story_id = s.id join article_topics t on t.url = a.url "
            "where t.topic = 'ai-model-theft' order by s.first_seen limit 1").fetchone()[0]
        conn.execute("update articles set fetched_at = '2026-11-23T06:00:00+00:00' where story_id = ?", [oldest])
    ds = Datasette(db)
    try:
        status, body = ds.get("/-/news/topic/ai-model-theft.atom")
    finally:
        ds.stop()
    entries = ET.fromstring(body).findall(f"{ATOM}entry")
    assert status == 200 and entries[0].findtext(f"{ATOM}id") == f"tag:newscrawler,2026:story/{oldest}"
    assert entries[0].findtext(f"{ATOM}updated") == "2026-11-23T06:00:00+00:00"


def test_digest(store, manifest, tmp_path):
    # a fixed clock: the crawl's articles fetched at 06:00 on 2026-11-22, the digest made at noon (any run date)
    db = _copy_store(store["db"], tmp_path / "news.db")
    _fetched(db, {}, "2026-11-22T06:00:00+00:00")
    title = _by_slug(manifest)["council-approves-budget"]["title"]  # published 2026-11-18
    out = _digest(db, "--topic", "city-budget", "--since", "24h", "--now", "2026-11-22T12:00:00+00:00")
    assert out.returncode == 0, out.stderr
    sections = _md_sections(out.stdout)
    assert title in sections["New stories"] and title not in sections["Growing stories"]
    chart = dict(line.split(" ", 1) for line in sections["Coverage per day"].splitlines() if line[:2] == "20")
    assert list(chart)[0] == "2026-11-09" and list(chart)[-1] == "2026-11-22"  # 14 days up to --now
    assert chart["2026-11-18"].startswith("█") and chart["2026-11-18"].split()[-1] == "1"
    assert {v.split()[-1] for day, v in chart.items() if day != "2026-11-18"} == {"0"}
    later = _digest(db, "--topic", "city-budget", "--since", "2026-11-22T07:00:00", "--now", "2026-11-22T12:00:00+00:00")
    assert later.returncode == 0 and title not in later.stdout  # fetched before the period
    earlier = _digest(db, "--topic", "city-budget", "--since", "7d", "--now", "2026-11-22T05:00:00+00:00")
    assert earlier.returncode == 0 and title not in earlier.stdout  # fetched after --now: not there yet
    bad = _digest(db, "--topic", "nope")
    assert bad.returncode != 0 and "city-budget" in bad.stderr


def test_digest_new_and_growing_by_fetch_time(store, manifest, tmp_path):
    """Two stored states: a first crawl on 11-21, a second on 11-23 bringing the wire copy and the opinion piece."""
    db = _copy_store(store["db"], tmp_path / "news.db")
    second = "2026-11-23T06:00:00+00:00"
    _fetched(db, {"wire-anthropic-alibaba": second, "claude-scraping-opinion": second}, "2026-11-21T06:00:00+00:00")
    titles = {slug: a["title"] for slug, a in _by_slug(manifest).items()}
    for fmt in ("md", "html"):
        out = _digest(db, "--topic", "ai-model-theft", "--since", "24h", "--now", "2026-11-23T12:00:00+00:00", "--format", fmt)
        assert out.returncode == 0, out.stderr
        if fmt == "md":
            sections = _md_sections(out.stdout)
            new, growing = sections["New stories"], sections["Growing stories"]
        else:
            new, growing = out.stdout.split("<h2>New stories</h2>")[1].split("<h2>Growing stories</h2>")
            growing = growing.split("<h2>Coverage per day</h2>")[0]
        # published 2026-11-21, first fetched in the period: new, though published before it
        assert titles["claude-scraping-opinion"] in new and titles["claude-scraping-opinion"] not in growing, fmt
        # the original came with the first crawl, its wire copy with the second: growing, 1 of 2 articles new
        assert titles["anthropic-alibaba-distillation"] in growing and titles["anthropic-alibaba-distillation"] not in new, fmt
        assert titles["wire-anthropic-alibaba"] in growing and "2 article(s) from 1 outlet(s), 1 new" in growing, fmt
        for slug in ("claude-distillation-defenses", "old-chip-export-story"):  # nothing new in the period
            assert titles[slug] not in out.stdout, (fmt, slug)


def test_metadata_describes_every_table_and_column(store, tmp_path):
    from scheduler import SCHEDULER_MIGRATIONS

    db = open_store(_copy_store(store["db"], tmp_path / "news.db"))
    SCHEDULER_MIGRATIONS.apply(db)  # the scheduler's schedule_runs lives in the same store
    described = yaml.safe_load(METADATA.read_text(encoding="utf-8"))["databases"]["news"]["tables"]
    fts = [r[0] for r in db.execute("select name from sqlite_master where sql like 'CREATE VIRTUAL TABLE%USING FTS%'").fetchall()]
    tables = [t for t in db.table_names() if not any(t == f or t.startswith(f + "_") for f in fts)]  # Datasette hides FTS tables
    assert {"articles", "stories", "clusters", "group_articles", "schedule_runs", "crawl_runs"} <= set(tables)
    problems = []
    for table in tables:
        meta = described.get(table) or {}
        if not meta.get("description"):
            problems.append(f"{table}: no description")
        columns, notes = set(db[table].columns_dict), meta.get("columns") or {}
        problems += [f"{table}.{c}: no column description" for c in sorted(columns - {c for c, d in notes.items() if d})]
        problems += [f"{table}.{c}: described but not in the schema" for c in sorted(set(notes) - columns)]
    assert not problems, "datasette/metadata.yml:\n" + "\n".join(problems)


def test_serve_py_renames_the_metadata_for_another_file(store, tmp_path):
    ds = Datasette(_copy_store(store["db"], tmp_path / "demo.db"), serve_py=True)
    try:
        rows = ds.json("/demo/latest_stories.json?topic=city-budget&_shape=objects")["rows"]
        meta = ds.json("/-/metadata.json")["databases"]["demo"]["tables"]
    finally:
        ds.stop()
    assert len(rows) == 1 and "city-budget" in rows[0]["topics"]
    assert meta["stories"]["columns"]["article_count"] and meta["crawl_run_topics"]["columns"]["stored"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_browser_story_page_and_search(store, manifest, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    story_id, _ = _ai_story(store["db"])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shots = Path(os.environ.get("NEWS_SCREENSHOT_DIR") or tmp_path).resolve()  # .ci/run keeps them in .ci/screenshots
    shots.mkdir(parents=True, exist_ok=True)
    council = _by_slug(manifest)["council-approves-budget"]["title"]
    pages = {
        "story": (f"{store['ds'].base}/-/news/story/{story_id}", lambda dom: _check_story_page(dom, manifest)),
        "search": (f"{store['ds'].base}/news/search?q=council", lambda dom: _check_search_results(dom, council)),
    }
    for name, (url, check) in pages.items():
        dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
        check(dom)
        shot = shots / f"{name}.png"
        subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,900", url], capture_output=True, timeout=90)
        assert shot.exists() and shot.stat().st_size > 5000, name


def _check_search_results(dom: str, title: str) -> None:
    """The rendered results table has rows, and one shows the matching article's title (only a result can)."""
    rows = lxml.html.fromstring(dom).xpath(ROWS)
    assert rows, "no result rows in table.rows-and-columns"
    assert any(title in row.text_content() for row in rows), title


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
    assert counts and max(counts) > len(before)  # new rows were seen while the crawl was still running


def test_every_table_page_and_its_configured_facets_work(store):
    """Each table of a crawled store opens (HTML and JSON) with the facets metadata.yml configures."""
    meta = yaml.safe_load((ROOT / "datasette" / "metadata.yml").read_text())["databases"]["news"]["tables"]
    tables = [t for t in open_store(store["db"]).table_names() if not t.startswith("articles_fts")]
    for table in tables:
        status, body = store["ds"].get(f"/news/{table}")
        assert status == 200, (table, status, body[:300])
        facets = store["ds"].json(f"/news/{table}.json?_extra=facet_results")["facet_results"]
        configured = [f if isinstance(f, str) else next(iter(f.values())) for f in meta.get(table, {}).get("facets", [])]
        assert set(configured) <= set(facets), (table, configured, list(facets))
    assert {"published", "fetched_at", "hostname"} <= set(store["ds"].json("/news/articles.json?_extra=facet_results")["facet_results"])
