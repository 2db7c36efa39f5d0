"""A digest of new and growing stories for one topic, as Markdown or HTML.

    python -m pipelines.digest --topic ai-model-theft --since 24h
    python -m pipelines.digest --topic ai-model-theft --since 7d --format html -o digest.html

The period runs from --since to --now (default: the current time). Both are judged by
when the crawler fetched the articles: a story is "new" when all of the topic's articles
of it were fetched within the period, "growing" when it gained articles within the period
and had older ones. Articles fetched after --now are left out, so a digest for a past
--now is the digest that day would have had. A small chart shows the topic's coverage per
publication day for the days up to --now.
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import sqlite_utils

__all__ = ["parse_since", "parse_now", "collect", "render_markdown", "render_html"]

_SPAN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """'24h', '7d', '90m', '2w' before now, or an ISO date/datetime."""
    now = now or datetime.now(timezone.utc)
    m = _SPAN.match(value)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    return _iso(value, "--since", "use a span such as 24h, 7d, 90m, 2w, or an ISO date such as 2026-11-20")


def parse_now(value: str | None) -> datetime:
    """The end of the period: an ISO date/datetime (UTC unless it says otherwise), or the current time."""
    if not value:
        return datetime.now(timezone.utc)
    return _iso(value, "--now", "use an ISO date or datetime such as 2026-11-20 or 2026-11-20T06:00:00+00:00")


def _iso(value: str, option: str, hint: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: {hint}", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass
class Story:
    id: str
    title: str
    first_seen: str
    last_seen: str
    first_fetched: str  # when the first of the topic's articles of it was fetched
    articles: int
    sites: int
    new_articles: int
    status: str  # new | growing
    top: list  # (title, hostname, url) of its latest articles


def collect(
    db: sqlite_utils.Database, topic: str, since: datetime, days: int = 14, now: datetime | None = None
) -> tuple[list[Story], list[tuple[str, int]]]:
    """The topic's new and growing stories fetched between ``since`` and ``now``, and its articles per day."""
    now = now or datetime.now(timezone.utc)
    since_iso, now_iso = (_utc_iso(t) for t in (since, now))
    rows = db.execute(
        """
        select s.id, s.title, s.first_seen, s.last_seen, min(a.fetched_at) as first_fetched,
               count(*) as articles, count(distinct a.hostname) as sites,
               sum(case when a.fetched_at >= :since then 1 else 0 end) as new_articles
        from articles a
        join article_topics t on t.url = a.url and t.topic = :topic
        join stories s on s.id = a.story_id
        where a.fetched_at <= :now
        group by s.id
        having new_articles > 0
        order by (first_fetched >= :since) desc, new_articles desc, s.last_seen desc
        """,
        {"since": since_iso, "now": now_iso, "topic": topic},
    ).fetchall()
    stories = []
    for sid, title, first_seen, last_seen, first_fetched, n, sites, new in rows:
        top = db.execute(
            "select a.title, a.hostname, a.url from articles a join article_topics t on t.url = a.url and t.topic = ? "
            "where a.story_id = ? and a.fetched_at <= ? order by a.fetched_at desc limit 3",
            [topic, sid, now_iso],
        ).fetchall()
        status = "new" if first_fetched >= since_iso else "growing"
        stories.append(Story(sid, title or "(untitled)", first_seen, last_seen, first_fetched, n, sites, new, status, top))
    start = (now.astimezone(timezone.utc) - timedelta(days=days - 1)).date()
    counts = dict(
        db.execute(
            "select substr(coalesce(a.published, a.fetched_at), 1, 10) as day, count(*) from articles a "
            "join article_topics t on t.url = a.url and t.topic = ? where day >= ? and a.fetched_at <= ? group by day",
            [topic, start.isoformat(), now_iso],
        ).fetchall()
    )
    per_day = [((start + timedelta(days=i)).isoformat(), counts.get((start + timedelta(days=i)).isoformat(), 0)) for i in range(days)]
    return stories, per_day


def _utc_iso(moment: datetime) -> str:
    """The form of articles.fetched_at (2026-11-20T06:00:00+00:00), so strings compare as times."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def render_markdown(topic: str, since: datetime, stories: list[Story], per_day: list[tuple[str, int]]) -> str:
    new = [s for s in stories if s.status == "new"]
    growing = [s for s in stories if s.status == "growing"]
    out = [f"# {topic}: news digest", "", f"Since {since:%Y-%m-%d %H:%M} UTC: {len(new)} new and {len(growing)} growing stor{'y' if len(stories) == 1 else 'ies'}.", ""]
    for heading, group in (("New stories", new), ("Growing stories", growing)):
        out += [f"## {heading}", ""]
        if not group:
            out += ["(none)", ""]
        for s in group:
            out.append(f"- **{s.title}**: {s.articles} article(s) from {s.sites} outlet(s), {s.new_articles} new (first seen {s.first_seen[:10]})")
            for title, host, url in s.top:
                out.append(f"  - [{title or url}]({url}) ({host})")
        out.append("")
    peak = max((n for _, n in per_day), default=0) or 1
    out += ["## Coverage per day", "", "```"]
    for day, n in per_day:
        out.append(f"{day} {'█' * round(20 * n / peak):<20} {n}")
    out += ["```", ""]
    return "\n".join(out)


def render_html(topic: str, since: datetime, stories: list[Story], per_day: list[tuple[str, int]]) -> str:
    e = html.escape
    peak = max((n for _, n in per_day), default=0) or 1
    bar_w, height = 22, 80
    bars = "".join(
        f'<rect x="{i * bar_w}" y="{height - round(height * n / peak)}" width="{bar_w - 4}" height="{round(height * n / peak)}" fill="#4a7bd0">'
        f"<title>{e(day)}: {n}</title></rect>"
        for i, (day, n) in enumerate(per_day)
    )
    chart = f'<svg class="chart" width="{bar_w * len(per_day)}" height="{height}" role="img" aria-label="articles per day">{bars}</svg>'
    sections = []
    for heading, status in (("New stories", "new"), ("Growing stories", "growing")):
        items = [
            f"<li><strong>{e(s.title)}</strong>: {s.articles} article(s) from {s.sites} outlet(s), {s.new_articles} new"
            + "<ul>" + "".join(f'<li><a href="{e(url)}">{e(title or url)}</a> ({e(host)})</li>' for title, host, url in s.top) + "</ul></li>"
            for s in stories if s.status == status
        ]
        sections.append(f"<h2>{heading}</h2><ul>{''.join(items) or '<li>(none)</li>'}</ul>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(topic)}: news digest</title></head><body>"
        f"<h1>{e(topic)}: news digest</h1><p>Since {since:%Y-%m-%d %H:%M} UTC.</p>"
        + "".join(sections)
        + f"<h2>Coverage per day</h2>{chart}<p>{e(per_day[0][0])} to {e(per_day[-1][0])}</p></body></html>"
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--topic", required=True, help="Topic name from the topics file.")
@click.option("--since", default="24h", show_default=True, help="Period: 24h, 7d, 90m, 2w or an ISO date.")
@click.option("--db", "db_path", default="news.db", show_default=True, type=click.Path(dir_okay=False), help="The store.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--days", default=14, show_default=True, help="Days shown in the coverage chart.")
@click.option("--now", "now_text", metavar="ISO", help="End of the period and of the chart (default: the current time).")
def main(topic: str, since: str, db_path: str, fmt: str, output: str | None, days: int, now_text: str | None) -> None:
    """Write a digest of new and growing stories of TOPIC.

    Example: python -m pipelines.digest --topic ai-model-theft --since 24h --format html -o digest.html
    """
    if not Path(db_path).exists():
        raise click.UsageError(f"{db_path}: no such database; run a crawl first or pass --db")
    now = parse_now(now_text)
    start = parse_since(since, now)
    db = sqlite_utils.Database(db_path)
    if "stories" not in db.table_names():
        raise click.UsageError(f"{db_path} has no stories table: it was not written by a crawl with grouping")
    known = {r[0] for r in db.execute("select distinct topic from article_topics").fetchall()}
    if topic not in known:
        raise click.UsageError(f"no articles for topic {topic!r} in {db_path}; topics there: {', '.join(sorted(known)) or 'none'}")
    stories, per_day = collect(db, topic, start, days, now)
    text = (render_html if fmt == "html" else render_markdown)(topic, start, stories, per_day)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"Wrote {output}: {len(stories)} stor{'y' if len(stories) == 1 else 'ies'}", err=True)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
