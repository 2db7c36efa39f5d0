"""Long run: crawl 10,000 local pages and print memory at 1k, 5k and 10k stored articles.

    python bench/long_run.py            # N=10000 by default; N=2000 for a quick look
    python bench/long_run.py -s NEWS_GROUPING=False   # any crawl setting, to see what memory is whose

Synthetic articles (random sentences from a fixed vocabulary, each page distinct) are
served on 127.0.0.1 and listed in one sitemap. RSS is read from /proc for the crawl process
and for its extraction workers. Target: under 20% growth of the crawl process from 1k to 10k.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import FAST_LOCAL, ROOT

from demo.server import FixtureServer, Response

WORDS = ("council budget river station energy market school harbor museum festival bridge report vote plan "
         "transit housing water court library hospital farm factory election park storm road tax science").split()


def page(i: int) -> bytes:
    rng = random.Random(i)
    paras = []
    for _ in range(6):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + f" ({i})." for _ in range(4)]
        paras.append("<p>" + " ".join(sentences) + "</p>")
    nav = "".join(f'<li><a href="/section/{w}/">{w}</a></li>' for w in WORDS[:12])
    return (f"<html><head><title>Report {i}</title></head><body><nav><ul>{nav}</ul></nav><article><h1>Report number {i}</h1>"
            + "".join(paras) + "</article><footer>Copyright example</footer></body></html>").encode()


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def stored(db: Path) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        n = con.execute("select count(*) from articles").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a Scrapy setting for the crawl (repeatable)")
    args = parser.parse_args()
    n = int(os.environ.get("N", "10000"))
    marks = [m for m in (1000, 5000, 10000) if m <= n] or [n]
    workdir = Path(tempfile.mkdtemp(prefix="bench-longrun-"))

    def article(handler):
        i = int(handler.path.rsplit("-", 1)[1].split(".")[0])
        return Response(200, page(i), {"Content-Type": "text/html; charset=utf-8"})

    server = FixtureServer()
    with server:
        for i in range(n):
            server.routes[f"/r/report-{i}.html"] = article
        sitemap = "<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>" + "".join(
            f"<url><loc>{server.base}/r/report-{i}.html</loc></url>" for i in range(n)) + "</urlset>"
        server.pages["/sitemap.xml"] = Response(200, sitemap.encode(), {"Content-Type": "application/xml"})
        topics = workdir / "topics.toml"
        topics.write_text(f'[[topic]]\nname = "long"\nmax_age_days = 0\nsitemaps = ["{server.base}/sitemap.xml"]\n')
        db = workdir / "news.db"
        cmd = [sys.executable, "-m", "scrapy", "crawl", "news", "-s", f"NEWS_TOPICS={topics}", "-s", f"NEWS_DB={db}",
               "-s", "NEWS_MIN_TEXT_CHARS=200", "-s", "LOG_LEVEL=WARNING"]
        for s in FAST_LOCAL:
            cmd += ["-s", s] if not s.startswith("LOG_LEVEL") else []
        for s in args.set:
            cmd += ["-s", s]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(workdir / "crawl.log", "w"),
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
        readings = {}
        while proc.poll() is None and len(readings) < len(marks):
            count = stored(db)
            for m in marks:
                if m not in readings and count >= m:
                    workers = [rss_kb(c) for c in children(proc.pid)]
                    readings[m] = (rss_kb(proc.pid), sum(workers), len(workers), time.monotonic() - started)
                    main_kb, workers_kb, nw, t = readings[m]
                    print(f"{m:>6} stored: crawl process RSS {main_kb / 1024:.0f} MB, {nw} child processes {workers_kb / 1024:.0f} MB, {t:.0f} s")
            time.sleep(0.5)
        proc.wait()
    if proc.returncode or len(readings) < len(marks):
        log = (workdir / "crawl.log").read_text(errors="replace").splitlines()
        print(f"the crawl ended early (exit {proc.returncode}); last lines of {workdir / 'crawl.log'}:", *log[-15:], sep="\n", file=sys.stderr)
    print(f"settings: {' '.join(args.set) or 'defaults'}")
    print(f"machine: {os.cpu_count()} cores; pages: {n}; stored: {stored(db)}; work dir {workdir}")
    if len(marks) >= 2:
        print(growth_line(marks, readings))


def growth_line(marks: list[int], readings: dict) -> str:
    """RSS growth from the first mark to the last one reached (a crawl can end before the last)."""
    reached = [m for m in marks if m in readings]
    missed = [m for m in marks if m not in readings]
    note = f" ({', '.join(map(str, missed))} not reached)" if missed else ""
    if len(reached) < 2 or not readings[reached[0]][0]:
        return f"crawl process RSS growth: not measured, marks reached: {', '.join(map(str, reached)) or 'none'}{note}"
    first, last = readings[reached[0]][0], readings[reached[-1]][0]
    return f"crawl process RSS growth {reached[0]} -> {reached[-1]}: {100 * (last - first) / first:+.1f}% (target < 20%){note}"


if __name__ == "__main__":
    main()
