"""URL canonicalisation and the page-level canonical link.

``canonical_url`` is applied to every URL before anything else (dedup, seen-checks,
storage): scheme and host lower-cased, default ports and fragments dropped, tracking
parameters (utm_*, fbclid, gclid, ref, ...) removed, the remaining query sorted.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import courlan
from courlan.clean import TRACKERS_RE
from scrapy.exceptions import IgnoreRequest
from w3lib.url import canonicalize_url

__all__ = ["canonical_url", "page_canonical", "hostname", "same_site", "is_public_address", "origin", "RefusedAddress"]


class RefusedAddress(IgnoreRequest):
    """A request to a non-public address or a non-http(s) URL, refused by NetworkSafetyMiddleware."""

# <link rel="canonical" href="..."> and <meta property="og:url" content="...">, any attribute order
_TAG = re.compile(rb"<(link|meta)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(rb"""([a-zA-Z:_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_HEAD_END = re.compile(rb"</head\s*>|<body\b", re.IGNORECASE)


def canonical_url(url: str) -> str:
    """The canonical form of ``url`` (idempotent)."""
    url = url.strip()
    parts = urlsplit(url)
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKERS_RE.search(k.lower())],
        doseq=True,
    )
    url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))
    url = canonicalize_url(url, keep_fragments=False)
    return courlan.normalize_url(url, strict=False)


def hostname(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def same_site(a: str, b: str) -> bool:
    """True when both URLs are on the same host (ignoring a leading www.)."""
    return hostname(a) == hostname(b)


def page_canonical(body: bytes, base_url: str) -> str | None:
    """The page's own canonical URL from rel=canonical, else og:url, looking only at <head>.

    Cheap enough to run on the reactor (a regex over the head, no DOM). Returns None
    when the page names none, or names one on another site (syndication partners often
    point at the original: that is grouping's job, not a reason to skip a fetch).
    """
    head_end = _HEAD_END.search(body, 0, 200_000)
    head = body[: head_end.start() if head_end else 200_000]
    canonical = og_url = None
    for tag in _TAG.finditer(head):
        attrs = {}
        for m in _ATTR.finditer(tag.group(0)):
            attrs[m.group(1).lower()] = (m.group(2) or m.group(3) or m.group(4) or b"").strip()
        if tag.group(1).lower() == b"link" and b"canonical" in attrs.get(b"rel", b"").lower().split():
            canonical = canonical or attrs.get(b"href")
        elif tag.group(1).lower() == b"meta" and attrs.get(b"property", b"").lower() == b"og:url":
            og_url = og_url or attrs.get(b"content")
    for found in (canonical, og_url):
        if not found:
            continue
        try:
            absolute = urljoin(base_url, found.decode("utf-8", "replace").replace("&amp;", "&"))
        except ValueError:
            continue
        if urlsplit(absolute).scheme in ("http", "https") and same_site(absolute, base_url):
            return canonical_url(absolute)
    return None


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local (cloud metadata), multicast, reserved and unspecified IPs."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port
