"""python -m pipelines.cluster: batch grouping of JSONL and regrouping of a store."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import test_group as texts
from pipelines.cluster import cli
from pipelines.db import open_db
from pipelines.group import DEFAULTS, GROUP_MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent


def _rows() -> list[dict]:
    copy_title, copy_text = texts.copy_of_bridge()
    return [
        {"id": "library", "title": texts.LIBRARY_TITLE, "text": texts.LIBRARY, "url": "https://brenmoor.example/library"},
        {"id": "ferry", "title": texts.FERRY_TITLE, "text": texts.FERRY, "published": "2026-11-19"},
        {"id": "market", "title": texts.MARKET_TITLE, "text": texts.MARKET},
        {"id": "bridge", "title": texts.BRIDGE_TITLE, "text": texts.BRIDGE, "published": "2026-11-20", "url": "https://harlow.example/bridge"},
        {"id": "bridge-copy", "title": copy_title, "text": copy_text, "published": "2026-11-20", "url": "https://wire.example/b"},
        {"id": "bridge-other", "title": texts.BRIDGE_OTHER_TITLE, "text": texts.BRIDGE_OTHER, "published": "2026-11-21"},
    ]


def _write(path: Path, rows: list[dict]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data.encode("utf-8")))
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _check_groups(out: list[dict]) -> None:
    assert [o["id"] for o in out] == [r["id"] for r in _rows()]
    by = {o["id"]: o for o in out}
    assert by["bridge-copy"]["cluster_id"] == by["bridge"]["cluster_id"]
    assert by["bridge-other"]["cluster_id"] != by["bridge"]["cluster_id"]
    assert by["bridge-other"]["story_id"] == by["bridge"]["story_id"] == by["bridge-copy"]["story_id"]
    assert len({by[k]["story_id"] for k in ("library", "ferry", "market", "bridge")}) == 4
    assert all(o["cluster_id"].startswith("c") and o["story_id"].startswith("s") for o in out)


@pytest.mark.parametrize("name", ["in.jsonl", "in.jsonl.gz"])
def test_batch_is_the_default_command(tmp_path, name):
    path = _write(tmp_path / name, _rows())
    result = CliRunner().invoke(cli, [str(path)])
    assert result.exit_code == 0, result.output
    _check_groups([json.loads(line) for line in result.stdout.splitlines()])


def test_batch_subcommand_with_settings_and_output_file(tmp_path):
    path = _write(tmp_path / "in.jsonl", _rows())
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["batch", str(path), "-o", str(out), "--set", "NEWS_DEDUP_THRESHOLD=0.5", "--idf", "online"])
    assert result.exit_code == 0, result.output
    _check_groups([json.loads(line) for line in out.read_text().splitlines()])
    # ids are stable: the same input gives the same groups
    again = CliRunner().invoke(cli, [str(path)])
    assert [json.loads(x) for x in again.stdout.splitlines()] == [json.loads(x) for x in out.read_text().splitlines()]


def test_batch_with_corpus_idf(tmp_path):
    path = _write(tmp_path / "in.jsonl", _rows())
    result = CliRunner().invoke(cli, ["batch", str(path), "--idf", "corpus", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    by = {o["id"]: o for o in map(json.loads, result.stdout.splitlines())}
    assert by["bridge-copy"]["cluster_id"] == by["bridge"]["cluster_id"] != by["ferry"]["cluster_id"]
    assert by["bridge-copy"]["story_id"] == by["bridge"]["story_id"]


def test_batch_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "no id"}\n')
    result = CliRunner().invoke(cli, [str(bad)])
    assert result.exit_code != 0 and 'needs an "id"' in result.output
    result = CliRunner().invoke(cli, [str(tmp_path / "missing.jsonl")])
    assert result.exit_code != 0 and "no such file" in result.output
    good = _write(tmp_path / "in.jsonl", _rows())
    result = CliRunner().invoke(cli, [str(good), "--set", "NEWS_NOPE=1"])
    assert result.exit_code != 0 and "NEWS_DEDUP_THRESHOLD" in result.output
    result = CliRunner().invoke(cli, [str(good), "--set", "NEWS_DEDUP_THRESHOLD=2"])
    assert result.exit_code != 0 and "NEWS_DEDUP_THRESHOLD" in result.output


def test_help_shows_examples_and_every_setting():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "python -m pipelines.cluster articles.jsonl.gz > groups.jsonl" in result.output
    assert "regroup --db news.db" in result.output
    for command in ("batch", "regroup"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output
        for name in DEFAULTS:
            assert name in result.output, f"{name} is not documented in `{command} --help`"


def test_regroup_rewrites_the_store(tmp_path):
    path = tmp_path / "news.db"
    db = open_db(path)
    GROUP_MIGRATIONS.apply(db)
    for i, row in enumerate(_rows()):
        url = row.get("url") or f"https://site{i}.example/{row['id']}"
        db["articles"].insert(
            {"url": url, "title": row["title"], "text": row["text"], "published": row.get("published"),
             "hostname": url.split("/")[2], "fetched_at": f"2026-11-22T10:00:0{i}+00:00", "cluster_id": "old", "story_id": "old"}
        )
    db.close()
    result = CliRunner().invoke(cli, ["regroup", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert "regrouped 6 article(s)" in result.output

    db = open_db(path)
    arts = {r["title"]: r for r in db["articles"].rows}
    bridge, copy = arts[texts.BRIDGE_TITLE], arts[texts.copy_of_bridge()[0]]
    other = arts[texts.BRIDGE_OTHER_TITLE]
    assert copy["cluster_id"] == bridge["cluster_id"] != other["cluster_id"]
    assert other["story_id"] == bridge["story_id"]
    assert "old" not in {r["cluster_id"] for r in arts.values()}
    assert db["group_articles"].count == 6
    assert db["clusters"].get(bridge["cluster_id"])["size"] == 2
    assert db["stories"].get(bridge["story_id"])["article_count"] == 3
    assert db["clusters"].count == 5 and db["stories"].count == 4
    db.close()

    # running it again gives the same ids (they derive from each group's first article)
    assert CliRunner().invoke(cli, ["regroup", "--db", str(path)]).exit_code == 0
    db = open_db(path)
    assert {r["title"]: r["cluster_id"] for r in db["articles"].rows} == {t: r["cluster_id"] for t, r in arts.items()}
    db.close()


def test_module_runs_as_a_script(tmp_path):
    path = _write(tmp_path / "in.jsonl", _rows()[:2])
    proc = subprocess.run([sys.executable, "-m", "pipelines.cluster", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == ["library", "ferry"]
    assert "grouped: 2/2" in proc.stderr
