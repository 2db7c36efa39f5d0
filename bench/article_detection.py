"""Article detection, end to end: does the crawler keep articles and drop other pages?

    python bench/article_detection.py [-s NAME=VALUE ...] [--json out.json] [-v]

Serves the 793 article pages (dev_articles) and the 150 non-article pages
(dev_nonarticle_sample: 25 each of forum, product, listing, service, documentation and
collection pages) of ../shared/data/wcxb_dev on 127.0.0.1 under /<original host><original
path>, lists them all in one sitemap, crawls them with the real crawler (one topic, no
query) and counts which pages end up stored.

Targets (issue 4, acceptance 3): >= 0.95 of the article pages kept, >= 0.80 of the
non-article pages rejected. A page is "kept" when the crawl stored it; "rejected" when it
was fetched and dropped as not an article (too little text, or pipelines/detect.py's
verdict); fetch errors are counted apart. Prints both shares, the share per page type,
the reasons given, and with -v every misjudged page.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

from common import data_path, read_jsonl
from extraction_quality import _reason_kind, crawl_sitemap, html_response, local_path, not_article_reasons, page_key, stored_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-s", "--setting", action="append", default=[], help="extra Scrapy setting NAME=VALUE")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every misjudged page")
    args = parser.parse_args()

    rows = list(read_jsonl(data_path("wcxb_dev", "dev_articles.jsonl.gz")))
    rows += list(read_jsonl(data_path("wcxb_dev", "dev_nonarticle_sample.jsonl.gz")))
    served, key_to_row = {}, {}
    for row in rows:
        path = local_path(row.get("url"), f"/_page/{row['id']}.html")
        if path in served:
            path = f"/_page/{row['id']}.html"
        served[path] = html_response(row["html"], row.get("html_encoding"))
        key_to_row[page_key(f"http://127.0.0.1{path}")] = row
    db, workdir = crawl_sitemap("detection", served, args.setting)
    articles, run, store = stored_rows(db, "fetched_url")
    stored = {key_to_row[k]["id"] for k in (page_key(a["fetched_url"]) for a in articles) if k in key_to_row}
    reasons = not_article_reasons(store)
    reason_by_id = {key_to_row[k]["id"]: r for k, r in reasons.items() if k in key_to_row}

    total, kept = Counter(), Counter()
    why = defaultdict(Counter)
    wrong = []
    for row in rows:
        kind = row.get("page_type") or "article"
        total[kind] += 1
        is_kept = row["id"] in stored
        kept[kind] += is_kept
        if not is_kept:
            why[kind][_reason_kind(reason_by_id.get(row["id"], "not stored (reason not recorded)"))] += 1
        if is_kept != (kind == "article"):
            wrong.append((kind, row["id"], row.get("url"), reason_by_id.get(row["id"]) if not is_kept else "kept"))

    articles_total = total["article"]
    non_total = sum(c for k, c in total.items() if k != "article")
    non_rejected = sum(total[k] - kept[k] for k in total if k != "article")
    keep_share = kept["article"] / articles_total
    reject_share = non_rejected / non_total
    print(f"machine: {os.cpu_count()} cores; pages served: {len(rows)}; stored {len(stored)}; "
          f"not_article {run['not_article']}; errors {run['errors']}")
    print(f"articles kept: {keep_share:.3f} ({kept['article']}/{articles_total})  (target >= 0.95)")
    print(f"non-articles rejected: {reject_share:.3f} ({non_rejected}/{non_total})  (target >= 0.80)")
    for kind in sorted(k for k in total if k != "article"):
        print(f"  {kind:14s} rejected {total[kind] - kept[kind]:3d}/{total[kind]}")
    for kind in sorted(why):
        print(f"  reasons ({kind}): " + ", ".join(f"{r} {c}" for r, c in why[kind].most_common()))
    if args.verbose:
        for kind, page_id, url, reason in sorted(wrong, key=lambda w: (w[0], w[1])):
            print(f"  misjudged {kind} {page_id} {url}: {reason}")
    print(f"work dir: {workdir}")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": args.setting, "articles_kept": keep_share, "nonarticles_rejected": reject_share,
            "kept": dict(kept), "total": dict(total), "reasons": {k: dict(v) for k, v in why.items()},
            "misjudged": wrong, "errors": run["errors"],
        }, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
