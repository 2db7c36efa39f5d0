"""The grouping code of the crawler (pipelines.group), in batch.

    python -m pipelines.cluster INPUT.jsonl[.gz] > OUT.jsonl      # same as `batch INPUT`
    python -m pipelines.cluster regroup --db news.db              # recompute the whole store

``batch`` reads rows ``{id, title, text, published?, url?}`` and writes ``{id, cluster_id,
story_id}`` in input order. ``regroup`` recomputes ``cluster_id``/``story_id`` of every stored
article from its text (after a NEWS_DEDUP_* / NEWS_STORY_* change) and rewrites the grouping
tables, in one transaction. Progress goes to stderr.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import click

from pipelines.group import DEFAULTS, GROUP_MIGRATIONS, Grouper, features, story_terms

logger = logging.getLogger(__name__)

__all__ = ["cli", "group_rows", "regroup_db"]

_INT_SETTINGS = {name for name, value in DEFAULTS.items() if isinstance(value, int)}


# --------------------------------------------------------------------------- shared helpers


def _parse_settings(pairs: Iterable[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().upper()
        if not sep or name not in DEFAULTS:
            raise click.BadParameter(
                f"{pair!r}: use NAME=VALUE with NAME one of {', '.join(sorted(DEFAULTS))}", param_hint="--set"
            )
        settings[name] = value.strip()
    return settings


def _build_grouper(settings: dict[str, Any], now=None) -> Grouper:
    try:
        return Grouper.from_settings(settings, now=now) if now else Grouper.from_settings(settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


class _Progress:
    """Rate-limited progress lines on stderr."""

    def __init__(self, label: str, total: int | None, every: float = 2.0):
        self.label, self.total, self.every = label, total, every
        self.start = self.last = time.monotonic()
        self.done = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def finish(self) -> None:
        self._print(time.monotonic(), final=True)

    def _print(self, now: float, final: bool = False) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        end = " done" if final else ""
        click.echo(f"{self.label}: {self.done}{of} ({rate:.0f}/s){end}", err=True)


def _features_task(args: tuple) -> Any:
    title, text, kwargs = args
    return features(title, text, **kwargs)


class _FeaturePool:
    """features() of (title, text) pairs, in order, in ``jobs`` worker processes when jobs > 1."""

    def __init__(self, kwargs: dict, jobs: int):
        self.kwargs = kwargs
        self.pool = ProcessPoolExecutor(jobs) if jobs > 1 else None

    def __enter__(self) -> "_FeaturePool":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def map(self, pairs: list[tuple[str, str]]) -> list:
        if self.pool is None:
            return [features(title, text, **self.kwargs) for title, text in pairs]
        return list(self.pool.map(_features_task, ((t, x, self.kwargs) for t, x in pairs), chunksize=32))


# --------------------------------------------------------------------------- batch


def _open_input(path: str) -> io.TextIOBase:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    p = Path(path)
    if not p.exists():
        raise click.BadParameter(f"{path}: no such file", param_hint="INPUT")
    with p.open("rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8")
    return p.open(encoding="utf-8")


def read_rows(path: str) -> list[dict]:
    """Rows of a JSONL(.gz) file, checked: each needs an ``id`` and a ``title`` or ``text``."""
    rows = []
    with _open_input(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"{path}:{lineno}: not JSON ({exc.msg}): each line must be one JSON object")
            if not isinstance(row, dict) or row.get("id") in (None, ""):
                raise click.ClickException(f"{path}:{lineno}: each row needs an \"id\" (and \"title\"/\"text\")")
            rows.append(row)
    seen: set[str] = set()
    for row in rows:
        key = str(row["id"])
        if key in seen:
            raise click.ClickException(f"{path}: id {key!r} appears twice: ids must be unique")
        seen.add(key)
    return rows


def group_rows(
    rows: list[dict],
    grouper: Grouper,
    *,
    corpus_idf: bool = False,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """``{id, cluster_id, story_id}`` for each row, grouping them in input order.

    With ``corpus_idf`` the term document frequencies are learned from all rows first (the
    batch knows its whole corpus); otherwise they grow as rows arrive, as in a crawl. A row
    without ``url`` gets its own host, so template-line detection only works across rows
    with URLs of one site.
    """
    pairs = [(str(r.get("title") or ""), str(r.get("text") or "")) for r in rows]
    with _FeaturePool(grouper.feature_kwargs, jobs) as pool:
        feats = pool.map(pairs)
    if corpus_idf:
        grouper.learn_idf(f.terms for f in feats)
    grouper.keep_all_stories = True  # input rows need not be in time order
    out = []
    for row, feat in zip(rows, feats):
        key = str(row["id"])
        url = row.get("url") or None
        host = (urlsplit(url).hostname or "") if url else f"row:{key}"
        a = grouper.assign(key, pairs[len(out)][0], row.get("published") or None, host, feat)
        out.append({"id": row["id"], "cluster_id": a.cluster_id, "story_id": a.story_id})
        if progress:
            progress(1)
    return out


# --------------------------------------------------------------------------- regroup


def regroup_db(db, grouper: Grouper, *, corpus_idf: bool = False, jobs: int = 1, batch: int = 500, echo: Callable[[str], None] | None = None) -> dict:
    """Recompute the groups of every article in ``db`` (in arrival order) and rewrite the grouping tables.

    One transaction: readers see the old groups until it commits. Returns counts.
    """
    GROUP_MIGRATIONS.apply(db)
    total = db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
    running = 0
    if "crawl_runs" in db.table_names():
        running = db.execute("SELECT COUNT(*) FROM crawl_runs WHERE status = 'running'").fetchone()[0]
    if running and echo:
        echo(f"warning: {running} crawl run(s) marked running: a crawl writing meanwhile waits for this transaction")
    order = "ORDER BY fetched_at, rowid"
    progress = _Progress("regroup", total) if echo else None
    if corpus_idf:
        # document frequencies over the whole store first: a pass over titles and leads only
        terms = []
        for title, text in db.execute(f"SELECT title, substr(text, 1, 4000) FROM articles {order}"):
            terms.append(story_terms(title or "", text or "", grouper.lead_words)[0])
        grouper.learn_idf(terms)
        del terms
    meta = db.execute(f"SELECT url, title, published, hostname FROM articles {order}").fetchall()
    clusters = stories = 0
    with db.atomic(), _FeaturePool(grouper.feature_kwargs, jobs) as pool:
        db.execute("DELETE FROM group_articles")
        db.execute("DELETE FROM clusters")
        db.execute("DELETE FROM stories")
        for start in range(0, len(meta), batch):
            chunk = meta[start : start + batch]
            marks = ", ".join("?" for _ in chunk)
            texts = dict(db.execute(f"SELECT url, text FROM articles WHERE url IN ({marks})", [m[0] for m in chunk]).fetchall())
            feats = pool.map([(title or "", texts.get(url) or "") for url, title, _, _ in chunk])
            done = []
            for (url, title, published, hostname), feat in zip(chunk, feats):
                a = grouper.assign(url, title, published, hostname or urlsplit(url).hostname or "", feat)
                clusters += a.new_cluster
                stories += a.new_story
                done.append((url, a))
            db.conn.executemany(
                "UPDATE articles SET cluster_id = ?, story_id = ? WHERE url = ?",
                [(a.cluster_id, a.story_id, url) for url, a in done],
            )
            grouper.persist(db, done)
            if progress:
                progress.step(len(chunk))
    if progress:
        progress.finish()
    return {"articles": total, "clusters": clusters, "stories": stories}


# --------------------------------------------------------------------------- CLI


class _BatchByDefault(click.Group):
    """``python -m pipelines.cluster INPUT`` runs ``batch INPUT``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["batch", *args]
        return super().parse_args(ctx, args)


_SET_HELP = "Override a setting, NAME=VALUE, e.g. --set NEWS_STORY_THRESHOLD=0.35 (repeatable). Names: " + ", ".join(
    f"{k} ({v})" for k, v in DEFAULTS.items()
)


@click.group(cls=_BatchByDefault)
def cli() -> None:
    """Near-duplicate groups and stories, in batch (the crawler's grouping code).

    \b
    Examples:
      python -m pipelines.cluster articles.jsonl.gz > groups.jsonl
      python -m pipelines.cluster batch articles.jsonl --set NEWS_STORY_THRESHOLD=0.35 -o groups.jsonl
      python -m pipelines.cluster regroup --db news.db
    """


@cli.command()
@click.argument("input_path", metavar="INPUT", type=str)
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-", help="Output JSONL (default: stdout).")
@click.option("--set", "settings", multiple=True, help=_SET_HELP)
@click.option("--idf", type=click.Choice(["corpus", "online"]), default="online", show_default=True,
              help="Term document frequencies from the whole input first, or growing row by row as in a crawl.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Processes computing features.")
def batch(input_path: str, output, settings: tuple[str, ...], idf: str, jobs: int) -> None:
    """Group the rows of INPUT (.jsonl or .jsonl.gz, '-' for stdin), in input order.

    \b
    Input rows:  {"id": ..., "title": ..., "text": ..., "published": "2026-11-23"?, "url": ...?}
    Output rows: {"id": ..., "cluster_id": "c...", "story_id": "s..."}

    \b
    Example:
      python -m pipelines.cluster articles.jsonl.gz > groups.jsonl
    """
    grouper = _build_grouper(_parse_settings(settings))
    rows = read_rows(input_path)
    progress = _Progress("grouped", len(rows))
    for result in group_rows(rows, grouper, corpus_idf=idf == "corpus", jobs=jobs, progress=progress.step):
        output.write(json.dumps(result, ensure_ascii=False) + "\n")
    progress.finish()


@cli.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The crawler's SQLite store.")
@click.option("--set", "settings", multiple=True, help=_SET_HELP)
@click.option("--idf", type=click.Choice(["corpus", "online"]), default="online", show_default=True,
              help="Term document frequencies from the whole store first, or growing article by article.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Processes computing features.")
def regroup(db_path: Path, settings: tuple[str, ...], idf: str, jobs: int) -> None:
    """Recompute cluster_id and story_id of every stored article from its text.

    Run it after changing NEWS_DEDUP_* or NEWS_STORY_* settings (signatures made with other
    settings are ignored by the crawler). Articles are taken in the order they were fetched;
    the articles table and the group_articles, clusters and stories tables are rewritten in
    one transaction.

    \b
    Example:
      python -m pipelines.cluster regroup --db news.db --set NEWS_DEDUP_THRESHOLD=0.6
    """
    from pipelines.db import open_db

    if not db_path.exists():
        raise click.BadParameter(f"{db_path}: no such file", param_hint="--db")
    grouper = _build_grouper(_parse_settings(settings))
    db = open_db(db_path)
    try:
        counts = regroup_db(db, grouper, corpus_idf=idf == "corpus", jobs=jobs, echo=lambda m: click.echo(m, err=True))
    finally:
        db.close()
    click.echo(f"regrouped {counts['articles']} article(s): {counts['clusters']} cluster(s), {counts['stories']} stor(ies)", err=True)


def main() -> None:  # pragma: no cover - entry point
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
