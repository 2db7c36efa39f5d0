"""The offline demo: serve the bundled fixture news site on 127.0.0.1 and crawl it.

    python -m demo                 # crawl into demo.db, print the summary
    python -m demo --db /tmp/x.db  # somewhere else
    python -m demo --serve         # only serve the site (Ctrl-C to stop), e.g. to try topics by hand

Works without internet: the site, its feeds and sitemaps are in demo/site. The site is
served on a fixed port (DEFAULT_PORT) because its URLs, and so the stored articles' keys,
include the port: a second run on the same port shows a crawl that fetches nothing twice,
while a run on another port would store every article again under new URLs.
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
DEFAULT_PORT = 8765


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
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port to serve on; keep it the same across runs (0 = any free port).")
@click.argument("scrapy_args", nargs=-1, type=click.UNPROCESSED)
def main(db_path: str, serve: bool, port: int, scrapy_args: tuple[str, ...]) -> None:
    """Crawl the bundled offline demo site into a SQLite file.

    Extra arguments go to `scrapy crawl`, e.g. `python -m demo -- -s LOG_LEVEL=WARNING`.
    """
    try:
        server = FixtureServer(root=SITE, port=port)
    except OSError as exc:
        raise click.UsageError(
            f"cannot serve the demo site on 127.0.0.1:{port} ({exc.strerror or exc}): stop what uses that port, or pass "
            f"--port N with a free port (use the same one on later runs: the stored URLs include it; with a new port, "
            f"use a new --db too)"
        ) from None
    with server:
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
