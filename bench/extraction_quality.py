"""Extraction quality, end to end: crawl real pages with the real crawler and score what it stores.

    python bench/extraction_quality.py                    # all three sets
    python bench/extraction_quality.py --only aeb,fundus  # some of them
    python bench/extraction_quality.py -s NEWS_MIN_TEXT_CHARS=300 --json out.json

Three sets from ../shared/data, each served on 127.0.0.1 and crawled by `scrapy crawl news`
(one topic, no query, no age limit), one crawl at a time:

- scrapinghub_aeb: 181 news pages (sitemap). Scrapinghub metric (bench/common.py) on each
  stored article's `text` against the article body written out by people. A page the
  crawler did not store scores as an empty prediction (zero recall for that page).
  Published: trafilatura 2.0 F1 0.958 on this set; target >= 0.965.
- wcxb_dev dev_articles: 793 article pages of 2025-26 (sitemap), same metric against
  `ground_truth.main_content`. Target >= 0.945 (trafilatura default about 0.937 here).
  Also: the share of pages stored, the metric over stored pages only, and title, author and
  published-day accuracy against the labels (informative, no target).
- fundus_news: the 257 pages of its site manifest (per-site RSS feeds, as bench/crawl_throughput.py).
  Title, author and published-date accuracy against each row's `expected`; date target:
  exact-day accuracy >= 0.95.

Pages are served under /<original host><original path> (query dropped), so the crawler and
the extraction see the original path; pipelines/detect.py reads such a first path segment on
a loopback host as the host name.

Scoring rules:
- title: equal after Unicode NFKC, whitespace collapsing and trimming;
- authors: the stored "; "-separated names, as a set, equal to the expected names
  (normalised the same way, case-insensitive), over pages that name at least one author;
  "overlap" counts pages where at least one expected name was found;
- published: the same calendar day as the expected date. When both carry a time and an
  offset, the stored instant is converted to the expected date's offset first; otherwise
  the written dates (YYYY-MM-DD) are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import unicodedata
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from common import crawl_fundus, FAST_LOCAL, data_path, read_jsonl, run_crawl, scrapinghub_scores

from crawler.urls import canonical_url
from demo.server import FixtureServer, Response

SETS = ("aeb", "wcxb", "fundus")


# --- serving and crawling --------------------------------------------------------------------------
def local_path(url: str | None, fallback: str) -> str:
    """/<host><path> for an original URL, as the crawler will request it (canonicalised)."""
    parts = urlsplit(url or "")
    if not parts.hostname:
        return fallback
    return urlsplit(canonical_url(f"http://127.0.0.1/{parts.hostname}{parts.path or '/'}")).path


def page_key(url: str) -> str:
    """The key a served page is found by, from any URL the crawler recorded for it."""
    return urlsplit(canonical_url(url)).path


def html_response(html: str, encoding: str | None) -> Response:
    encoding = encoding or "utf-8"
    return Response(200, html.encode(encoding, "replace"), {"Content-Type": f"text/html; charset={encoding}"})


def crawl_sitemap(name: str, pages: dict[str, Response], settings: list[str]) -> tuple[Path, Path]:
    """Serve ``pages`` (path -> response) with a sitemap listing them all; crawl; return (db, log)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-extraction-{name}-"))
    with FixtureServer(pages=pages) as server:
        urls = "".join(f"<url><loc>{server.base}{path}</loc></url>" for path in pages)
        sitemap = f"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{urls}</urlset>"
        server.pages["/sitemap.xml"] = Response(200, sitemap.encode(), {"Content-Type": "application/xml"})
        topics = workdir / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "{name}"\nmax_age_days = 0\nsitemaps = ["{server.base}/sitemap.xml"]\n')
        db = workdir / "news.db"
        run_crawl(topics, db, *FAST_LOCAL, *settings, log=workdir / "crawl.log")
    return db, workdir


def stored_rows(db: Path, columns: str = "fetched_url, url, title, text, authors, published, published_source"):
    import sqlite_utils

    store = sqlite_utils.Database(db)
    run = next(store["crawl_runs"].rows_where(order_by="id desc", limit=1))
    return list(store.query(f"select {columns} from articles")), run, store


def not_article_reasons(store) -> dict[str, str]:
    """page key -> the reason the crawler gave for not keeping it."""
    if "url_outcomes" not in store.table_names():
        return {}
    return {page_key(row["url"]): row["reason"] for row in store.query("select url, reason from url_outcomes where topic = ''")}


# --- scoring helpers ---------------------------------------------------------------------------------
def _norm(text: str | None) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text or "")).strip()


def same_day(got: str | None, expected: str | None) -> bool:
    if not got or not expected:
        return False
    try:
        g = datetime.fromisoformat(got.replace("Z", "+00:00"))
        x = datetime.fromisoformat(expected.replace("Z", "+00:00"))
        if g.tzinfo and x.tzinfo and len(got) > 10:
            return g.astimezone(x.tzinfo).date() == x.date()
    except ValueError:
        pass
    return got[:10] == expected[:10]


def _authors(value) -> set[str]:
    if not value:
        return set()
    names = value if isinstance(value, list) else re.split(r";|\band\b|,(?=\s*[A-Z])", str(value))
    return {_norm(n).lower() for n in names if _norm(n)}


# --- the three sets ----------------------------------------------------------------------------------
def bench_aeb(settings: list[str]) -> dict:
    rows = list(read_jsonl(data_path("scrapinghub_aeb", "pages.jsonl.gz")))
    truth = {row["id"]: row["articleBody"] for row in read_jsonl(data_path("scrapinghub_aeb", "ground_truth.jsonl"))}
    served, path_to_id = {}, {}
    for row in rows:
        path = f"/{row['domain']}/{row['id']}.html"
        served[path] = html_response(row["html"], row.get("html_encoding"))
        path_to_id[page_key(f"http://127.0.0.1{path}")] = row["id"]
    db, workdir = crawl_sitemap("aeb", served, settings)
    articles, run, _ = stored_rows(db, "fetched_url, text")
    predicted = {}
    for article in articles:
        page_id = path_to_id.get(page_key(article["fetched_url"]))
        if page_id:
            predicted[page_id] = article["text"] or ""
    pairs = [(truth[row["id"]], predicted.get(row["id"], "")) for row in rows]
    scores = scrapinghub_scores(pairs)
    print(f"machine: {os.cpu_count()} cores; pages: {len(rows)}; stored: {len(predicted)}; "
          f"not_article: {run['not_article']}; errors: {run['errors']}")
    print(f"scrapinghub metric: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  F1 {scores['f1']:.3f}  (target >= 0.958)")
    print(f"work dir: {workdir}")
    return {"pages": len(rows), "stored": len(predicted), "not_article": run["not_article"], "errors": run["errors"], **scores, "workdir": str(workdir)}


def bench_wcxb(settings: list[str]) -> dict:
    rows = list(read_jsonl(data_path("wcxb_dev", "dev_articles.jsonl.gz")))
    served, key_to_id = {}, {}
    for row in rows:
        path = local_path(row.get("url"), f"/_page/{row['id']}.html")
        if path in served:  # two rows with one URL: keep both, the second under its id
            path = f"/_page/{row['id']}.html"
        served[path] = html_response(row["html"], row.get("html_encoding"))
        key_to_id[page_key(f"http://127.0.0.1{path}")] = row["id"]
    db, workdir = crawl_sitemap("wcxb", served, settings)
    articles, run, store = stored_rows(db)
    predicted, got = {}, {}
    for article in articles:
        page_id = key_to_id.get(page_key(article["fetched_url"]))
        if page_id:
            predicted[page_id] = article["text"] or ""
            got[page_id] = article
    truth = {row["id"]: (row["ground_truth"] or {}).get("main_content") or "" for row in rows}
    scores = scrapinghub_scores([(truth[row["id"]], predicted.get(row["id"], "")) for row in rows])
    stored_only = scrapinghub_scores([(truth[i], text) for i, text in predicted.items()])
    reasons = Counter(_reason_kind(r) for r in not_article_reasons(store).values())
    print(f"wcxb_dev articles: pages {len(rows)}; stored {len(predicted)} ({len(predicted) / len(rows):.3f}); "
          f"not_article {run['not_article']} {dict(reasons.most_common())}; errors {run['errors']}")
    print(f"scrapinghub metric: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  F1 {scores['f1']:.3f}  (target >= 0.945)")
    print(f"  over the {len(predicted)} stored pages only: precision {stored_only['precision']:.3f}  "
          f"recall {stored_only['recall']:.3f}  F1 {stored_only['f1']:.3f}")
    expected = {
        row["id"]: {"title": gt.get("title"), "authors": gt.get("author"), "published": gt.get("publish_date")}
        for row in rows
        for gt in [row["ground_truth"] or {}]
    }
    meta = metadata_scores(expected, got)
    print(f"work dir: {workdir}")
    return {
        "pages": len(rows), "stored": len(predicted), "not_article": run["not_article"], "errors": run["errors"],
        **scores, "stored_only": stored_only, "not_article_reasons": dict(reasons), "metadata": meta, "workdir": str(workdir),
    }


def _reason_kind(reason: str) -> str:
    reason = reason.removeprefix("not an article: ")
    return reason.split(":")[0].split(" (")[0].strip()


def bench_fundus(settings: list[str]) -> dict:
    manifest = json.loads(data_path("fundus_news", "site_manifest.json").read_text(encoding="utf-8"))
    rows = {row["id"]: row for row in read_jsonl(data_path("fundus_news", "pages.jsonl.gz"))}
    pages = {page_id: rows[page_id] for page_id in manifest.values()}  # the site serves 257 of the 258 rows
    served, key_to_id = {}, {}
    for local_url, page_id in manifest.items():
        path = urlsplit(local_url.replace("{{BASE}}", "http://x")).path
        row = pages[page_id]
        served[path] = html_response(row["html"], row.get("html_encoding"))
        key_to_id[page_key(f"http://127.0.0.1{path}")] = page_id
    workdir = Path(tempfile.mkdtemp(prefix="bench-extraction-fundus-"))
    db, _ = crawl_fundus(served, workdir, *settings)
    articles, run, _ = stored_rows(db)
    got = {}
    for article in articles:
        page_id = key_to_id.get(page_key(article["fetched_url"]))
        if page_id:
            got[page_id] = article

    expected = {page_id: _fundus_expected(row) for page_id, row in pages.items()}
    print(f"fundus_news: pages {len(pages)}; stored {len(got)}; not_article {run['not_article']}; errors {run['errors']}")
    meta = metadata_scores(expected, got, date_target=0.95, list_misses=True)
    print(f"work dir: {workdir}")
    return {"pages": len(pages), "stored": len(got), "not_article": run["not_article"], "errors": run["errors"], **meta, "workdir": str(workdir)}


def _fundus_expected(row: dict) -> dict:
    expected = row.get("expected") or {}
    return {"title": expected.get("title"), "authors": expected.get("authors"), "published": expected.get("publishing_date")}


def metadata_scores(expected: dict[str, dict], got: dict[str, dict], date_target: float | None = None, list_misses: bool = False) -> dict:
    """Title, author and published-day accuracy of the stored rows ``got`` against ``expected``.

    Both map a page id to a dict; expected: title, authors (list or string), published;
    got: the stored title, authors, published, published_source. A page not stored counts as wrong.
    """
    title_ok = date_ok = author_exact = author_overlap = author_pages = dated = 0
    by_source: Counter = Counter()
    ok_by_source: Counter = Counter()
    misses = []
    for page_id, want in expected.items():
        article = got.get(page_id) or {}
        title_ok += bool(want.get("title")) and _norm(article.get("title")) == _norm(want.get("title"))
        names = _authors(want.get("authors"))
        if names:
            author_pages += 1
            have = _authors(article.get("authors"))
            author_exact += have == names
            author_overlap += bool(have & names)
        if want.get("published") and len(str(want["published"])) >= 10:  # a full day (wcxb has some "2015-11")
            dated += 1
            source = article.get("published_source") or "none"
            by_source[source] += 1
            if same_day(article.get("published"), want["published"]):
                date_ok += 1
                ok_by_source[source] += 1
            else:
                misses.append((page_id, article.get("published"), source, want["published"]))
    titled = sum(1 for w in expected.values() if w.get("title"))
    target = f"  (target >= {date_target})" if date_target else ""
    print(f"title exact: {title_ok / max(1, titled):.3f} ({title_ok}/{titled})")
    print(f"authors exact (as a set): {author_exact / max(1, author_pages):.3f}  at least one found: "
          f"{author_overlap / max(1, author_pages):.3f}  ({author_pages} pages name authors)")
    print(f"published exact day: {date_ok / max(1, dated):.3f} ({date_ok}/{dated}){target}")
    print("  by published_source (right/stored): " + ", ".join(f"{s} {ok_by_source[s]}/{c}" for s, c in by_source.most_common()))
    if list_misses:
        for miss in misses:
            print(f"  miss: {miss[0]}: stored {miss[1]} ({miss[2]}), expected {miss[3]}")
    return {
        "title_exact": title_ok / max(1, titled), "authors_exact": author_exact / max(1, author_pages),
        "authors_overlap": author_overlap / max(1, author_pages), "published_day": date_ok / max(1, dated),
        "published_pages": dated, "published_by_source": {s: [ok_by_source[s], c] for s, c in by_source.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    parser.add_argument("-s", "--setting", action="append", default=[], help="extra Scrapy setting NAME=VALUE for every crawl")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SETS)
    if unknown:
        parser.error(f"unknown set(s) {sorted(unknown)}; choose from {SETS}")
    results = {}
    for name in wanted:
        if len(wanted) > 1:
            print(f"== {name}")
        results[name] = {"aeb": bench_aeb, "wcxb": bench_wcxb, "fundus": bench_fundus}[name](args.setting)
    if args.json:
        args.json.write_text(json.dumps({"settings": args.setting, "machine_cores": os.cpu_count(), **results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
