"""Crawl throughput: the real crawler over the 258 fundus_news pages vs bare trafilatura.

    python bench/crawl_throughput.py

Serves ../shared/data/fundus_news (pages + per-site RSS feeds) on 127.0.0.1, runs
`scrapy crawl news` over it (one topic, no query, no age limit), and prints articles
stored per second. In the same run it measures bare `trafilatura.bare_extraction` over the
same pages in a 2-process pool. Target: crawl rate >= 0.8 x bare rate.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from common import crawl_fundus, data_path, read_jsonl

from demo.server import Response


def _bare(args):
    import trafilatura

    html, url = args
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, deduplicate=False)
    return doc is not None


def load_site():
    manifest = json.loads(data_path("fundus_news", "site_manifest.json").read_text(encoding="utf-8"))
    pages = {row["id"]: row for row in read_jsonl(data_path("fundus_news", "pages.jsonl.gz"))}
    by_path = {}
    for local_url, page_id in manifest.items():
        by_path[urlsplit(local_url.replace("{{BASE}}", "http://x")).path] = pages[page_id]
    feeds = sorted(data_path("fundus_news", "site_feeds").glob("*/rss.xml"))
    return pages, by_path, feeds


def crawl_once(by_path, workdir: Path) -> dict:
    served = {path: Response(200, row["html"].encode(row.get("html_encoding") or "utf-8", "replace"), {"Content-Type": "text/html; charset=utf-8"}) for path, row in by_path.items()}
    db, wall = crawl_fundus(served, workdir, "NEWS_EXTRACT_WORKERS=2")

    import sqlite_utils

    run = next(sqlite_utils.Database(db)["crawl_runs"].rows_where(order_by="id desc", limit=1))
    stats = json.loads(run["stats"])
    return {**run, "elapsed": stats["elapsed_time_seconds"], "wall": wall, "cpu_main": stats.get("news/main_process_cpu_seconds")}


def bare_once(by_path) -> tuple[float, int]:
    jobs = [(row["html"], row["url"]) for row in by_path.values()]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:  # pool start-up included, as in the crawl
        results = list(pool.map(_bare, jobs, chunksize=4))
    return time.perf_counter() - started, sum(results)


def main() -> None:
    rounds = int(os.environ.get("ROUNDS", "3"))
    pages, by_path, feeds = load_site()
    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    print(f"machine: {os.cpu_count()} cores; pages served: {len(by_path)} from {len(feeds)} feeds; {rounds} rounds (crawl, then bare)")
    ratios = []
    for n in range(1, rounds + 1):
        run = crawl_once(by_path, workdir)
        crawl_rate = run["stored"] / run["elapsed"]
        bare_elapsed, with_result = bare_once(by_path)
        bare_rate = len(by_path) / bare_elapsed
        ratios.append(crawl_rate / bare_rate)
        print(f"round {n}: crawl stored {run['stored']} (not_article {run['not_article']}, errors {run['errors']}) in {run['elapsed']:.1f} s "
              f"= {crawl_rate:.1f} stored/s (main process CPU {run['cpu_main']} s); "
              f"bare bare_extraction x2 processes {len(by_path)} pages ({with_result} with a result) in {bare_elapsed:.1f} s "
              f"= {bare_rate:.1f} pages/s; ratio {crawl_rate / bare_rate:.2f}")
    ratios.sort()
    print(f"median ratio crawl/bare: {ratios[len(ratios) // 2]:.2f} (target >= 0.80)")
    print(f"work dir: {workdir}")


if __name__ == "__main__":
    main()
