"""Load and validate the topics file (TOML).

Every problem is reported as one :class:`TopicsError` whose message names the file, the
topic, the field and what to do about it, so a bad file fails at start and not mid-crawl.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from crawler.query import Query, QueryError, parse_query
from crawler.urls import origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Topic", "TopicsError", "load_topics", "select_topics"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_URL_LISTS = ("feeds", "sitemaps", "pages")
_KNOWN = {"name", "query", "max_age_days", "schedule", "search", *_URL_LISTS}
SEARCH_SERVICES = ("google_news", "bing_news", "gdelt")
DEFAULT_MAX_AGE_DAYS = 7


class TopicsError(ValueError):
    """The topics file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Topic:
    name: str
    query: Query | None = None
    feeds: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    pages: tuple[str, ...] = ()
    max_age_days: int = DEFAULT_MAX_AGE_DAYS
    schedule: str | None = None  # a cron expression, read by scheduler.py
    search: tuple[str, ...] = ()  # news-search services that run the query
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def match(self, text: str) -> frozenset[str] | None:
        """Matched query terms, an empty set when there is no query, None for no match."""
        if self.query is None:
            return frozenset()
        return self.query.match(text)

    @property
    def query_fingerprint(self) -> str:
        """Query.fingerprint() of the topic's query; "" when it has none (every article is relevant)."""
        return self.query.fingerprint() if self.query is not None else ""

    def source_origins(self) -> set[tuple[str, str, int | None]]:
        """(scheme, host, port) of every configured source URL."""
        return {origin(url) for url in (*self.feeds, *self.sitemaps, *self.pages)}


def load_topics(path: str | Path) -> tuple[Topic, ...]:
    """Read ``path`` and return its topics, or raise TopicsError."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TopicsError(
            f"{where}: topics file not found. Create it (see topics.toml in the project root for an example) "
            f"or point NEWS_TOPICS at it: scrapy crawl news -s NEWS_TOPICS=path/to/topics.toml"
        ) from None
    except OSError as exc:
        raise TopicsError(f"{where}: cannot read the topics file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TopicsError(f"{where}: the topics file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopicsError(f"{where}: not valid TOML: {exc}") from None
    return parse_topics(data, where)


def topics_by_name(settings) -> dict[str, Topic]:
    """The topics of NEWS_TOPICS by name, for pipelines that match queries. A bad or missing
    file gives none: the spider reports it at start and stops the crawl."""
    path = settings.get("NEWS_TOPICS")
    try:
        return {t.name: t for t in load_topics(path)} if path else {}
    except TopicsError:
        return {}


def parse_topics(data: dict, where: str = "topics") -> tuple[Topic, ...]:
    unknown_top = set(data) - {"topic"}
    if unknown_top:
        raise TopicsError(f"{where}: unknown top-level key(s) {sorted(unknown_top)}: topics are written as [[topic]] tables")
    entries = data.get("topic")
    if not entries:
        raise TopicsError(f"{where}: no topics: add at least one [[topic]] table with a name and some feeds, sitemaps or pages")
    if not isinstance(entries, list):
        raise TopicsError(f"{where}: `topic` must be an array of tables: write [[topic]], not [topic]")
    topics: list[Topic] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries, 1):
        topic = _parse_topic(entry, f"{where}: topic #{index}")
        if topic.name in seen:
            raise TopicsError(
                f"{where}: topic #{index}, field 'name': {topic.name!r} is already used by topic #{seen[topic.name]}; names must be unique"
            )
        seen[topic.name] = index
        topics.append(topic)
    return tuple(topics)


def _parse_topic(entry: object, where: str) -> Topic:
    if not isinstance(entry, dict):
        raise TopicsError(f"{where}: must be a table ([[topic]] followed by key = value lines)")
    name = entry.get("name")
    if not isinstance(name, str) or not _SLUG.match(name):
        raise TopicsError(
            f"{where}, field 'name': {name!r} is not a valid name; use a slug of lower-case letters, digits, '-' and '_' "
            f"(e.g. name = \"ai-model-theft\")"
        )
    where = f"{where} ({name!r})"
    unknown = set(entry) - _KNOWN
    if unknown:
        raise TopicsError(f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(_KNOWN)}")

    query = None
    if "query" in entry:
        raw_query = entry["query"]
        if not isinstance(raw_query, str):
            raise TopicsError(f"{where}, field 'query': must be a string, e.g. query = 'Anthropic AND Claude'")
        try:
            query = parse_query(raw_query)
        except QueryError as exc:
            raise TopicsError(f"{where}, field 'query': {exc}") from None

    lists = {key: _url_list(entry.get(key, []), f"{where}, field '{key}'") for key in _URL_LISTS}
    search = entry.get("search", [])
    if isinstance(search, str):
        search = [search]
    if not isinstance(search, list) or any(s not in SEARCH_SERVICES for s in search):
        raise TopicsError(f"{where}, field 'search': {search!r}: use a list of {', '.join(SEARCH_SERVICES)}")
    if search and query is None:
        raise TopicsError(f"{where}, field 'search': searching needs a query: add query = '...' to the topic")
    if not any(lists.values()) and not search:
        raise TopicsError(f"{where}: no sources; give at least one of feeds, sitemaps or pages (lists of http(s) URLs), or search")

    max_age = entry.get("max_age_days", DEFAULT_MAX_AGE_DAYS)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise TopicsError(f"{where}, field 'max_age_days': {max_age!r} is not a whole number of days >= 0 (0 means no limit)")

    schedule = entry.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or not schedule.strip()):
        raise TopicsError(f"{where}, field 'schedule': must be a cron expression string such as \"0 6 * * *\"")

    return Topic(name=name, query=query, max_age_days=max_age, schedule=schedule, search=tuple(dict.fromkeys(search)), **lists)


def _url_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise TopicsError(f"{where}: must be a list of URLs, e.g. [\"https://example.com/rss.xml\"]")
    out = []
    for url in value:
        if not isinstance(url, str):
            raise TopicsError(f"{where}: {url!r} is not a string")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TopicsError(f"{where}: {url!r} is not an absolute http(s) URL (write it as https://host/path)")
        out.append(url.strip())
    return tuple(dict.fromkeys(out))


def select_topics(topics: tuple[Topic, ...], wanted: str | None) -> tuple[Topic, ...]:
    """The topics named in ``wanted`` (comma-separated), or all of them."""
    if not wanted:
        return topics
    by_name = {t.name: t for t in topics}
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    missing = [n for n in names if n not in by_name]
    if missing:
        raise TopicsError(f"unknown topic(s) {missing}; the topics file has {sorted(by_name)}")
    return tuple(by_name[n] for n in names)
