"""Extraction quality, end to end: crawl the Scrapinghub AEB pages and score stored text.

    python bench/extraction_quality.py

Serves the 181 pages of ../shared/data/scrapinghub_aeb on 127.0.0.1 with a sitemap,
crawls them with the real crawler (one topic, no query), and scores each stored article's
`text` against the ground truth with the Scrapinghub metric (bench/common.py). A page the
crawler did not store scores as an empty prediction (zero recall for that page).
Published: trafilatura 2.0 F1 0.958 on this set.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from common import FAST_LOCAL, data_path, read_jsonl, run_crawl, scrapinghub_scores

from demo.server import FixtureServer, Response


def main() -> None:
    rows = list(read_jsonl(data_path("scrapinghub_aeb", "pages.jsonl.gz")))
    truth = {row["id"]: row["articleBody"] for row in read_jsonl(data_path("scrapinghub_aeb", "ground_truth.jsonl"))}
    workdir = Path(tempfile.mkdtemp(prefix="bench-extraction-"))
    served = {}
    path_to_id = {}
    for row in rows:
        path = f"/{row['domain']}/{row['id']}.html"
        body = row["html"].encode(row.get("html_encoding") or "utf-8", "replace")
        served[path] = Response(200, body, {"Content-Type": f"text/html; charset={row.get('html_encoding') or 'utf-8'}"})
        path_to_id[path] = row["id"]
    with FixtureServer(pages=served) as server:
        sitemap = "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>" + "".join(
            f"<url><loc>{server.base}{path}</loc></url>" for path in served
        ) + "</urlset>"
        server.pages["/sitemap.xml"] = Response(200, sitemap.encode(), {"Content-Type": "application/xml"})
        topics = workdir / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "aeb"\nmax_age_days = 0\nsitemaps = ["{server.base}/sitemap.xml"]\n')
        db = workdir / "news.db"
        run_crawl(topics, db, *FAST_LOCAL, log=workdir / "crawl.log")

    import sqlite_utils

    store = sqlite_utils.Database(db)
    predicted = {}
    for article in store.query("select fetched_url, url, text from articles"):
        from urllib.parse import urlsplit

        page_id = path_to_id.get(urlsplit(article["fetched_url"]).path)
        if page_id:
            predicted[page_id] = article["text"] or ""
    pairs = [(truth[row["id"]], predicted.get(row["id"], "")) for row in rows]
    scores = scrapinghub_scores(pairs)
    run = next(store["crawl_runs"].rows_where(order_by="id desc", limit=1))
    print(f"machine: {os.cpu_count()} cores; pages: {len(rows)}; stored: {len(predicted)}; "
          f"not_article: {run['not_article']}; errors: {run['errors']}")
    print(f"scrapinghub metric: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  F1 {scores['f1']:.3f}  (target >= 0.958)")
    print(f"work dir: {workdir}")


if __name__ == "__main__":
    main()
