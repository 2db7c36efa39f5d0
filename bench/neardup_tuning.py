"""Choose the near-duplicate parameters (shingle size, num_perm, threshold) on neardup_dev.

Reads the pages of ``../shared/data/neardup_dev`` (never copied into the repository),
extracts their text with trafilatura (cached in bench/out/), runs the real
``pipelines.group.Grouper`` over them in several random arrival orders (a crawl's order is
arbitrary; template detection depends on it) with each publisher as its own host, and prints
pairwise precision / recall / F1 and ARI of ``cluster_id`` against ``dup_group``.

    python bench/neardup_tuning.py                 # the grid, then the defaults in detail
    python bench/neardup_tuning.py --defaults-only
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from metrics import adjusted_rand_index, pairwise  # noqa: E402

from pipelines.group import DEFAULTS, Grouper, features  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "neardup_dev"


def _extract_one(args):
    path, url = args
    import trafilatura

    html = (DATA / path.lstrip("/")).read_text(encoding="utf-8")
    html = html.replace("{{BASE}}", "http://127.0.0.1:8000")
    meta = trafilatura.extract_metadata(html)
    text = trafilatura.extract(html, url=url, include_comments=False, include_tables=True, deduplicate=False) or ""
    return {"title": (meta.title if meta else None) or "", "text": text}


def load_pages(cache: Path) -> list[dict]:
    """Label rows with their extracted title and text (trafilatura, cached per trafilatura version)."""
    import trafilatura

    labels = [json.loads(line) for line in (DATA / "labels.jsonl").open(encoding="utf-8")]
    key = f"trafilatura-{trafilatura.__version__}"
    if cache.exists():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key and len(cached["pages"]) == len(labels):
            return [dict(row, **page) for row, page in zip(labels, cached["pages"])]
    click.echo(f"extracting {len(labels)} pages with {key} ...", err=True)
    pages = [_extract_one((row["path"], "http://127.0.0.1:8000" + row["path"])) for row in labels]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "pages": pages}), encoding="utf-8")
    return [dict(row, **page) for row, page in zip(labels, pages)]


def run(pages, feats, order, **params) -> dict:
    grouper = Grouper(**params)
    pred = {}
    for i in order:
        p = pages[i]
        pred[i] = grouper.assign(p["path"], p["title"], None, p["publisher"], feats[i]).cluster_id
    labels = [pred[i] for i in range(len(pages))]
    gold = [p["dup_group"] for p in pages]
    pw = pairwise(labels, gold)
    return {**pw, "ari": adjusted_rand_index(labels, gold)}


def evaluate(pages, feats, orders, **params) -> dict:
    results = [run(pages, feats, order, **params) for order in orders]
    out = {}
    for key in ("precision", "recall", "f1", "ari"):
        values = [r[key] for r in results]
        out[key] = sum(values) / len(values)
        out[key + "_min"] = min(values)
    return out


@click.command()
@click.option("--orders", default=5, show_default=True, help="Random arrival orders per setting.")
@click.option("--defaults-only", is_flag=True, help="Only evaluate the defaults in DEFAULTS.")
@click.option("--cache", type=click.Path(path_type=Path), default=ROOT / "bench" / "out" / "neardup_text.json", show_default=True)
def main(orders: int, defaults_only: bool, cache: Path) -> None:
    """Pairwise P/R/F1 and ARI of cluster_id on neardup_dev for a grid of near-duplicate settings.

    Example: python bench/neardup_tuning.py --orders 5
    """
    if not DATA.exists():
        raise click.ClickException(f"{DATA} not found: this bench reads the shared evaluation data")
    pages = load_pages(cache)
    rng = random.Random(0)
    order_list = []
    for _ in range(orders):
        o = list(range(len(pages)))
        rng.shuffle(o)
        order_list.append(o)
    words = [len(p["text"].split()) for p in pages]
    click.echo(f"neardup_dev: {len(pages)} pages, {len({p['dup_group'] for p in pages})} groups, "
               f"{sum(words) / len(words):.0f} words/page extracted; {orders} random arrival orders each")

    d = DEFAULTS
    if not defaults_only:
        grid = {
            "shingle": [3, 4, 5, 7],
            "num_perm": [64, 128, 256],
            "boilerplate_pages": [2, 3, 1000],
            "dedup_threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        }
        click.echo("\nshingle num_perm bp_pages threshold | precision (min)  recall (min)   F1     ARI   | ms/page")
        cache_feats = {}
        for shingle, num_perm, bp, th in itertools.product(*grid.values()):
            if (shingle, num_perm) not in cache_feats:
                t = time.perf_counter()
                cache_feats[(shingle, num_perm)] = (
                    [features(p["title"], p["text"], shingle=shingle, num_perm=num_perm) for p in pages],
                    (time.perf_counter() - t) * 1000 / len(pages),
                )
            feats, ms = cache_feats[(shingle, num_perm)]
            r = evaluate(pages, feats, order_list, shingle=shingle, num_perm=num_perm, boilerplate_pages=bp, dedup_threshold=th)
            bp_label = "off" if bp >= 1000 else str(bp)
            click.echo(
                f"{shingle:7d} {num_perm:8d} {bp_label:>8s} {th:9.2f} | {r['precision']:.4f} ({r['precision_min']:.4f}) "
                f"{r['recall']:.4f} ({r['recall_min']:.4f}) {r['f1']:.4f} {r['ari']:.4f} | {ms:.2f}"
            )

    params = dict(
        shingle=d["NEWS_DEDUP_SHINGLE"],
        num_perm=d["NEWS_DEDUP_NUM_PERM"],
        boilerplate_pages=d["NEWS_DEDUP_BOILERPLATE_PAGES"],
        dedup_threshold=d["NEWS_DEDUP_THRESHOLD"],
    )
    feats = [features(p["title"], p["text"], shingle=params["shingle"], num_perm=params["num_perm"]) for p in pages]
    r = evaluate(pages, feats, order_list, **params)
    click.echo(f"\ndefaults {params}:")
    click.echo(f"  pairwise precision {r['precision']:.4f} (worst order {r['precision_min']:.4f})")
    click.echo(f"  pairwise recall    {r['recall']:.4f} (worst order {r['recall_min']:.4f})")
    click.echo(f"  pairwise F1        {r['f1']:.4f}   ARI {r['ari']:.4f}")
    # which variants are missed, in the first order
    grouper = Grouper(**params)
    pred = [None] * len(pages)
    for i in order_list[0]:
        pred[i] = grouper.assign(pages[i]["path"], pages[i]["title"], None, pages[i]["publisher"], feats[i]).cluster_id
    missed, wrong = {}, 0
    for i, j in itertools.combinations(range(len(pages)), 2):
        same_gold = pages[i]["dup_group"] == pages[j]["dup_group"]
        same_pred = pred[i] == pred[j]
        if same_gold and not same_pred:
            key = "+".join(sorted((pages[i]["variant"], pages[j]["variant"])))
            missed[key] = missed.get(key, 0) + 1
        elif same_pred and not same_gold:
            wrong += 1
    click.echo(f"  first order: missed pairs by variant {missed or 'none'}; false pairs {wrong}")


if __name__ == "__main__":
    main()
