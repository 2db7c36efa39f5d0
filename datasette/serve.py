"""Serve a store with the project's Datasette metadata, plugins and templates.

    python datasette/serve.py news.db [--port 8001] [--public] [extra datasette options]

Datasette names a database after its file, and the canned queries in metadata.yml are
written for "news": for another file name this writes a copy of the metadata under that
name (build/datasette-metadata.yml) and serves with it. --public turns off arbitrary SQL
and downloads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv else 2)
    db, rest = Path(argv[0]), argv[1:]
    if not db.exists():
        sys.exit(f"{db}: no such database; run a crawl first (README: 'Crawling for real')")
    metadata = HERE / "metadata.yml"
    if db.stem != "news":
        text = metadata.read_text(encoding="utf-8").replace("\ndatabases:\n  news:\n", f"\ndatabases:\n  {db.stem}:\n")
        text = text.replace('href="/news/', f'href="/{db.stem}/')
        metadata = ROOT / "build" / "datasette-metadata.yml"
        metadata.parent.mkdir(exist_ok=True)
        metadata.write_text(text, encoding="utf-8")
    public = []
    if "--public" in rest:
        rest.remove("--public")
        public = ["--setting", "default_allow_sql", "off", "--setting", "allow_download", "off"]
    cmd = [sys.executable, "-m", "datasette", "serve", str(db), "--metadata", str(metadata),
           "--plugins-dir", str(HERE / "plugins"), "--template-dir", str(HERE / "templates"), *public, *rest]
    os.execv(sys.executable, cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
