"""The offline demo: serve the bundled fixture news site on 127.0.0.1 and crawl it.

    python -m demo                 # crawl into demo.db, print the summary
    python -m demo --db /tmp/x.db  # somewhere else
    python -m demo --serve         # only serve the site (Ctrl-C to stop), e.g. to try topics by hand

Works without internet: the site, its feeds and sitemaps are in demo/site.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click

from demo.server import FixtureServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SITE = HERE / "site"
TOPICS_TEMPLATE = HERE / "topics.template.toml"


def write_topics(base: str, path: Path) -> Path:
    """The demo topics file with the server's base URL filled in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TOPICS_TEMPLATE.read_text(encoding="utf-8").replace("{{BASE}}", base), encoding="utf-8")
    return path


def crawl_command(topics: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", f"NEWS_DB={db}", *extra]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_path", default=str(ROOT / "demo.db"), show_default=True, help="SQLite file to write.")
@click.option("--serve", is_flag=True, help="Only serve the demo site until Ctrl-C.")
@click.option("--port", default=0, help="Port to serve on (0 = any free port).")
@click.argument("scrapy_args", nargs=-1, type=click.UNPROCESSED)
def main(db_path: str, serve: bool, port: int, scrapy_args: tuple[str, ...]) -> None:
    """Crawl the bundled offline demo site into a SQLite file.

    Extra arguments go to `scrapy crawl`, e.g. `python -m demo -- -s LOG_LEVEL=WARNING`.
    """
    with FixtureServer(root=SITE, port=port) as server:
        topics = write_topics(server.base, ROOT / "build" / "demo-topics.toml")
        click.echo(f"Demo site on {server.base}; topics file {topics}", err=True)
        if serve:
            click.echo("Serving until Ctrl-C.", err=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
        result = subprocess.run(crawl_command(topics, Path(db_path).resolve(), *scrapy_args), cwd=ROOT)
    if result.returncode == 0:
        click.echo(f"\nDone. Explore the results (story pages, search, feeds) with:  make serve DB={db_path}\n"
                   f"  (or: .venv/bin/python datasette/serve.py {db_path})", err=True)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
