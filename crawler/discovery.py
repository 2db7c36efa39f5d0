"""Pure parsers for discovery: feeds, sitemaps, robots.txt and listing pages.

No network here: each function takes bytes and returns candidates, so it can be tested
and fuzzed on its own. The spider does the fetching.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXParseException

import courlan
import feedparser
import lxml.etree
from scrapy.utils.gz import gunzip

from crawler.urls import same_site

logger = logging.getLogger(__name__)

__all__ = [
    "Candidate",
    "SitemapDoc",
    "FeedDoc",
    "parse_feed",
    "read_feed",
    "parse_sitemap",
    "sitemaps_from_robots",
    "looks_like_article_url",
    "looks_like_feed",
    "parse_date",
]


@dataclass(frozen=True)
class Candidate:
    """A URL that may be an article, with what its source said about it."""

    url: str
    title: str | None = None
    published: datetime | None = None  # timezone-aware (UTC) when known


@dataclass(frozen=True)
class SitemapDoc:
    kind: str  # "urlset" | "sitemapindex" | "unknown"
    entries: tuple[Candidate, ...]  # for an index: the child sitemaps
    truncated: bool = False  # capped at max_urls
    cut: bool = False  # the document ends mid-element: only the entries complete before the cut are kept
    broken: str | None = None  # why the parser stopped before the document's end (its later entries are lost)


@dataclass(frozen=True)
class FeedDoc:
    entries: list[Candidate]
    cut: bool = False  # the document ends mid-element (a truncated download): the complete items are kept


def parse_date(value: object) -> datetime | None:
    """A timezone-aware datetime from ISO 8601 / RFC 3339 text, a struct_time, or None."""
    if value is None:
        return None
    if hasattr(value, "tm_year"):
        try:
            return datetime(*value[:6], tzinfo=timezone.utc)
        except (TypeError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:  # RFC 822, as in RSS and HTTP headers
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _absolute(base: str, link: str) -> str | None:
    """``link`` made absolute against ``base`` if it is an http(s) URL, else None (never raises)."""
    try:
        url = urljoin(base, link.strip())
        return url if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname else None
    except ValueError:  # e.g. "Invalid IPv6 URL"
        return None


# --- feeds --------------------------------------------------------------------------


def parse_feed(body: bytes, url: str) -> list[Candidate]:
    """Entries of an RSS 0.9x/1.0/2.0, Atom or JSON Feed document, in document order.

    Duplicate links (the same URL twice in one feed) are returned once.
    """
    return read_feed(body, url).entries


def read_feed(body: bytes, url: str) -> FeedDoc:
    """parse_feed's entries, and whether the document was cut short (``cut``)."""
    stripped = body.lstrip()
    cut = False
    if stripped[:1] in (b"{", b"["):
        candidates = _parse_json_feed(stripped, url)
    else:
        candidates, cut = _parse_xml_feed(body, url)
    seen: set[str] = set()
    unique = []
    for c in candidates:
        if c.url not in seen:
            seen.add(c.url)
            unique.append(c)
    return FeedDoc(unique, cut)


# what expat says when the document ends before its elements do (a truncated download); other
# faults (an undefined &nbsp; in a title) are common in real feeds and cost nothing
_CUT_MESSAGES = ("no element found", "unclosed token")


def looks_like_feed(body: bytes) -> bool:
    """Whether ``body`` starts like an RSS, RDF, Atom or JSON feed (even an empty one)."""
    head = body[:4000].lstrip().lower()
    if head[:1] == b"{":
        return b'"version"' in head or b'"items"' in head
    return any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf", b"<rdf"))


def _parse_xml_feed(body: bytes, url: str) -> tuple[list[Candidate], bool]:
    parsed = feedparser.parse(BytesIO(body), response_headers={"content-location": url}, sanitize_html=False)
    problem = parsed.get("bozo_exception")
    cut = isinstance(problem, SAXParseException) and problem.getMessage() in _CUT_MESSAGES
    out = []
    for entry in parsed.entries:
        link = entry.get("link") or _first_alternate(entry)
        if not link:
            continue
        link = _absolute(url, link)
        if link is None:
            continue
        # plain dict look-ups: FeedParserDict maps a missing published_parsed to updated_parsed with a warning
        published = parse_date(dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed"))
        out.append(Candidate(link, (entry.get("title") or "").strip() or None, published))
    return out, cut


def _first_alternate(entry) -> str | None:
    for link in entry.get("links", []):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link["href"]
    return None


def _parse_json_feed(body: bytes, url: str) -> list[Candidate]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        return []
    out = []
    for item in doc["items"]:
        if not isinstance(item, dict):
            continue
        link = item.get("url") or item.get("external_url")
        if not link and isinstance(item.get("id"), str) and item["id"].startswith(("http://", "https://")):
            link = item["id"]
        if not isinstance(link, str):
            continue
        link = _absolute(url, link)
        if link is None:
            continue
        title = item.get("title") if isinstance(item.get("title"), str) else None
        published = parse_date(item.get("date_published") or item.get("date_modified"))
        out.append(Candidate(link, (title or "").strip() or None, published))
    return out


# --- sitemaps -----------------------------------------------------------------------


_BARE_AMPERSAND = re.compile(rb"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9a-fA-F]+);)")


def parse_sitemap(body: bytes, url: str, max_urls: int = 50_000, max_size: int = 50 * 1024 * 1024) -> SitemapDoc:
    """Parse a sitemap, a sitemap index or a Google News sitemap (gzipped or not).

    Entities are never resolved and nothing is fetched (no XXE, no entity expansion).
    At most ``max_urls`` entries are returned; ``truncated`` says when more were there.
    A document cut short (a truncated download) keeps the entries that were complete
    before the cut; the half entry is dropped (its URL may be cut too) and ``cut`` is set.
    """
    if body[:2] == b"\x1f\x8b":
        try:
            body = gunzip(body, max_size=max_size)
        except Exception:  # corrupt or oversized archive
            return SitemapDoc("unknown", ())
    body = _BARE_AMPERSAND.sub(b"&amp;", body)  # "?a=1&b=2" unescaped is common and would end the parse
    parser = lxml.etree.XMLPullParser(
        events=("start", "end"),
        recover=True,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    kind = "unknown"
    entries: list[Candidate] = []
    truncated = cut = ended = False
    broken = None
    # fed in chunks, events read as they come: an element's "end" before close() means its
    # end tag was there; the ends that close() adds are the parser's recovery of a cut document
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] + [None]
    for chunk in chunks:
        try:
            if chunk is None:
                parser.close()
            else:
                parser.feed(chunk)
        except lxml.etree.XMLSyntaxError as exc:  # broken document: keep what was read
            if chunk is not None and broken is None:
                broken = str(exc)[:200]
        for event, elem in parser.read_events():
            name = _local(elem.tag)
            if event == "start":
                if kind == "unknown" and name in ("urlset", "sitemapindex"):
                    kind = name
                continue
            if chunk is None:
                cut = True  # closed by recovery, not by its end tag
                continue
            if name == kind:
                ended = True
            if name not in ("url", "sitemap"):
                continue
            candidate = _sitemap_entry(elem, url)
            elem.clear()
            if candidate is None:
                continue
            if len(entries) >= max_urls:
                truncated = True
                break
            entries.append(candidate)
        if truncated:
            break
    if truncated or cut:
        broken = None  # said by those flags
    elif kind != "unknown" and not ended:
        # no end tag and nothing for recovery to close: libxml2 gave up silently (its entity
        # amplification limit, corrupt bytes), so entries after that point are lost
        broken = broken or "the parser stopped before the end of the document"
    return SitemapDoc(kind, tuple(entries), truncated, cut, broken)


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _sitemap_entry(elem, base: str) -> Candidate | None:
    loc = lastmod = news_date = news_title = None
    for child in elem.iter():
        name = _local(child.tag)
        text = (child.text or "").strip()
        if name == "loc" and loc is None:
            loc = text
        elif name == "lastmod":
            lastmod = text
        elif name == "publication_date":
            news_date = text
        elif name == "title" and child is not elem:
            news_title = text
    if not loc:
        return None
    loc = _absolute(base, loc)
    if loc is None:
        return None
    return Candidate(loc, news_title or None, parse_date(news_date) or parse_date(lastmod))


def sitemaps_from_robots(body: bytes, base: str) -> list[str]:
    """``Sitemap:`` lines of a robots.txt file, as absolute URLs."""
    out = []
    for line in body.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "sitemap" and value.strip():
            url = _absolute(base, value)
            if url:
                out.append(url)
    return list(dict.fromkeys(out))


# --- listing pages ------------------------------------------------------------------

_NOT_ARTICLE_SEGMENTS = re.compile(
    r"^(tags?|topics?|category|categories|section|sections|author|authors|page|search|about|contact|"
    r"login|signin|register|subscribe|newsletter|feed|rss|privacy|terms|cookies?|help|faq|shop|store|"
    r"video|videos|podcasts?|gallery|events|jobs|careers|advertise|archive|archives)$",
    re.IGNORECASE,
)


def looks_like_article_url(url: str, source: str) -> bool:
    """Whether a link found on listing page ``source`` plausibly leads to an article.

    Same site only; no navigation, tag, author, pagination or utility pages; the last
    path segment must look like a slug or an id (a hyphenated title, digits or .html).
    """
    if not same_site(url, source):
        return False
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    source_path = urlsplit(source).path.rstrip("/")
    path = parts.path.rstrip("/")
    if not path or path == source_path:
        return False
    if courlan.is_navigation_page(url) or courlan.is_not_crawlable(url):
        return False
    segments = [s for s in path.split("/") if s]
    if any(_NOT_ARTICLE_SEGMENTS.match(s) for s in segments):
        return False
    if re.search(r"\.(jpe?g|png|gif|svg|webp|pdf|zip|mp[34]|css|js|xml|json)$", path, re.IGNORECASE):
        return False
    last = re.sub(r"\.(s?html?|php|aspx?)$", "", segments[-1], flags=re.IGNORECASE)
    return last.count("-") >= 2 or bool(re.search(r"\d{4,}", last)) or segments[-1].lower().endswith((".html", ".htm"))
