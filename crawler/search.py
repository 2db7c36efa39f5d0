"""News-search sources: run a topic's query on Google News, Bing News and GDELT.

Pure functions only (query translation, URL building, response parsing, link
resolution); the spider does the fetching. Each service's base URL is a setting
(``NEWS_GOOGLE_NEWS_URL``, ``NEWS_BING_NEWS_URL``, ``NEWS_GDELT_URL``) so tests can point
them at 127.0.0.1.

Translation may broaden a query (drop a NOT, flatten what a service cannot express) but
never narrows it: every article found is matched against the real query after extraction.

Service limits (documented by the services; respected through per-service download slots
spaced by NEWS_SEARCH_DELAYS, see SearchSources.update_settings in crawler/spiders/search_sources.py):
- Google News RSS: about 100 items per query, no paging; ``when:Nd`` limits recency.
  Items link through news.google.com; the publisher URL is decoded from the link where
  its (pre-July 2024) format allows. Newer ids are opaque: the spider fetches the link's
  article page for a signature and timestamp (``google_signature``), then asks Google's
  undocumented batchexecute RPC for the URL (``google_batchexecute_body``,
  ``parse_google_batchexecute``); an article page answering with a redirect is followed.
- Bing News RSS: about 25 items per request (``count`` up to 100 is honoured at times);
  the publisher URL is the ``url`` parameter of each click-through link.
- GDELT DOC 2.0: ``maxrecords`` at most 250, ``timespan`` at most 3 months, and about
  one request every 5 seconds (its plain-text "limit requests" answer: SearchRateLimited,
  asked again by the spider); OR-groups must be in parentheses and cannot nest; keywords it
  finds too short are refused with a plain-text error.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from parsel import Selector

from crawler.discovery import Candidate, parse_feed
from crawler.query import Query, _And, _Not, _Or, _Term
from crawler.urls import origin

__all__ = [
    "SERVICES", "DEFAULT_DELAYS", "SearchResult", "SearchResponseError", "SearchRateLimited", "translate", "search_url", "parse_results",
    "resolve_google_link", "google_article_id", "google_article_page_url", "google_batchexecute_url",
    "google_signature", "google_batchexecute_body", "parse_google_batchexecute", "is_google_url", "bing_publisher_url",
    "GOOGLE_FORM_CONTENT_TYPE",
]

SERVICES = ("google_news", "bing_news", "gdelt")
# seconds between two requests to a service (NEWS_SEARCH_DELAYS overrides): GDELT asks for
# one request every 5 seconds; Google and Bing publish no rate, 1 s stays clear of captchas
DEFAULT_DELAYS = {"google_news": 1.0, "bing_news": 1.0, "gdelt": 5.0}


class SearchResponseError(ValueError):
    """A search service answered with something that is not its documented format."""


class SearchRateLimited(SearchResponseError):
    """The service asked us to slow down in its answer's body (GDELT answers "Please limit
    requests to one every 5 seconds ..." as plain text with status 200)."""


@dataclass(frozen=True)
class SearchResult(Candidate):
    """A candidate with what the service said about it beyond title and date (GDELT)."""

    language: str | None = None  # ISO 639-1 code
    domain: str | None = None  # the publisher's domain, as the service names it


# GDELT names languages in English ("English", "Chinese"); the store keeps ISO 639-1 codes
# like trafilatura's. GDELT's 65 source languages:
_GDELT_LANGUAGES = dict(
    pair.split(":")
    for pair in (
        "afrikaans:af albanian:sq arabic:ar armenian:hy azerbaijani:az bengali:bn bosnian:bs bulgarian:bg "
        "catalan:ca chinese:zh croatian:hr czech:cs danish:da dutch:nl english:en estonian:et finnish:fi "
        "french:fr galician:gl georgian:ka german:de greek:el gujarati:gu hebrew:he hindi:hi hungarian:hu "
        "icelandic:is indonesian:id italian:it japanese:ja kannada:kn kazakh:kk korean:ko latvian:lv "
        "lithuanian:lt macedonian:mk malay:ms malayalam:ml marathi:mr mongolian:mn nepali:ne norwegian:no "
        "persian:fa polish:pl portuguese:pt punjabi:pa romanian:ro russian:ru serbian:sr sinhalese:si "
        "slovak:sk slovenian:sl somali:so spanish:es swahili:sw swedish:sv tamil:ta telugu:te thai:th "
        "tibetan:bo turkish:tr ukrainian:uk urdu:ur vietnamese:vi"
    ).split()
)


# --- query translation ---------------------------------------------------------------


def _quote_term(node: _Term) -> str:
    text = " ".join(node.words)
    return f'"{text}"' if len(node.words) > 1 else text


def _google(node, top: bool = True) -> str:
    """Google News / Bing syntax: space = AND, OR, -term, "phrase", (groups)."""
    if isinstance(node, _Term):
        return _quote_term(node)
    if isinstance(node, _Not):
        return _negated(node.child)
    if isinstance(node, _And):
        joined = " ".join(p for p in (_google(c, False) for c in node.children) if p)
        return joined if top else f"({joined})"
    parts = [_google(c, False) for c in node.children]
    joined = " OR ".join(p for p in parts if p)
    return joined if top else f"({joined})"


def _negated(node) -> str:
    """NOT term -> -term; NOT (a OR b) -> -a -b (De Morgan, for terms); any other NOT group
    is dropped (broader, never narrower)."""
    if isinstance(node, _Term):
        return "-" + _quote_term(node)
    if isinstance(node, _Or) and all(isinstance(c, _Term) for c in node.children):
        return " ".join("-" + _quote_term(c) for c in node.children)
    return ""


def _gdelt_terms(node) -> list[str]:
    """All positive terms under ``node``, for a flat OR-group."""
    if isinstance(node, _Term):
        return [_quote_term(node)]
    if isinstance(node, _Not):
        return []
    out: list[str] = []
    for child in node.children:
        out.extend(_gdelt_terms(child))
    return out


def _gdelt(node) -> str:
    """GDELT: space = AND, (a OR b) groups that cannot nest, -term or -"phrase"."""
    if isinstance(node, _Term):
        return _quote_term(node)
    if isinstance(node, _Not):
        return _negated(node.child)
    if isinstance(node, _Or):
        terms = list(dict.fromkeys(_gdelt_terms(node)))  # nested structure flattened: broader
        return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"
    parts = [p for p in (_gdelt(c) for c in node.children) if p]
    return " ".join(parts)


def translate(query: Query, service: str) -> str:
    """The topic query in ``service``'s syntax."""
    if service in ("google_news", "bing_news"):
        return _google(query.root)
    if service == "gdelt":
        return _gdelt(query.root)
    raise ValueError(f"unknown search service {service!r}; known: {', '.join(SERVICES)}")


# --- request URLs --------------------------------------------------------------------


def search_url(service: str, base: str, query: str, *, max_age_days: int = 0, locale: tuple[str, str] = ("en-US", "US")) -> str:
    """The search request URL for ``service`` on ``base`` (scheme + host [+ port])."""
    base = base.rstrip("/")
    if service == "google_news":
        hl, gl = locale
        if max_age_days:
            # "a OR b when:7d" would scope only b: the recency operator must apply to all of it
            q = f"({query}) when:{max_age_days}d" if _top_level_or(query) else f"{query} when:{max_age_days}d"
        else:
            q = query
        return f"{base}/rss/search?" + urlencode({"q": q, "hl": hl, "gl": gl, "ceid": f"{gl}:{hl.split('-')[0]}"}, quote_via=quote)
    if service == "bing_news":
        return f"{base}/news/search?" + urlencode({"q": query, "format": "rss", "count": 100}, quote_via=quote)
    if service == "gdelt":
        days = min(max_age_days or 90, 90)
        params = {"query": query, "mode": "artlist", "format": "json", "maxrecords": 250, "timespan": f"{days}d", "sort": "datedesc"}
        return f"{base}/api/v2/doc/doc?" + urlencode(params, quote_via=quote)
    raise ValueError(f"unknown search service {service!r}")


def _top_level_or(query: str) -> bool:
    """True when ``query`` (Google syntax) has an OR outside parentheses and quotes."""
    depth, quoted = 0, False
    for token in re.findall(r'"|\(|\)|[^\s()"]+', query):
        if token == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif token == "(":
            depth += 1
        elif token == ")":
            depth = max(0, depth - 1)
        elif token == "OR" and depth == 0:
            return True
    return False


# --- responses -----------------------------------------------------------------------


def parse_results(service: str, body: bytes, url: str) -> list[Candidate]:
    """Candidates from a search response ([] for no results); SearchResponseError if malformed."""
    if service in ("google_news", "bing_news"):
        head = body[:2000].lower()
        if b"<rss" not in head and b"<feed" not in head:
            raise SearchResponseError("not an RSS document")
        return parse_feed(body, url)
    if service == "gdelt":
        return _parse_gdelt(body)
    raise ValueError(f"unknown search service {service!r}")


def _parse_gdelt(body: bytes) -> list[Candidate]:
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return []  # GDELT answers no results with an empty body or {}
    doc = _lenient_json(text)
    if doc is None:
        if _GDELT_SLOW_DOWN.search(text[:500]):
            raise SearchRateLimited(f"asked to slow down: {text[:200]!r}")
        # GDELT reports query errors as plain text, e.g. "The specified phrase is too short."
        raise SearchResponseError(f"not JSON: {text[:200]!r}")
    if not isinstance(doc, dict):
        raise SearchResponseError("not a JSON object")
    articles = doc.get("articles", [])
    if not isinstance(articles, list):
        raise SearchResponseError("'articles' is not a list")
    out = []
    for article in articles:
        if not isinstance(article, dict) or not isinstance(article.get("url"), str):
            continue
        if urlsplit(article["url"]).scheme not in ("http", "https"):
            continue
        title = article.get("title") if isinstance(article.get("title"), str) else None
        domain = article.get("domain") if isinstance(article.get("domain"), str) else None
        published = _gdelt_date(article.get("seendate"))
        out.append(SearchResult(article["url"], title, published, _gdelt_language(article.get("language")), domain or None))
    return out


_GDELT_SLOW_DOWN = re.compile(r"limit requests|too many requests|rate limit", re.I)
_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


def _repair_escape(match: re.Match) -> str:
    """A backslash pair kept if it is a JSON escape (\\u with its four hex digits), else the
    backslash escaped itself."""
    kept = match.group(1)
    return match.group(0) if kept in '"\\/bfnrt' or len(kept) == 5 else "\\\\" + kept


def _lenient_json(text: str):
    """``text`` parsed as JSON, tolerating what GDELT is known to emit (raw control characters
    and stray backslashes such as ``\\e`` inside strings); None if it is not JSON at all."""
    for repair in (False, True):
        try:
            return json.loads(_JSON_ESCAPE.sub(_repair_escape, text) if repair else text, strict=False)
        except (ValueError, RecursionError):
            continue
    return None


def _gdelt_language(value) -> str | None:
    """ISO 639-1 code for GDELT's language name (or a code it already gives); None if unknown."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if value in _GDELT_LANGUAGES:
        return _GDELT_LANGUAGES[value]
    return value if re.fullmatch(r"[a-z]{2}", value) else None


def _gdelt_date(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


# --- link resolution -----------------------------------------------------------------

_URL_IN_BYTES = re.compile(rb"https?://[\x21-\x7e]+")


def resolve_google_link(link: str) -> str | None:
    """The publisher URL encoded in a news.google.com /rss/articles/<id> link, if decodable.

    Older ids are URL-safe base64 of a small protobuf holding the URL; newer ids hold an
    opaque token (None here: the spider then resolves it through Google, see below).
    """
    path = urlsplit(link).path
    if "/articles/" not in path:
        return None
    token = path.rsplit("/", 1)[-1]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    start = raw.find(b"http")
    if start < 1:
        return None
    # a protobuf string: a varint length (1 or 2 bytes) right before it
    length = raw[start - 1]
    if length >= 0x80 or (start >= 2 and raw[start - 2] >= 0x80):
        if start < 2:
            return None
        length = (raw[start - 2] & 0x7F) | (raw[start - 1] << 7)
    candidate = raw[start : start + length]
    if len(candidate) != length or not _URL_IN_BYTES.fullmatch(candidate):
        return None
    url = candidate.decode("ascii")
    if urlsplit(url).hostname in (None, "news.google.com"):
        return None
    return url


# Ids in the format Google News uses since July 2024 (their payload begins with "AU_yqL")
# hold no URL. Google's web app resolves them with an undocumented RPC, which may change
# without notice (the spider then counts the links as unresolved):
# 1. GET <base>/rss/articles/<id>: an HTML page whose element with data-n-a-sg (signature)
#    and data-n-a-ts (timestamp) attributes authorises step 2;
# 2. POST <base>/_/DotsSplashUi/data/batchexecute, form field f.req (see
#    google_batchexecute_body); the answer is ")]}'", a blank line, then JSON holding
#    ["wrb.fr", "Fbv4je", "<JSON string: [\"garturlres\", \"<publisher URL>\", ...]>", ...].

GOOGLE_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
_GOOGLE_ID = re.compile(r"[A-Za-z0-9_-]+")
_DIGITS = re.compile(r"[0-9]{1,20}")


def google_article_id(link: str) -> str | None:
    """The id of a news.google.com ``/rss/articles/<id>`` (or ``/articles/<id>``) link, or None."""
    try:
        segments = urlsplit(link).path.split("/")
    except ValueError:
        return None
    if len(segments) >= 2 and segments[-2] == "articles" and _GOOGLE_ID.fullmatch(segments[-1]):
        return segments[-1]
    return None


def google_article_page_url(base: str, article_id: str) -> str:
    """Step 1: the article page of ``article_id`` on ``base`` (it carries the signature)."""
    return f"{base.rstrip('/')}/rss/articles/{article_id}"


def google_batchexecute_url(base: str) -> str:
    """Step 2: the RPC endpoint on ``base``."""
    return f"{base.rstrip('/')}/_/DotsSplashUi/data/batchexecute"


def google_signature(body: bytes | str) -> tuple[str, int] | None:
    """(signature, timestamp) from an article page's data-n-a-sg / data-n-a-ts attributes, or None."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not text.strip():
        return None
    for node in Selector(text=text, type="html").xpath("//*[@data-n-a-sg and @data-n-a-ts]"):
        signature, timestamp = node.attrib["data-n-a-sg"].strip(), node.attrib["data-n-a-ts"].strip()
        if signature and _DIGITS.fullmatch(timestamp):
            return signature, int(timestamp)
    return None


def google_batchexecute_body(article_id: str, timestamp: int, signature: str, ceid: str = "US:en") -> bytes:
    """The form body (``f.req=<json>``) of the step 2 POST, to send as GOOGLE_FORM_CONTENT_TYPE."""
    # the placeholders ("X") are what Google's web app sends where it names its client
    client = ["X", "X", ["X", "X"], None, None, 1, 1, ceid, None, 1, None, None, None, None, None, 0, 1]
    inner = ["garturlreq", [client, "X", "X", 1, [1, 1, 1], 1, 1, None, 0, 0, None, 0], article_id, timestamp, signature]
    outer = [[["Fbv4je", json.dumps(inner, separators=(",", ":")), None, "generic"]]]
    return urlencode({"f.req": json.dumps(outer, separators=(",", ":"))}).encode("ascii")


def _json_chunks(text: str) -> list:
    """The JSON values in ``text``, one after another (batchexecute may prefix chunks with their length)."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return values
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            if values:
                return values  # trailing garbage after the answer
            raise SearchResponseError(f"not JSON after the )]}}' prefix: {text[pos:pos + 100]!r}") from None
        values.append(value)


def parse_google_batchexecute(body: bytes) -> str:
    """The publisher URL in a batchexecute answer; SearchResponseError saying what is wrong."""
    text = body.decode("utf-8", "replace").lstrip()
    if not text.startswith(")]}'"):
        raise SearchResponseError(f"not a batchexecute answer (no )]}}' prefix): {text[:100]!r}")
    for chunk in _json_chunks(text[4:]):
        for entry in chunk if isinstance(chunk, list) else ():
            if not (isinstance(entry, list) and len(entry) > 2 and entry[:2] == ["wrb.fr", "Fbv4je"]):
                continue
            if not isinstance(entry[2], str):
                raise SearchResponseError("the Fbv4je answer carries no result (Google refused the request)")
            try:
                result = json.loads(entry[2])
            except (ValueError, RecursionError):
                raise SearchResponseError(f"the Fbv4je result is not JSON: {entry[2][:100]!r}") from None
            if not (isinstance(result, list) and len(result) > 1 and result[0] == "garturlres" and isinstance(result[1], str)):
                raise SearchResponseError(f"no garturlres URL in the Fbv4je result: {entry[2][:100]!r}")
            url = result[1].strip()
            try:
                parts = urlsplit(url)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            except ValueError:
                ok = False
            if not ok:
                raise SearchResponseError(f"not an http(s) URL: {url[:200]!r}")
            return url
    raise SearchResponseError("no Fbv4je answer in the response")


def is_google_url(url: str, base: str) -> bool:
    """True when ``url`` is on Google's own hosts (the service's ``base`` origin or *.google.com,
    e.g. a consent page): not a publisher's page."""
    try:
        key = origin(url)
    except ValueError:
        return True
    return key == origin(base) or key[1] == "google.com" or key[1].endswith(".google.com")


def bing_publisher_url(link: str, base: str = "https://www.bing.com") -> str | None:
    """The ``url`` parameter of a Bing News click-through link (on bing.com or the service's
    ``base``), or the link itself if it points straight at a publisher."""
    parts = urlsplit(link)
    host = (parts.hostname or "").lower()
    try:
        on_base = origin(link) == origin(base)
    except ValueError:
        on_base = False
    if on_base or host == "bing.com" or host.endswith(".bing.com"):
        values = parse_qs(parts.query).get("url")
        if values and urlsplit(values[0]).scheme in ("http", "https"):
            return values[0]
        return None
    return link if parts.scheme in ("http", "https") else None
