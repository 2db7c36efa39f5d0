"""Re-run extraction and cleaning over the stored raw HTML (no re-fetching).

    python -m pipelines.reextract --db news.db                 # every stored article
    python -m pipelines.reextract --db news.db --host example.com --dry-run

For when trafilatura, the extraction settings, per-site rules (NEWS_SITE_RULES) or the
site templates improved. Each article's raw HTML (table raw_html) goes through the same
extract() as a crawl, in a process pool, then the site-template removal learned so far
(table site_blocks); changed articles get their new text and metadata (FTS stays in sync).
Afterwards, regroup: `python -m pipelines.cluster regroup --db news.db`.
"""

from __future__ import annotations

import time
import zlib
from urllib.parse import urlsplit
from concurrent.futures import ProcessPoolExecutor

import click

from pipelines.db import open_db
from pipelines.extract import ExtractOptions, NotAnArticle, extract
from pipelines.template import SiteTemplates, text_fields

FIELDS = ("title", "text", "published", "published_source", "authors", "sitename", "language", "description",
          "tags", "image", "word_count", "content_hash")


def _job(args):
    url, fetched_url, html_zlib, options = args
    try:
        body = zlib.decompress(html_zlib)
        return url, extract(body, None, fetched_url or url, {}, options), None
    except NotAnArticle as exc:
        return url, None, str(exc)
    except Exception as exc:  # a broken row must not stop the run
        return url, None, f"error: {exc!r}"


def _settings_options(overrides: dict[str, str]):
    from scrapy.utils.project import get_project_settings

    from pipelines.extract import read_site_rules

    settings = get_project_settings()
    settings.setdict(overrides, priority="cmdline")
    options = ExtractOptions(
        min_text_chars=settings.getint("NEWS_MIN_TEXT_CHARS", 400),
        keep_raw_html=False,
        site_rules=read_site_rules(settings),
        template_block_chars=settings.getint("NEWS_TEMPLATE_MAX_BLOCK_CHARS", 300),
    )
    templates = SiteTemplates(
        min_pages=settings.getint("NEWS_TEMPLATE_MIN_PAGES", 3),
        max_block_chars=settings.getint("NEWS_TEMPLATE_MAX_BLOCK_CHARS", 300),
        min_share=settings.getfloat("NEWS_TEMPLATE_MIN_SHARE", 0.3),
    )
    return options, templates


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_path", default="news.db", show_default=True, type=click.Path(exists=True, dir_okay=False), help="The store.")
@click.option("--host", help="Only articles of this host.")
@click.option("--workers", default=0, help="Extraction processes (0 = one per core).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="NAME=VALUE", help="A setting, as scrapy crawl -s (e.g. NEWS_SITE_RULES=...).")
def main(db_path: str, host: str | None, workers: int, dry_run: bool, overrides: tuple[str, ...]) -> None:
    """Re-extract stored articles from their raw HTML.

    Example: python -m pipelines.reextract --db news.db --host example.com
    -s 'NEWS_SITE_RULES={"example.com": {"prune_xpath": "//div[@class=\\"promo\\"]"}}'
    """
    pairs = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--set")
        pairs[name] = value
    db = open_db(db_path)
    try:
        options, templates = _settings_options(pairs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    where, params = ("where a.hostname = ?", [host]) if host else ("", [])
    rows = db.execute(
        f"select a.url, r.fetched_url, r.html_zlib from articles a join raw_html r on r.url = a.url {where}", params
    ).fetchall()
    total = len(rows)
    if not total:
        click.echo("No stored raw HTML to re-extract (NEWS_KEEP_RAW_HTML was off, or no articles match).", err=True)
        return
    hosts = {}
    changed = failed = 0
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers or None) as pool:
        for done, (url, fields, problem) in enumerate(
            pool.map(_job, ((u, f, h, options) for u, f, h in rows), chunksize=8), 1
        ):
            if fields is None:
                failed += 1
                click.echo(f"kept as is: {url}: {problem}", err=True)
            else:
                site = urlsplit(url).netloc.lower()
                if site not in hosts:
                    counts = dict(db.execute("select key, pages from site_blocks where host = ?", [site]).fetchall())
                    templates.load(site, counts)
                    hosts[site] = True
                text, _removed = templates.clean(site, fields["text"], fields.get("title"))
                fields.update(text_fields(text))
                current = db.execute(f"select {', '.join(FIELDS)} from articles where url = ?", [url]).fetchone()
                new = tuple(fields.get(k) for k in FIELDS)
                if tuple(current) != new:
                    changed += 1
                    if not dry_run:
                        with db.atomic():
                            db["articles"].update(url, dict(zip(FIELDS, new)))
            if done % 100 == 0 or done == total:
                click.echo(f"{done}/{total} re-extracted, {changed} changed, {failed} kept as is "
                           f"({done / max(time.monotonic() - started, 1e-9):.0f}/s)", err=True)
    verb = "would change" if dry_run else "changed"
    click.echo(f"Done: {total} article(s), {changed} {verb}, {failed} kept as is. Regroup: python -m pipelines.cluster regroup --db {db_path}")


if __name__ == "__main__":
    main()
