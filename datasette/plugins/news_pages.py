"""Datasette pages for the news store: a story page and an Atom feed of new stories per topic.

    datasette serve news.db --metadata datasette/metadata.yml \
        --plugins-dir datasette/plugins --template-dir datasette/templates

Routes (the first attached database is used, or ?db=NAME):
    /-/news/story/<story_id>          headline, timeline of coverage, outlets, copies folded under their original
    /-/news/topic/<topic>.atom        Atom feed: one entry per story of the topic, newest first by when
                                      the crawler found it; its <author> is the instance title from metadata.yml
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from datasette import Response, hookimpl

FEED_SIZE = 50
FEED_AUTHOR = "newscrawler"  # feed-level <author> (RFC 4287 4.1.1) when metadata.yml has no title
TAG = "tag:newscrawler,2026:"  # entry and feed ids: RFC 4151 tag URIs (an authority, a date, then ours)


def _database(datasette, request):
    name = request.args.get("db")
    if name:
        return datasette.get_database(name)
    names = [n for n in datasette.databases if n != "_internal"]
    if not names:
        raise LookupError("no database attached")
    return datasette.get_database(names[0])


async def story_page(datasette, request):
    story_id = request.url_vars["story_id"]
    db = _database(datasette, request)
    story = (await db.execute("select * from stories where id = ?", [story_id])).first()
    if story is None:
        return Response.html(f"<h1>No story {escape(story_id)}</h1>", status=404)
    rows = (
        await db.execute(
            """
            select a.url, a.title, a.hostname, a.sitename, coalesce(a.published, a.fetched_at) as day_of,
                   a.published, a.fetched_at, a.cluster_id, c.representative_url,
                   (select group_concat(topic, ', ') from article_topics t where t.url = a.url) as topics,
                   (select group_concat(distinct kind) from article_sources s where s.url = a.url) as found_via
            from articles a left join clusters c on c.id = a.cluster_id
            where a.story_id = ?
            order by coalesce(a.published, a.fetched_at), a.url
            """,
            [story_id],
        )
    ).rows
    articles = [dict(r) for r in rows]
    groups: OrderedDict[str, dict] = OrderedDict()
    for article in articles:
        key = article["cluster_id"] or article["url"]
        group = groups.setdefault(key, {"original": None, "copies": []})
        if group["original"] is None and (article["url"] == article["representative_url"] or not article["representative_url"]):
            group["original"] = article
        else:
            group["copies"].append(article)
    for group in groups.values():  # a group whose representative is outside the story: first member leads
        if group["original"] is None:
            group["original"] = group["copies"].pop(0)
    timeline: OrderedDict[str, list] = OrderedDict()
    for article in articles:
        timeline.setdefault((article["day_of"] or "")[:10] or "undated", []).append(article)
    outlets: dict[str, int] = {}
    for article in articles:
        outlets[article["hostname"]] = outlets.get(article["hostname"], 0) + 1
    return Response.html(
        await datasette.render_template(
            "news_story.html",
            {
                "story": dict(story),
                "groups": list(groups.values()),
                "timeline": list(timeline.items()),
                "outlets": sorted(outlets.items(), key=lambda kv: (-kv[1], kv[0])),
                "article_count": len(articles),
                "database": db.name,
            },
            request=request,
        )
    )


async def topic_feed(datasette, request):
    """The topic's stories, newest first by when the crawler first found them: a story about
    an older event found today is new to the reader."""
    topic = request.url_vars["topic"]
    db = _database(datasette, request)
    rows = (
        await db.execute(
            """
            select s.id, s.title, s.first_seen, s.article_count, s.distinct_sites,
                   min(a.fetched_at) as found_at, max(a.fetched_at) as changed_at
            from stories s join articles a on a.story_id = s.id
            where s.id in (select a.story_id from articles a join article_topics t on t.url = a.url where t.topic = ?)
            group by s.id
            order by found_at desc, s.id
            limit ?
            """,
            [topic, FEED_SIZE],
        )
    ).rows
    base = request.scheme + "://" + request.host
    updated = max((_rfc3339(r["changed_at"]) for r in rows), default=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    entries = []
    for r in rows:
        link = f"{base}/-/news/story/{escape(str(r['id']))}?db={escape(db.name)}"
        entries.append(
            "<entry>"
            f"<id>{TAG}story/{escape(str(r['id']))}</id>"
            f"<title>{escape(r['title'] or '(untitled)')}</title>"
            f"<updated>{escape(_rfc3339(r['changed_at']))}</updated>"
            f"<published>{escape(_rfc3339(r['found_at']))}</published>"
            f'<link rel="alternate" href="{link}"/>'
            f"<summary>{r['article_count']} article(s) from {r['distinct_sites']} outlet(s)"
            + (f"; first published {escape(r['first_seen'][:10])}" if r["first_seen"] else "")
            + "</summary>"
            "</entry>"
        )
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{TAG}topic/{escape(topic)}</id>"
        f"<title>News stories: {escape(topic)}</title>"
        f"<updated>{escape(updated)}</updated>"
        f"<author><name>{escape(datasette.metadata('title') or FEED_AUTHOR)}</name></author>"
        f'<link rel="self" href="{base}/-/news/topic/{escape(topic)}.atom"/>'
        + "".join(entries)
        + "</feed>"
    )
    return Response(xml, content_type="application/atom+xml; charset=utf-8")


_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def _rfc3339(value: str | None) -> str:
    """An RFC 3339 timestamp, as Atom requires: a bare date becomes midnight UTC, and a time
    without an offset is UTC (the store's stories, clusters and fetched_at times are)."""
    if not value:
        return "1970-01-01T00:00:00Z"
    if "T" not in value:
        return f"{value[:10]}T00:00:00Z"
    offset = _OFFSET.search(value)
    if offset is None:
        return value + "Z"
    return value if ":" in offset.group(0) or offset.group(0) == "Z" else f"{value[:-2]}:{value[-2:]}"  # +0000 -> +00:00


@hookimpl
def register_routes():
    return [
        (r"^/-/news/story/(?P<story_id>[^/]+)$", story_page),
        (r"^/-/news/topic/(?P<topic>[^/]+)\.atom$", topic_feed),
    ]


@hookimpl
def render_cell(value, column, table, database, datasette):
    """Story ids link to their story page, in every table and query (and the stories table's own ids)."""
    if (column == "story_id" or (table == "stories" and column == "id")) and isinstance(value, str) and value:
        from markupsafe import Markup

        return Markup(f'<a href="/-/news/story/{escape(value)}?db={escape(database)}">{escape(value)}</a>')
    return None
