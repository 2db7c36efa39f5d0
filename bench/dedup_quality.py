"""Near-duplicate grouping, end to end: crawl neardup_dev with the real crawler, score cluster_id.

    python bench/dedup_quality.py

Each of the 6 publishers of ../shared/data/neardup_dev is served on its own 127.0.0.1
port (so each is its own site, as on the web), crawled from its RSS feed, and the stored
articles' cluster_id is scored against labels.jsonl's dup_group: pairwise precision,
recall, F1 and adjusted Rand index. Targets: precision >= 0.99, recall >= 0.95.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from common import FAST_LOCAL, data_path, run_crawl
from metrics import adjusted_rand_index, pairwise

from demo.server import FixtureServer


def main() -> None:
    root = data_path("neardup_dev")
    labels = {row["path"]: row for row in map(json.loads, (root / "labels.jsonl").read_text().splitlines())}
    publishers = sorted(p.name for p in root.glob("pub*") if p.is_dir())
    workdir = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    with ExitStack() as stack:
        servers = {pub: stack.enter_context(FixtureServer(root=root)) for pub in publishers}
        feeds = [f"{servers[pub].base}/{pub}/rss.xml" for pub in publishers]
        topics = workdir / "topics.toml"
        topics.write_text('[[topic]]\nname = "neardup"\nmax_age_days = 0\nfeeds = [' + ", ".join(f'"{f}"' for f in feeds) + "]\n")
        db = workdir / "news.db"
        run_crawl(topics, db, *FAST_LOCAL, "NEWS_ALLOW_PRIVATE_NETWORKS=True", "NEWS_MIN_TEXT_CHARS=200", log=workdir / "crawl.log")

    import sqlite_utils

    store = sqlite_utils.Database(db)
    pred, gold, missing = [], [], []
    found = {}
    for row in store.query("select fetched_url, cluster_id from articles"):
        path = urlsplit(row["fetched_url"]).path
        if path in labels:
            found[path] = row["cluster_id"]
    for path, label in labels.items():
        if path in found:
            pred.append(found[path])
            gold.append(label["dup_group"])
        else:
            missing.append(path)
    scores = pairwise(pred, gold)
    ari = adjusted_rand_index(pred, gold)
    run = next(store["crawl_runs"].rows_where(order_by="id desc", limit=1))
    print(f"machine: {os.cpu_count()} cores; labelled pages: {len(labels)}; stored and scored: {len(pred)}; "
          f"not stored: {len(missing)} (not_article {run['not_article']}, errors {run['errors']})")
    print(f"cluster_id vs dup_group: pairwise precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
          f"F1 {scores['f1']:.3f}  ARI {ari:.3f}  (targets: precision >= 0.99, recall >= 0.95)")
    by_variant: dict[str, list[int]] = {}
    for path, label in labels.items():
        if label["variant"] == "original" or path not in found:
            continue
        original = next((p for p, l in labels.items() if l["dup_group"] == label["dup_group"] and l["variant"] == "original"), None)
        ok = original in found and found[original] == found[path]
        by_variant.setdefault(label["variant"], []).append(int(ok))
    print("copies joined to their original, by variant: " + ", ".join(f"{v} {sum(x)}/{len(x)}" for v, x in sorted(by_variant.items())))
    print(f"work dir: {workdir}")


if __name__ == "__main__":
    main()
