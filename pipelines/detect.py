"""Is this page an article? One pure function, ``article_verdict``; draft (features only)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pipelines.dates import ARTICLE_TYPES, _types, jsonld_objects, parse_date_value

_PRICE = re.compile(r"(?:[$€£¥]\s?\d[\d,.]*|\d[\d,.]*\s?(?:€|USD|EUR|GBP|kr|zł))")
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text or "").strip().lower()


def page_features(tree, url: str, extracted: dict) -> dict:
    f: dict = {}
    objects = jsonld_objects(tree) if tree is not None else []
    types: set[str] = set()
    for obj in objects:
        types |= _types(obj)
        main = obj.get("mainEntity")
        if isinstance(main, dict):
            types |= _types(main)
    f["ld_types"] = types
    f["ld_article"] = bool(types & ARTICLE_TYPES)
    metas = {}
    for meta in tree.iterfind(".//meta") if tree is not None else ():
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        if key and key not in metas:
            metas[key] = (meta.get("content") or "").strip()
    f["og_type"] = metas.get("og:type", "").lower() or None
    f["generator"] = metas.get("generator", "").lower() or None
    f["pub_meta"] = any(k in metas for k in ("article:published_time", "og:published_time", "datepublished", "parsely-pub-date", "sailthru.date", "pubdate", "publish-date", "publishdate"))
    f["author_meta"] = bool(metas.get("author") or metas.get("article:author") or metas.get("parsely-author") or metas.get("sailthru.author"))
    canon = None
    if tree is not None:
        for link in tree.iterfind(".//link"):
            if "canonical" in (link.get("rel") or "").lower().split():
                canon = link.get("href")
                break
    canon = canon or metas.get("og:url")
    f["urls"] = [u for u in (url, canon) if u]
    text = (extracted or {}).get("text") or ""
    lines = [l.strip() for l in text.split("\n") if l.strip()]
    f["chars"] = len(text)
    f["lines"] = len(lines)
    f["long_lines"] = sum(len(l) >= 150 for l in lines)
    f["long_chars"] = sum(len(l) for l in lines if len(l) >= 150)
    f["short_lines"] = sum(len(l) < 60 for l in lines)
    f["prices"] = len(_PRICE.findall(text))
    f["author"] = bool((extracted or {}).get("author"))
    # linked share: extracted lines that are the text of a link on the page
    anchors = set()
    if tree is not None:
        for a in tree.iterfind(".//a"):
            t = _norm(a.text_content())
            if len(t) >= 15:
                anchors.add(t)
    linked = [l for l in lines if _norm(l) in anchors]
    f["linked_lines"] = len(linked)
    f["linked_chars"] = sum(len(l) for l in linked)
    f["html_len"] = 0
    return f
