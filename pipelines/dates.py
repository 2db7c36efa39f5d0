"""Publication date of an article page: one pure function, ``resolve_published``.

Sources, first usable one wins (the returned source name in brackets):

1. JSON-LD ``datePublished`` of the page's article object (NewsArticle, Article,
   BlogPosting, ReportageNewsArticle, LiveBlogPosting, ... also inside ``@graph``)
   ["jsonld"]; a WebPage's ``datePublished`` only when no article object has one.
2. ``<meta>`` tags: article:published_time, og:published_time, itemprop=datePublished,
   pubdate, publishdate, date, dc.date(.issued), dcterms.created, parsely-pub-date,
   sailthru.date, ... and the ``pub_date`` in a parsely-page JSON meta ["meta"].
3. ``<time datetime>`` / any element marked ``itemprop="datePublished"`` in the body
   (microdata, the ``pubdate`` attribute, a class naming the publication) ["page"].
4. trafilatura's own date (htmldate, extensive search, original date) ["page"].
5. the feed or sitemap date the page was discovered with (``hints``) ["feed" / "sitemap"].
6. a full date in the URL: /2026/11/20/, 2026-11-20, _20261120 ["url"].

A date earlier than 1995-01-01 or more than 2 days after ``now`` is discarded and the
next source is tried. The crawl date is never used: when the only page-level evidence is
trafilatura's heuristic date and it equals today while the feed, the sitemap or the URL
names an earlier day, the heuristic is taken for a "today's date" widget and skipped.

The result is an ISO 8601 string, ``YYYY-MM-DD`` or a datetime as the source wrote it
(``2026-11-20T09:30:00+01:00``; time zone offset kept, never converted), or None.
"""

from __future__ import annotations

import email.utils
import json
import re
from datetime import date, datetime, timedelta, timezone

__all__ = ["resolve_published", "parse_date_value", "url_date", "ARTICLE_TYPES"]

MIN_DATE = date(1995, 1, 1)
FUTURE_SLACK = timedelta(days=2)

ARTICLE_TYPES = frozenset(
    t.lower()
    for t in (
        "Article", "NewsArticle", "BlogPosting", "ReportageNewsArticle", "AnalysisNewsArticle",
        "OpinionNewsArticle", "ReviewNewsArticle", "BackgroundNewsArticle", "AskPublicNewsArticle",
        "SatiricalArticle", "LiveBlogPosting", "ScholarlyArticle", "TechArticle", "Report",
        "SocialMediaPosting", "MedicalScholarlyArticle", "AdvertiserContentArticle", "Posting",
        "Blog", "Review", "Recipe", "HowTo",
    )
)
_PAGE_TYPES = frozenset(t.lower() for t in ("WebPage", "ItemPage", "AboutPage", "MedicalWebPage", "CollectionPage"))

# meta names/properties/itemprops, most specific first (compared lower-case)
META_KEYS = (
    "article:published_time",
    "og:article:published_time",
    "og:published_time",
    "article:published",
    "datepublished",
    "published_time",
    "publishdate",
    "publish-date",
    "publish_date",
    "pubdate",
    "pub_date",
    "parsely-pub-date",
    "sailthru.date",
    "article.published",
    "article_date_original",
    "original-publish-date",
    "originalpublicationdate",
    "cxenseparse:recs:publishtime",
    "date.release",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date.created",
    "dcterms.created",
    "dc.date",
    "dcterms.date",
    "citation_publication_date",
    "citation_date",
    "date",
    "created",
)
_META_RANK = {key: i for i, key in enumerate(META_KEYS)}

_ISO_LIKE = re.compile(
    r"(?P<y>(?:19|20)\d\d)-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)"
    r"(?:[T ]+(?P<H>[0-2]?\d):(?P<M>[0-5]\d)(?::(?P<S>[0-5]\d)(?:[.,]\d+)?)?"
    r"\s*(?P<tz>Z|z|UTC|GMT|[+-][0-2]\d(?::?[0-5]\d)?)?)?"
)
_COMPACT = re.compile(r"^(?P<y>(?:19|20)\d\d)(?P<m>[01]\d)(?P<d>[0-3]\d)(?:T?(?P<H>[0-2]\d)(?P<M>[0-5]\d)(?P<S>[0-5]\d)?)?$")
_SLASHED = re.compile(r"^(?P<y>(?:19|20)\d\d)/(?P<m>[01]?\d)/(?P<d>[0-3]?\d)\b")

# dates in URLs: /2026/11/20/, /2026-11-20, _20261120, -20261120-
_URL_DATES = (
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)[/_.-](?P<m>[01]?\d)[/_.-](?P<d>[0-3]?\d)(?!\d)"),
    re.compile(r"(?<![\dA-Za-z])(?:[a-z]{0,4})(?P<y>(?:19|20)\d\d)(?P<m>[01]\d)(?P<d>[0-3]\d)(?!\d)"),
)


# --- parsing ------------------------------------------------------------------------------
def _valid(day: date, now: datetime) -> bool:
    return MIN_DATE <= day <= (now + FUTURE_SLACK).date()


def parse_date_value(value, now: datetime | None = None) -> str | None:
    """A date or datetime string/number as found in a page -> ISO string, or None if unusable."""
    now = now or datetime.now(timezone.utc)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # epoch seconds / ms
        seconds = value / 1000 if value > 1e11 else value
        try:
            dt = datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
        return dt.isoformat(timespec="seconds") if _valid(dt.date(), now) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 80:
        return None
    found = _parse_iso_like(text) or _parse_compact(text) or _parse_rfc2822(text)
    if found is None:
        return None
    day, iso = found
    return iso if _valid(day, now) else None


def _mk(y, m, d) -> date | None:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        return None


def _tz(tz: str | None) -> str:
    if not tz:
        return ""
    if tz in ("Z", "z", "UTC", "GMT"):
        return "+00:00"
    sign, digits = tz[0], tz[1:].replace(":", "")
    hours, minutes = digits[:2], digits[2:4] or "00"
    if int(hours) > 14:
        return ""
    return f"{sign}{hours}:{minutes}"


def _parse_iso_like(text: str):
    m = _ISO_LIKE.search(text[:40])
    if m is None:
        m = _SLASHED.match(text)
        if m is None:
            return None
        day = _mk(m["y"], m["m"], m["d"])
        return (day, day.isoformat()) if day else None
    day = _mk(m["y"], m["m"], m["d"])
    if day is None:
        return None
    if m["H"] is None:
        return day, day.isoformat()
    hour, minute, second = int(m["H"]), int(m["M"]), int(m["S"] or 0)
    if hour > 23:
        return day, day.isoformat()
    # midnight with no zone is usually "date only" written as a datetime
    if hour == minute == second == 0 and not m["tz"]:
        return day, day.isoformat()
    return day, f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}{_tz(m['tz'])}"


def _parse_compact(text: str):
    m = _COMPACT.match(text)
    if m is None:
        return None
    day = _mk(m["y"], m["m"], m["d"])
    if day is None:
        return None
    if m["H"] is None:
        return day, day.isoformat()
    hour, minute, second = int(m["H"]), int(m["M"]), int(m["S"] or 0)
    if hour > 23:
        return day, day.isoformat()
    return day, f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}"


def _parse_rfc2822(text: str):
    if not re.search(r"[A-Za-z]{3}", text):
        return None
    try:
        dt = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.date(), dt.replace(microsecond=0).isoformat()
    return dt.date(), dt.replace(microsecond=0).isoformat()


def url_date(url: str, now: datetime | None = None) -> str | None:
    """A full day (year, month and day) written in the URL's path, or None."""
    now = now or datetime.now(timezone.utc)
    if not url:
        return None
    # the path and query only: a host like 2026-news.example is not a date
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    if slash < 0:
        return None
    path = rest[slash:]
    for pattern in _URL_DATES:
        for m in pattern.finditer(path):
            day = _mk(m["y"], m["m"], m["d"])
            if day is not None and _valid(day, now):
                return day.isoformat()
    return None


# --- the page -------------------------------------------------------------------------------
def as_tree(tree_or_html):
    if tree_or_html is None:
        return None
    if isinstance(tree_or_html, (str, bytes)):
        if not tree_or_html.strip():
            return None
        from lxml import html as lxml_html

        try:
            return lxml_html.fromstring(tree_or_html)
        except Exception:  # lxml raises a zoo of errors on broken documents
            return None
    return tree_or_html


def ld_types(obj: dict) -> set[str]:
    value = obj.get("@type")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return set()
    return {v.rsplit("/", 1)[-1].lower() for v in value if isinstance(v, str)}


def jsonld_objects(tree) -> list[dict]:
    """Top-level JSON-LD objects of the page, ``@graph`` members flattened in."""
    out: list[dict] = []
    for script in tree.iterfind(".//script"):
        kind = (script.get("type") or "").lower()
        if "ld+json" not in kind:
            continue
        raw = (script.text or "").strip()
        if not raw:
            continue
        data = _loads(raw)
        if data is None:
            continue
        stack = data if isinstance(data, list) else [data]
        for item in stack:
            if not isinstance(item, dict):
                continue
            out.append(item)
            graph = item.get("@graph")
            if isinstance(graph, list):
                out.extend(g for g in graph if isinstance(g, dict))
            elif isinstance(graph, dict):
                out.append(graph)
    return out


def _loads(raw: str):
    if raw.startswith("<!--"):
        raw = raw[4:]
    if raw.endswith("-->"):
        raw = raw[:-3]
    raw = raw.strip().rstrip(";")
    try:
        return json.loads(raw, strict=False)
    except ValueError:
        pass
    # common breakage: raw newlines/tabs in strings, trailing commas
    fixed = re.sub(r",\s*([}\]])", r"\1", raw.replace("\n", " ").replace("\t", " "))
    try:
        return json.loads(fixed, strict=False)
    except ValueError:
        return None


def jsonld_date(objects: list[dict], now: datetime) -> str | None:
    article_dates, page_dates = [], []
    for obj in objects:
        types = ld_types(obj)
        candidates = [obj]
        # an article nested as the page's main entity
        main = obj.get("mainEntity")
        if isinstance(main, dict):
            candidates.append(main)
        for cand in candidates:
            ctypes = ld_types(cand) if cand is not obj else types
            value = cand.get("datePublished") or cand.get("dateCreated")
            if value is None:
                continue
            if isinstance(value, list):
                value = value[0] if value else None
            parsed = parse_date_value(value, now)
            if parsed is None:
                continue
            if ctypes & ARTICLE_TYPES:
                article_dates.append(parsed)
            elif ctypes & _PAGE_TYPES:
                page_dates.append(parsed)
    if article_dates:
        return article_dates[0]
    if page_dates:
        return page_dates[0]
    return None


def meta_date(tree, now: datetime) -> str | None:
    best_rank, best = len(META_KEYS), None
    head_and_body = tree.iterfind(".//meta")
    for meta in head_and_body:
        content = meta.get("content")
        if content is None:
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            key = meta.get(attr)
            if not key:
                continue
            key = key.strip().lower()
            if key == "parsely-page":
                data = _loads(content)
                if isinstance(data, dict):
                    key, content = "parsely-pub-date", data.get("pub_date") or ""
            rank = _META_RANK.get(key)
            if rank is not None and rank < best_rank:
                parsed = parse_date_value(content, now)
                if parsed is not None:
                    best_rank, best = rank, parsed
                    break
    return best


_PUB_CLASS = re.compile(r"publish|pubdate|posted|post-date|entry-date|article-date|date-published|dateline|byline", re.I)
_NOT_PUB_CLASS = re.compile(r"modif|updat|comment|related|footer|sidebar|widget|teaser|card", re.I)


def body_date(tree, now: datetime) -> str | None:
    """Microdata datePublished, then <time pubdate>, then a <time> marked as the publication date."""
    for el in tree.xpath("//*[@itemprop]"):  # XPath, not iterfind: attribute tests run in C
        if (el.get("itemprop") or "").strip().lower() != "datepublished" or el.tag == "meta":
            continue
        parsed = parse_date_value(el.get("datetime") or el.get("content") or (el.text or ""), now)
        if parsed:
            return parsed
    times = [t for t in tree.iterfind(".//time") if t.get("datetime")]
    for t in times:
        if t.get("pubdate") is not None:
            parsed = parse_date_value(t.get("datetime"), now)
            if parsed:
                return parsed
    for t in times:
        marks = " ".join(filter(None, (t.get("class"), t.get("id"))))
        parent = t.getparent()
        if parent is not None:
            marks += " " + " ".join(filter(None, (parent.get("class"), parent.get("id"))))
        if _PUB_CLASS.search(marks) and not _NOT_PUB_CLASS.search(marks):
            parsed = parse_date_value(t.get("datetime"), now)
            if parsed:
                return parsed
    # the first <time> of the page's only <article> that is not marked as an update, a comment ...
    articles = list(tree.iterfind(".//article"))
    if len(articles) == 1:
        for t in articles[0].iterfind(".//time"):
            if t.get("datetime"):
                marks = " ".join(filter(None, (t.get("class"), (t.getparent().get("class") if t.getparent() is not None else None))))
                if _NOT_PUB_CLASS.search(marks):
                    continue
                return parse_date_value(t.get("datetime"), now)
    return None


def _day(iso: str | None) -> str | None:
    return iso[:10] if iso else None


def resolve_published(
    tree_or_html,
    url: str,
    trafilatura_date: str | None = None,
    hints: dict | None = None,
    now: datetime | None = None,
) -> tuple[str | None, str | None]:
    """(published, source) for a page; source is jsonld, meta, page, feed, sitemap or url.

    ``tree_or_html``: an lxml tree of the page (reused, not modified) or its HTML text;
    ``trafilatura_date``: the ``date`` trafilatura returned; ``hints``: the feed/sitemap
    ``{"published": ISO, "published_source": "feed"|"sitemap"}``; ``now``: for tests.
    """
    now = now or datetime.now(timezone.utc)
    hints = hints or {}
    tree = as_tree(tree_or_html)
    if tree is not None:
        try:
            objects = jsonld_objects(tree)
        except Exception:  # never let a date fail the page
            objects = []
        for source, finder in (("jsonld", lambda: jsonld_date(objects, now)), ("meta", lambda: meta_date(tree, now)), ("page", lambda: body_date(tree, now))):
            try:
                found = finder()
            except Exception:
                found = None
            if found:
                return found, source

    hinted = parse_date_value(hints.get("published"), now) if hints.get("published") else None
    hint_source = hints.get("published_source")
    if hint_source not in ("feed", "sitemap"):
        hint_source = "feed" if hint_source is None else "sitemap" if "sitemap" in str(hint_source) else "feed"
    from_url = url_date(url, now)

    heuristic = parse_date_value(trafilatura_date, now) if trafilatura_date else None
    if heuristic:
        today = now.date().isoformat()
        other = _day(hinted) or from_url
        if not (_day(heuristic) == today and other and other < today):
            return heuristic, "page"
    if hinted:
        return hinted, hint_source
    if from_url:
        return from_url, "url"
    return None, None
