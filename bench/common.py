"""Shared helpers for the benchmarks: locate ../shared/data, serve pages, run a real crawl."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("NEWS_BENCH_DATA", ROOT.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        sys.exit(f"{path} not found: benchmarks read ../shared/data (or set NEWS_BENCH_DATA to its location)")
    return path


def read_jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def run_crawl(topics: Path, db: Path, *settings: str, log: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """A real `scrapy crawl news` subprocess; returns (result, wall seconds)."""
    cmd = [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", f"NEWS_DB={db}"]
    for setting in settings:
        cmd += ["-s", setting]
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    if log is not None:
        log.write_text(result.stderr, encoding="utf-8")
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        sys.exit(f"crawl failed with exit code {result.returncode}")
    return result, elapsed


# settings for crawling one local server as fast as it allows: every "site" is 127.0.0.1
FAST_LOCAL = (
    "DOWNLOAD_DELAY=0",
    "AUTOTHROTTLE_ENABLED=False",
    "CONCURRENT_REQUESTS=32",
    "CONCURRENT_REQUESTS_PER_DOMAIN=32",
    "LOG_LEVEL=INFO",
)


# --- the Scrapinghub article-body metric ---------------------------------------------
# tokens \w+, 4-gram shingles, per-page tp/fp/fn from multiset overlap normalised by their
# sum; precision averaged over pages with a prediction, recall over pages with a truth.

_TOKEN = re.compile(r"\w+", re.UNICODE)


def _shingles(text: str, n: int = 4) -> Counter:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def shingle_tp_fp_fn(truth: str, pred: str) -> tuple[float, float, float]:
    t, p = _shingles(truth), _shingles(pred)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    s = tp + fp + fn
    return (tp / s, fp / s, fn / s) if s else (0.0, 0.0, 0.0)


def scrapinghub_scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """pairs of (truth, prediction) -> precision, recall, F1 as published for the AEB."""
    precisions, recalls = [], []
    for truth, pred in pairs:
        tp, fp, fn = shingle_tp_fp_fn(truth, pred)
        if tp + fp > 0:
            precisions.append(1.0 if fp == fn == 0 else tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(1.0 if fp == fn == 0 else tp / (tp + fn))
    precision = sum(precisions) / len(precisions) if precisions else 0.0
    recall = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def crawl_fundus(served: dict, workdir: Path, *settings: str) -> tuple[Path, float]:
    """Serve fundus_news pages (path -> Response) with its per-site RSS feeds, crawl them all.

    Returns (database, wall seconds). One topic, no query, no age limit.
    """
    from demo.server import FixtureServer, Response

    feeds = sorted(data_path("fundus_news", "site_feeds").glob("*/rss.xml"))
    with FixtureServer(pages=served) as server:
        feed_urls = []
        for feed in feeds:
            path = f"/feeds/{feed.parent.name}/rss.xml"
            body = feed.read_text(encoding="utf-8").replace("{{BASE}}", server.base).encode()
            server.pages[path] = Response(200, body, {"Content-Type": "application/rss+xml"})
            feed_urls.append(server.base + path)
        topics = workdir / "topics.toml"
        topics.write_text('[[topic]]\nname = "fundus"\nmax_age_days = 0\nfeeds = [\n' + ",\n".join(f'  "{u}"' for u in feed_urls) + "\n]\n")
        db = workdir / "news.db"
        for old in workdir.glob("news.db*"):
            old.unlink()
        _, wall = run_crawl(topics, db, *FAST_LOCAL, *settings, log=workdir / "crawl.log")
    return db, wall
