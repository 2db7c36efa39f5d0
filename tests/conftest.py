"""Shared fixtures: the fixture site on 127.0.0.1 and a real `scrapy crawl news` runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from demo.server import FixtureServer

ROOT = Path(__file__).resolve().parent.parent
DEMO_SITE = ROOT / "demo" / "site"


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((ROOT / "demo" / "site_manifest.json").read_text(encoding="utf-8"))


@pytest.fixture()
def demo_server():
    with FixtureServer(root=DEMO_SITE) as server:
        yield server


def run_crawl(topics: Path, db: Path, *extra: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run a real `scrapy crawl news` in a subprocess (as users do) and return its result."""
    cmd = [
        sys.executable, "-m", "scrapy", "crawl", "news",
        "-s", f"NEWS_TOPICS={topics}",
        "-s", f"NEWS_DB={db}",
        "-s", "DOWNLOAD_DELAY=0",
        "-s", "AUTOTHROTTLE_ENABLED=False",
        "-s", "NEWS_RETRY_BACKOFF_BASE=0.05",
        "-s", "NEWS_EXTRACT_WORKERS=2",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def write_topics(path: Path, text: str, base: str) -> Path:
    path.write_text(text.replace("{{BASE}}", base), encoding="utf-8")
    return path


def open_store(path: Path) -> sqlite_utils.Database:
    return sqlite_utils.Database(path)
