"""Story grouping quality on allsides_dev, through the batch code of ``python -m pipelines.cluster``.

Builds the batch input from ``../shared/data/allsides_dev/dev.jsonl.gz`` (``id, title, text``,
``published`` where the row has a date, ``url`` where it has one; never copied into the
repository), groups it with ``pipelines.cluster.group_rows`` (the code behind the CLI) and
prints pairwise P/R/F1, BCubed P/R/F1 and ARI of ``story_id`` against the editors'
``story_id``.

Two references are scored. ``raw``: the ``story_id`` field as given. ``merged``: the 1,065
rows whose story also appears in the allsides2021 subset under another id
(``also_in_allsides2021``) take that id, so the same story is not split in two; texts of such
rows are identical, so any grouping joins them and the raw reference counts that as an error.

    python bench/story_quality.py                  # input order and 3 shuffled orders
    python bench/story_quality.py --sweep          # thresholds around the default
    python bench/story_quality.py --set NEWS_STORY_THRESHOLD=0.3
    python bench/story_quality.py --baseline       # plus offline TF-IDF + average-link
"""

from __future__ import annotations

import gzip
import json
import random
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from metrics import report  # noqa: E402

from pipelines.cluster import _parse_settings, group_rows  # noqa: E402
from pipelines.group import DEFAULTS, Grouper  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "allsides_dev" / "dev.jsonl.gz"


def load() -> tuple[list[dict], list[str], list[str]]:
    """Batch input rows, raw gold labels and merged gold labels."""
    source = [json.loads(line) for line in gzip.open(DATA, "rt", encoding="utf-8")]
    rows, raw, merged = [], [], []
    for r in source:
        row = {"id": r["id"], "title": r.get("title") or "", "text": r.get("text") or ""}
        if r.get("date"):
            row["published"] = r["date"]
        if r.get("url"):
            row["url"] = r["url"]
        rows.append(row)
        raw.append(r["story_id"])
        merged.append(r.get("also_in_allsides2021") or r["story_id"])
    return rows, raw, merged


def score(rows, raw, merged, settings, order, idf="online") -> tuple[dict, dict, float]:
    grouper = Grouper.from_settings(settings)
    ordered = [rows[i] for i in order]
    t = time.perf_counter()
    out = group_rows(ordered, grouper, corpus_idf=idf == "corpus")
    elapsed = time.perf_counter() - t
    story = {o["id"]: o["story_id"] for o in out}
    pred = [story[r["id"]] for r in rows]
    return report(pred, raw), report(pred, merged), elapsed


def offline_baseline(rows, raw, merged) -> None:
    """Global (offline) TF-IDF + average-link clustering over the same terms, for comparison (scipy)."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    from pipelines.group import story_terms

    docs = [story_terms(r["title"], r["text"], DEFAULTS["NEWS_STORY_LEAD_WORDS"]) for r in rows]
    vocab: dict[int, int] = {}
    n = len(docs)
    cols = [np.array([vocab.setdefault(int(t), len(vocab)) for t in ids], dtype=np.int64) for ids, _ in docs]
    df = np.bincount(np.concatenate(cols), minlength=len(vocab))
    idf = np.log((n + 1) / (df + 1.0)) + 1.0
    X = np.zeros((n, len(vocab)), dtype=np.float32)
    for i, ((_, tf), c) in enumerate(zip(docs, cols)):
        w = (1 + np.log(np.maximum(tf, 1e-3))) * idf[c]
        X[i, c] = w / max(float(np.sqrt((w * w).sum())), 1e-9)
    S = X @ X.T
    del X
    np.fill_diagonal(S, 1.0)
    Z = linkage(squareform(np.clip(1.0 - S, 0.0, 2.0), checks=False), "average")
    del S
    click.echo("--- offline baseline: TF-IDF (same terms) + global average-link, by cut distance")
    for cut in (0.6, 0.65, 0.7, 0.75, 0.8):
        labels = list(fcluster(Z, cut, "distance"))
        click.echo(line(f"  cut {cut:.2f} (raw)", report(labels, raw)))
        click.echo(line(f"  cut {cut:.2f} (merged)", report(labels, merged)))


def line(name: str, m: dict) -> str:
    return (
        f"{name:<26s} pairs P {m['pair_precision']:.3f} R {m['pair_recall']:.3f} F1 {m['pair_f1']:.3f} | "
        f"BCubed P {m['bcubed_precision']:.3f} R {m['bcubed_recall']:.3f} F1 {m['bcubed_f1']:.4f} | "
        f"ARI {m['ari']:.3f} | groups {m['pred_groups']} (gold {m['gold_groups']})"
    )


@click.command()
@click.option("--set", "settings", multiple=True, help="Override a setting, NAME=VALUE (see pipelines.group.DEFAULTS).")
@click.option("--shuffles", default=3, show_default=True, help="Shuffled arrival orders scored besides the input order.")
@click.option("--sweep", is_flag=True, help="Also sweep NEWS_STORY_THRESHOLD (input order).")
@click.option("--idf", type=click.Choice(["corpus", "online"]), default="online", show_default=True)
@click.option("--baseline", is_flag=True, help="Also score offline TF-IDF + average-link (needs ~2 GB and a minute).")
def main(settings: tuple[str, ...], shuffles: int, sweep: bool, idf: str, baseline: bool) -> None:
    """Pairwise P/R/F1, BCubed and ARI of story_id on allsides_dev.

    Example: python bench/story_quality.py --shuffles 3
    """
    if not DATA.exists():
        raise click.ClickException(f"{DATA} not found: this bench reads the shared evaluation data")
    rows, raw, merged = load()
    overrides = _parse_settings(settings)
    click.echo(
        f"allsides_dev: {len(rows)} docs, {len(set(raw))} stories as labelled ({len(set(merged))} after merging "
        f"the {sum(a != b for a, b in zip(raw, merged))} rows labelled twice); {sum('published' in r for r in rows)} dated"
    )
    click.echo(f"settings: {dict(DEFAULTS, **overrides)}; IDF: {idf}")
    singletons = [r["id"] for r in rows]
    click.echo(line("all singletons (raw)", report(singletons, raw)))
    orders = [("input order", list(range(len(rows))))]
    rng = random.Random(1)
    for k in range(shuffles):
        o = list(range(len(rows)))
        rng.shuffle(o)
        orders.append((f"shuffled #{k + 1}", o))
    for name, order in orders:
        m_raw, m_merged, elapsed = score(rows, raw, merged, overrides, order, idf)
        click.echo(f"--- {name} ({elapsed:.1f} s, {elapsed * 1000 / len(rows):.2f} ms/doc incl. features)")
        click.echo(line("  vs story_id (raw)", m_raw))
        click.echo(line("  vs merged story_id", m_merged))
    if baseline:
        offline_baseline(rows, raw, merged)
    if sweep:
        click.echo("--- NEWS_STORY_THRESHOLD sweep (input order): BCubed F1 raw / merged")
        base = float(overrides.get("NEWS_STORY_THRESHOLD", DEFAULTS["NEWS_STORY_THRESHOLD"]))
        for th in [round(base + d, 3) for d in (-0.1, -0.05, -0.025, 0, 0.025, 0.05, 0.1)]:
            m_raw, m_merged, _ = score(rows, raw, merged, dict(overrides, NEWS_STORY_THRESHOLD=th), orders[0][1], idf)
            click.echo(f"  {th:.3f}: {m_raw['bcubed_f1']:.4f} / {m_merged['bcubed_f1']:.4f}  (P {m_merged['bcubed_precision']:.3f} R {m_merged['bcubed_recall']:.3f})")


if __name__ == "__main__":
    main()
