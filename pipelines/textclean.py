"""Post-filters of trafilatura's text: lines that are page furniture, not article text.

``clean_text(text, tree, url, title)`` works on the extracted text's lines and the page's
own lxml tree (read, not modified). It drops:

* the headline: among the first 3 lines, a line equal to the title (trafilatura's, og:title,
  twitter:title, an h1) or the start of the page's <title> ("Headline | Site"). The title
  is stored in its own field; article-body labels (Scrapinghub, WCXB, fundus) leave it out;
* runs of 2+ consecutive lines that are each the whole text of a link to another page of the
  same site ("related articles", "more from", card lists); a single link line stays (a "Read
  more" line inside the text), and links to a place on the page itself (a table of contents:
  ``#section``) do not count, since their texts are the article's own headings;
* short lines (<= 100 characters) that start with a share / subscribe / newsletter /
  copyright / "related articles" / "advertisement" phrase;
* copied blocks: a run of 3+ consecutive lines (300+ characters) all seen earlier in the
  text (pages that carry the article twice, e.g. an AMP or print copy). Single repeated
  lines stay (interview questions, recipe steps).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from lxml import etree

from pipelines.detect import host_and_path

__all__ = ["clean_text", "clean_title", "page_text_chars", "paragraph_text_chars", "site_host"]

_MARK = re.compile(r"^\s*(?:[-•*·▪►]\s+)+")  # list-item markers trafilatura or the page put in front
_BOILER = re.compile(
    r"^(?:share(?: this| on| via| article| story|$)|tweet\b|follow us|subscribe\b|sign up\b|newsletter\b|"
    r"advertisement\b|sponsored\b|related(?: articles?| posts?| stories| content| reading|:|$)|recommended\b|"
    r"you may also like|more from\b|copyright\b|©|all rights reserved|thanks for signing up|sign in\b|log in\b|"
    r"download (?:the|our) app|print (?:this|article)|email (?:this|article)|order reprints|comments?\b)",
    re.I,
)
_TITLE_META = ("og:title", "twitter:title")


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _bare(line: str) -> str:
    return _norm(_MARK.sub("", line))


def _host(host: str) -> str:
    return host.lower().removeprefix("www.")


def site_host(url: str) -> str:
    """The page's host without www.; a loopback URL /<host>/<path> (how benchmarks and fixtures
    serve real pages, as pipelines/detect.py reads them) gives that first segment."""
    found = host_and_path(url or "")
    return _host(found[0]) if found else ""


def _same_site(href: str, host: str) -> bool:
    href = href.strip()
    if not (href.startswith("//") or "://" in href[:12]):
        return not href.lower().startswith(("mailto:", "tel:", "javascript:"))  # relative: same site
    other = _host(urlsplit(href).hostname or "")
    return bool(host) and (other == host or other.endswith("." + host) or host.endswith("." + other))


_PAGE_TEXT = etree.XPath(
    "//body//text()[not(ancestor::script or ancestor::style or ancestor::noscript or ancestor::template or ancestor::svg)]",
    smart_strings=False,
)
_PARAGRAPH_TEXT = etree.XPath("//p//text()", smart_strings=False)


def page_text_chars(tree) -> int:
    """Characters of visible text in <body> (whitespace collapsed), about 2-4 ms on a news page."""
    return sum(len(" ".join(t.split())) for t in _PAGE_TEXT(tree)) if tree is not None else 0


def paragraph_text_chars(tree) -> int:
    """Characters of text inside the page's <p> elements (whitespace collapsed): a cheap
    measure of how much prose the page holds, for checking a fast extraction."""
    return sum(len(" ".join(t.split())) for t in _PARAGRAPH_TEXT(tree)) if tree is not None else 0


def _title_forms(tree, title: str | None) -> tuple[set[str], str]:
    forms = {_norm(title or "")}
    html_title = ""
    if tree is not None:
        for meta in tree.iter("meta"):
            if (meta.get("property") or meta.get("name") or "").lower() in _TITLE_META:
                forms.add(_norm(meta.get("content") or ""))
        found = tree.find(".//title")
        if found is not None:
            html_title = _norm(found.text_content())
            forms.add(html_title)
        for i, h1 in enumerate(tree.iter("h1")):
            if i >= 5:
                break
            forms.add(_norm(h1.text_content()))
    forms.discard("")
    return forms, html_title


def _in_page(href: str, path: str) -> bool:
    """A link to a place on this same page (``#section``, ``/this/page#section``): a table of
    contents entry, whose text is the article's own heading."""
    href = href.strip()
    if href.startswith("#"):
        return True
    parts = urlsplit(href)
    return bool(parts.fragment) and (parts.path or "/").rstrip("/") == path.rstrip("/")


def _site_link_texts(tree, url: str, wanted: set[str]) -> set[str]:
    """The lines of ``wanted`` that are the whole text of a link to another page of the same site."""
    texts = set()
    if tree is not None and wanted:
        host, path = site_host(url), urlsplit(url or "").path
        for a in tree.iter("a"):
            text = _norm(a.text_content())
            # the href is checked only for texts that are lines (a few per page, not hundreds)
            href = a.get("href") or ""
            if text in wanted and text not in texts and _same_site(href, host) and not _in_page(href, path):
                texts.add(text)
    return texts


def _runs(flags: list[bool], min_run: int, lines: list[str] | None = None, min_chars: int = 0) -> set[int]:
    """Indices of runs of >= min_run consecutive True flags holding >= min_chars characters of ``lines``."""
    drop, i, n = set(), 0, len(flags)
    while i < n:
        if not flags[i]:
            i += 1
            continue
        j = i
        while j < n and flags[j]:
            j += 1
        if j - i >= min_run and (not min_chars or sum(len(lines[k]) for k in range(i, j)) >= min_chars):
            drop.update(range(i, j))
        i = j
    return drop


def clean_text(text: str, tree, url: str, title: str | None) -> str:
    """``text`` (trafilatura's, one block a line) without headline, link lists, share/subscribe
    lines and copied blocks. ``tree``: the page's lxml tree, read only."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return ""
    bare = [_bare(line) for line in lines]

    # 1. the headline
    forms, html_title = _title_forms(tree, title)
    keep = [True] * len(lines)
    for i in range(min(3, len(lines))):
        if bare[i] and (bare[i] in forms or (len(bare[i]) >= 20 and html_title.startswith(bare[i]))):
            keep[i] = False

    # 2. runs of same-site link texts
    links = _site_link_texts(tree, url, {b for b in bare if b})
    for i in _runs([bool(b) and b in links for b in bare], 2):
        keep[i] = False

    # 3. short share / subscribe / copyright lines
    for i, line in enumerate(lines):
        stripped = _MARK.sub("", line.strip())
        if len(stripped) <= 100 and _BOILER.match(stripped):
            keep[i] = False

    # 4. copied blocks
    seen, flags = set(), []
    for b in bare:
        flags.append(bool(b) and b in seen)
        seen.add(b)
    for i in _runs(flags, 3, lines, 300):
        keep[i] = False

    return "\n".join(line for line, k in zip(lines, keep) if k)


# "Headline | Site", "Headline - Section | Site", "Headline – DW – 13.06.2023"
_TITLE_SEPARATOR = re.compile(r"\s+[|–—·•»/-]{1,2}\s+|\s+::\s+")
_SUFFIX_MAX_WORDS = 6


def clean_title(title: str | None, sitename: str | None, url: str) -> str | None:
    """``title`` without a trailing site name ("... | Börsen-Zeitung", "... - Golem.de",
    "... - National | Global News"): the part from the first separator whose remainder is
    short (at most 6 words) and names the site (its name, or its host's name: golem for
    golem.de). A title with no such suffix is returned as it is."""
    if not title:
        return title
    names = {_norm(sitename or "")} | _host_names(site_host(url))
    names = {n for n in names if len(n) >= 2}
    if not names:
        return title
    for m in _TITLE_SEPARATOR.finditer(title):
        head, rest = title[: m.start()].strip(), title[m.end():].strip()
        if len(head.split()) < 2 or len(rest.split()) > _SUFFIX_MAX_WORDS:
            continue
        low = _norm(rest)
        if any(n in low for n in names):
            return head
    return title


def _host_names(host: str) -> set[str]:
    """Names a site goes by in its titles, from its host: golem.de -> {"golem.de", "golem"}."""
    host = _host(host)
    if not host or host.replace(".", "").isdigit():
        return set()
    labels = host.split(".")
    main = labels[-2] if len(labels) >= 2 else labels[0]
    if len(labels) >= 3 and len(labels[-2]) <= 3:  # bbc.co.uk, abc.net.au
        main = labels[-3]
    return {host, main} if len(main) >= 3 else {host}
