"""Grouping cost per article, restore time and peak memory at 100k stored articles (synthetic).

Synthetic articles (made up here: pseudo-words with a Zipf-like frequency, function words,
events that several hosts report, ~300 hosts each with template lines, 10% syndicated copies
with edits, published over the last 30 days) go through the real code path:
``features()`` (the extraction workers' part), ``Grouper.assign()`` and ``Grouper.persist()``
into a fresh SQLite store (pipelines.db.open_db + GROUP_MIGRATIONS). Then a fresh process
restores the index from that store, as a crawl does at start-up, assigns 2,000 more articles
and reports its peak RSS.

    python bench/dedup_scale.py                 # 100k articles (~6 minutes on 2 cores)
    python bench/dedup_scale.py -n 20000        # quicker
    python bench/dedup_scale.py --compare-minhashlsh   # also datasketch.MinHashLSH memory at the same size

Targets (issue 3): assign <= 2 ms/article, restore of 100k <= 3 s, peak RSS at 100k <= 500 MB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 11, 23, 12, 0, 0)
_FUNCTION = "the of and to in a is that for on was with as by at from it his an be have are said has its but not which".split()
_FUNCTION_ARR = np.array(_FUNCTION)
_SYLLABLES = "ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo zu".split()


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Synth:
    """Deterministic synthetic news articles."""

    def __init__(self, seed: int = 0, vocab: int = 60_000, hosts: int = 300):
        self.rng = np.random.default_rng(seed)
        rng = np.random.default_rng(12345)
        words = set()
        while len(words) < vocab:
            n = int(rng.integers(2, 5))
            words.add("".join(rng.choice(_SYLLABLES, n)))
        self.vocab = np.array(sorted(words))
        rng.shuffle(self.vocab)
        ranks = np.arange(vocab)
        p = 1.0 / (ranks + 30.0) ** 1.05
        self.cdf = np.cumsum(p / p.sum())
        self.hosts = [f"site{h:03d}.example" for h in range(hosts)]
        self.templates = [[self._sentence(rng, 6, 14) for _ in range(4)] for _ in range(hosts)]
        self.events: list[np.ndarray] = []
        self.recent: list[tuple[str, str, int]] = []

    def _sentence(self, rng, lo: int, hi: int, key: np.ndarray | None = None) -> str:
        n = int(rng.integers(lo, hi))
        content = self.vocab[np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.vocab) - 1)]
        if key is not None:
            mask = rng.random(n) < 0.15
            content[mask] = key[rng.integers(len(key), size=int(mask.sum()))]
        glue = np.where(rng.random(n) < 0.45, _FUNCTION_ARR[rng.integers(len(_FUNCTION_ARR), size=n)], "")
        out = [w for pair in zip(content.tolist(), glue.tolist()) for w in pair if w]
        out[0] = out[0].capitalize()
        return " ".join(out) + "."

    def article(self, i: int, n_total: int) -> dict:
        rng = self.rng
        host = int(rng.integers(len(self.hosts)))
        day = NOW - timedelta(days=29.5 * (1 - i / n_total))
        if self.recent and rng.random() < 0.10:  # a syndicated copy of a recent article
            title, body, src = self.recent[int(rng.integers(len(self.recent)))]
            words = body.split(" ")
            for k in rng.choice(len(words), max(1, len(words) // 50), replace=False):
                words[k] = str(rng.choice(self.vocab[:5000]))
            paragraphs = " ".join(words).split("\n")
            body = "SOMEWHERE (Agency) - " + "\n".join(paragraphs[:-1] if len(paragraphs) > 3 else paragraphs)
            if host == src:
                host = (host + 1) % len(self.hosts)
        else:
            if not self.events or rng.random() < 0.3:
                self.events.append(self.vocab[rng.choice(np.arange(2000, 40000), 8, replace=False)])
            recent_events = self.events[-300:]
            key = recent_events[int(rng.integers(len(recent_events)))]
            title = self._sentence(rng, 6, 11, key)[:-1]
            body = "\n".join(self._sentence(rng, 20, 45, key) for _ in range(int(rng.integers(8, 15))))
            self.recent.append((title, body, host))
            self.recent = self.recent[-2000:]
        text = body + "\n" + "\n".join(self.templates[host])
        return {
            "url": f"https://{self.hosts[host]}/news/{i}",
            "title": title,
            "text": text,
            "hostname": self.hosts[host],
            "published": day.isoformat(timespec="seconds"),
        }


def build(db_path: Path, n: int, batch: int) -> dict:
    from pipelines.db import open_db
    from pipelines.group import GROUP_MIGRATIONS, Grouper, features

    db = open_db(db_path)
    GROUP_MIGRATIONS.apply(db)
    grouper = Grouper(now=NOW)
    synth = Synth()
    t_features, t_assign, t_persist, t_gen = [], [], [], 0.0
    pending: list = []
    copies = 0
    words = 0
    clock = time.process_time  # CPU time: the bench shares the machine, wall time would count others' work
    for i in range(n):
        t0 = clock()
        art = synth.article(i, n)
        t1 = clock()
        f = features(art["title"], art["text"])
        t2 = clock()
        a = grouper.assign(art["url"], art["title"], art["published"], art["hostname"], f)
        t3 = clock()
        t_gen += t1 - t0
        t_features.append(t2 - t1)
        t_assign.append(t3 - t2)
        copies += not a.new_cluster
        words += f.n_words
        pending.append((art, a))
        if len(pending) >= batch or i == n - 1:
            t4 = clock()
            with db.atomic():
                db["articles"].insert_all(
                    (
                        {
                            "url": art["url"],
                            "title": art["title"],
                            "hostname": art["hostname"],
                            "published": art["published"],
                            "cluster_id": a.cluster_id,
                            "story_id": a.story_id,
                            "fetched_at": NOW.isoformat(),
                        }
                        for art, a in pending
                    ),
                )
                grouper.persist(db, [(art["url"], a) for art, a in pending])
            t_persist.append((clock() - t4) / len(pending))
            pending = []
        if (i + 1) % 10_000 == 0:
            click.echo(f"  built {i + 1}/{n}: assign {np.mean(t_assign[-10_000:]) * 1000:.3f} ms/article over the last 10k, "
                       f"features {np.mean(t_features[-10_000:]) * 1000:.3f} ms", err=True)
    stories = db.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
    clusters = db.execute("SELECT COUNT(*) FROM clusters").fetchone()[0]
    state_bytes = db.execute(
        "SELECT SUM(LENGTH(signature) + LENGTH(lines) + LENGTH(terms) + LENGTH(term_tf)) FROM group_articles"
    ).fetchone()[0]
    db.close()
    a = np.array(t_assign) * 1000
    last = a[-min(10_000, len(a)) :]
    return {
        "articles": n,
        "words_per_article": words / n,
        "copies_found": copies,
        "clusters": clusters,
        "stories": stories,
        "features_ms": float(np.mean(t_features) * 1000),
        "assign_ms_mean": float(a.mean()),
        "assign_ms_p50": float(np.percentile(a, 50)),
        "assign_ms_p99": float(np.percentile(a, 99)),
        "assign_ms_last10k": float(last.mean()),
        "persist_ms": float(np.mean(t_persist) * 1000),
        "state_bytes_per_article": state_bytes / n,
        "build_rss_mb": rss_mb(),
    }


def restore_child(db_path: Path, extra: int, compare: bool) -> dict:
    """Run in a fresh process: restore, assign ``extra`` new articles, report time and peak RSS."""
    import gc

    base = rss_mb()
    from pipelines.db import open_db
    from pipelines.group import Grouper, features

    imported = rss_mb()
    db = open_db(db_path)
    grouper = Grouper(now=NOW)
    t, c = time.perf_counter(), time.process_time()
    grouper.restore(db)
    restore_s, restore_cpu = time.perf_counter() - t, time.process_time() - c
    after_restore = rss_mb()
    gc.collect()
    synth = Synth(seed=99)
    arts = [synth.article(10**7 + i, extra) for i in range(extra)]
    feats = [features(a["title"], a["text"]) for a in arts]
    times = []
    for art, f in zip(arts, feats):
        t0 = time.process_time()
        grouper.assign(art["url"], art["title"], art["published"], art["hostname"], f)
        times.append(time.process_time() - t0)
    out = {
        "restored": len(grouper),
        "restore_s": restore_s,
        "restore_cpu_s": restore_cpu,
        "rss_start_mb": base,
        "rss_after_imports_mb": imported,
        "rss_after_restore_mb": after_restore,
        "assign_after_restore_ms": float(np.mean(times) * 1000),
        "peak_rss_mb": rss_mb(),
    }
    if compare:
        from datasketch import LeanMinHash, MinHashLSH

        sigs = grouper._sigs.view
        before = rss_mb()
        t = time.perf_counter()
        lsh = MinHashLSH(threshold=grouper.dedup_threshold, num_perm=grouper.num_perm, weights=(0.2, 0.8))
        with lsh.insertion_session() as session:
            for i in range(len(sigs)):
                session.insert(i, LeanMinHash(seed=grouper.seed, hashvalues=sigs[i], scheme="affine32"), check_duplication=False)
        out["minhashlsh_build_s"] = time.perf_counter() - t
        out["minhashlsh_rss_growth_mb"] = rss_mb() - before
        out["compact_lsh_mb"] = grouper._lsh.nbytes / 2**20
    db.close()
    return out


@click.command()
@click.option("-n", "--articles", default=100_000, show_default=True, help="Stored articles to build.")
@click.option("--batch", default=200, show_default=True, help="Articles per persist() transaction.")
@click.option("--extra", default=2_000, show_default=True, help="New articles assigned after the restore.")
@click.option("--db", "db_path", type=click.Path(path_type=Path), default=None, help="Keep the store here (default: a temp file).")
@click.option("--compare-minhashlsh", is_flag=True, help="Also load the signatures into datasketch.MinHashLSH and report its memory.")
@click.option("--restore-only", type=click.Path(exists=True, path_type=Path), default=None, hidden=True)
def main(articles: int, batch: int, extra: int, db_path: Path | None, compare_minhashlsh: bool, restore_only: Path | None) -> None:
    """Grouping cost per article, restore time and peak RSS at ARTICLES stored articles.

    Example: python bench/dedup_scale.py -n 100000
    """
    if restore_only is not None:
        click.echo(json.dumps(restore_child(restore_only, extra, compare_minhashlsh)))
        return
    tmp = None
    if db_path is None:
        tmp = tempfile.TemporaryDirectory()
        db_path = Path(tmp.name) / "scale.db"
    click.echo(f"building a store of {articles} synthetic articles in {db_path} ...", err=True)
    t = time.perf_counter()
    built = build(db_path, articles, batch)
    built["build_s"] = time.perf_counter() - t
    built["db_mb"] = os.path.getsize(db_path) / 2**20
    click.echo("restoring in a fresh process ...", err=True)
    cmd = [sys.executable, __file__, "--restore-only", str(db_path), "--extra", str(extra)]
    if compare_minhashlsh:
        cmd.append("--compare-minhashlsh")
    child = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

    click.echo(f"\nsynthetic store: {built['articles']} articles ({built['words_per_article']:.0f} words each, "
               f"{built['copies_found']} found as copies), {built['clusters']} clusters, {built['stories']} stories; "
               f"{built['db_mb']:.0f} MB on disk, grouping state {built['state_bytes_per_article']:.0f} bytes/article")
    click.echo(f"(per-article times are CPU time of this process; load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    click.echo(f"features() per article (extraction workers): {built['features_ms']:.3f} ms")
    click.echo(f"assign() per article: mean {built['assign_ms_mean']:.3f} ms, p50 {built['assign_ms_p50']:.3f}, "
               f"p99 {built['assign_ms_p99']:.3f}; last 10k (index near full) {built['assign_ms_last10k']:.3f} ms   [target <= 2 ms]")
    click.echo(f"persist() per article (inside the store transaction): {built['persist_ms']:.3f} ms")
    click.echo(f"restore() of {child['restored']} articles: {child['restore_s']:.2f} s wall, {child['restore_cpu_s']:.2f} s CPU   [target <= 3 s]")
    click.echo(f"assign() after restore: {child['assign_after_restore_ms']:.3f} ms/article over {extra} new articles")
    click.echo(f"RSS: {child['rss_after_imports_mb']:.0f} MB after imports, {child['rss_after_restore_mb']:.0f} MB after restore, "
               f"peak {child['peak_rss_mb']:.0f} MB   [target <= 500 MB]")
    if compare_minhashlsh:
        click.echo(f"datasketch.MinHashLSH with the same {child['restored']} signatures: built in {child['minhashlsh_build_s']:.1f} s, "
                   f"+{child['minhashlsh_rss_growth_mb']:.0f} MB RSS (the compact band index: {child['compact_lsh_mb']:.0f} MB)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
