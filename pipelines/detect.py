"""Is this page an article? One pure function, ``article_verdict``.

It weighs the evidence that a page is an article against the evidence for each kind of
page that is not one, and returns None (an article) or a short reason.

Article evidence (points): an article object in JSON-LD (NewsArticle, Article,
BlogPosting, ...) 3; a publication date in structured data (JSON-LD, meta tags,
``<time itemprop=datePublished>``...) 2; a full date in the URL 2; ``og:type=article`` 1;
a byline (trafilatura's author or an author meta tag) 1; an article-like URL (/news/,
/blog/, /story/, /2026/11/ ...) 1; running prose (>= 60 % of the text in paragraphs of
150+ characters, at least 4 of them) 1; a headline-like title (6+ words before the
" | Site" suffix) 1; a descriptive slug (a path segment of 4+ words) 1.

Evidence against, per category (points):

- product: schema.org Product/Offer in JSON-LD 3 (microdata 2), ``og:type`` product or
  ``*:item`` 3, a product URL (/product/, /dp/, /itm/ ...) or shop host 2, an "add to
  cart" control 2, 5+ prices in the text 1;
- forum: DiscussionForumPosting/QAPage 3, forum software named by the generator meta
  (Discourse, XenForo, vBulletin, phpBB ...) 3 or left in class names 2, 3+ post bodies
  3, a forum host (forum., community., stackoverflow.com ...) 2, a forum URL 2;
- documentation: a documentation generator (Sphinx, MkDocs, Docusaurus, MediaWiki,
  GitBook ...) 3 or its class names 2, a documentation host (docs., developer. ...) 2, a
  documentation URL (/docs/, /wiki/, /reference/ ...) 2, 3+ code blocks 1;
- listing: the site's root URL (decisive), CollectionPage/SearchResultsPage 3,
  ItemList/ProfilePage 2, a listing URL (/category/, /tag/, /c/ ...) 2, a WordPress-style
  "... Archives" title 3, 5+ lines of the main text that are link titles (>= 25 % of it) 3,
  a main text of 15+ lines that are 80 % short lines 2;
- service: schema.org Service/LocalBusiness/SoftwareApplication/Course ... 3, a service
  URL (/services/, /pricing/, /about/ ...) 2;
- any category with evidence gets 1 more when the page has no publication date at all.

A page is rejected when its strongest category reaches ``REJECT_AT`` (3) points and
exceeds the article evidence, or when it has no article evidence at all (0 points). The
weights were set on the WCXB dev split and checked on the fundus and Scrapinghub pages
(all articles); docs/extraction.md has the figures.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

from lxml import etree

from pipelines.dates import as_tree, body_date, jsonld_date, meta_date, ld_types, jsonld_objects, url_date

PROSE_LINE_CHARS = 150  # a line this long is a paragraph of prose (long_lines, prose_share; extract's baseline check)

__all__ = ["article_verdict", "page_signals", "page_tree", "verdict_from_signals"]

REJECT_AT = 3  # a category needs at least this many points to reject a page
WEAK_AT = 0  # a page with this many article points or fewer is rejected anyway
HOME_WEIGHT = 99  # the root of a site is a front page, never an article

# --- schema.org types (lower-case) -------------------------------------------------------------
_ARTICLE_TYPES = frozenset(
    t.lower()
    for t in (
        "NewsArticle", "BlogPosting", "ReportageNewsArticle", "AnalysisNewsArticle", "OpinionNewsArticle",
        "ReviewNewsArticle", "BackgroundNewsArticle", "LiveBlogPosting", "SatiricalArticle", "Article",
        "ScholarlyArticle", "Report", "AskPublicNewsArticle",
    )
)
_PRODUCT_TYPES = frozenset(("product", "productgroup", "individualproduct", "productmodel", "offer", "aggregateoffer", "vehicle", "car"))
_SERVICE_TYPES = frozenset(
    (
        "service", "softwareapplication", "webapplication", "mobileapplication", "localbusiness", "professionalservice",
        "hvacbusiness", "medicalbusiness", "dentist", "legalservice", "homeandconstructionbusiness", "store",
        "financialservice", "course", "educationaloccupationalprogram", "jobposting", "event", "contactpage", "aboutpage",
    )
)

# --- og:type and generator ---------------------------------------------------------------------
_OG_ARTICLE = re.compile(r"^(?:article|blog|post|news)")
_OG_PRODUCT = re.compile(r"product|:item$|^item$")
_OG_OTHER = re.compile(r"^(?:profile|book|music\.|video\.(?!other)|books\.|business\.business|place|restaurant)")
_FORUM_ENGINES = re.compile(r"discourse|vbulletin|xenforo|phpbb|nodebb|flarum|invision|mybb|vanilla forums|simple machines|bbpress|discuz|khoros")
_DOCS_ENGINES = re.compile(r"mediawiki|sphinx|mkdocs|docusaurus|gitbook|bookdown|vitepress|vuepress|docsy|antora|jsdoc|doxygen|readthedocs|nextra|mintlify|docfx")
# class names left by forum and documentation software
_FORUM_CLASSES = ("xenforo", "topic-post", "postbit", "ipscomment", "phpbb", "vbulletin", "nodebb", "flarum", "discourse")
_DOCS_CLASSES = ("sphinxsidebar", "rst-content", "wy-nav", "theme-doc-markdown", "docusaurus", "md-content", "mw-parser-output", "gitbook", "vp-doc", "docs-sidebar", "docsearch")
# class names of the post bodies of forum software (one per post)
_POST_CLASSES = (
    "message-body", "messagetext", "bbwrapper", "post-body", "postbody", "post_body", "postmessage", "post-message",
    " cooked", "topic-body", "answercell", "post-text", "ipscomment_content", "post_message", "forum-post", "js-post-body",
)
_CART = ("add to cart", "add-to-cart", "add to bag", "add-to-bag", "add to basket", "add-to-basket", "addtocart", "add_to_cart", "in den warenkorb", "ajouter au panier")

# --- URLs: whole path segments -----------------------------------------------------------------
def _segments(words: str) -> re.Pattern:
    return re.compile(r"/(?:" + words + r")(?=/|$|\.(?:html?|php|aspx?)$)")


_URL_ARTICLE = _segments(r"blogs?|news|articles?|story|stories|posts?|opinion|insights|press|press-releases?|magazine|features|reviews?|columns?|editorial|newsroom|p|a\d+|\d{4}/\d{1,2}")
_URL_FORUM = _segments(r"forums?|threads?|topics?/\d+[^/]*|t|d/\d+[^/]*|questions|discussions?|viewtopic\.php|showthread\.php|comments|talk|boards?")
_URL_PRODUCT = _segments(r"products?|dp|itm|items?|listing|gp/product|store/detail|app")
_URL_LISTING = _segments(r"c|cp|collections?|category|categories|tags?|topics?|browse|list|lists|chart|search|sections?|archives?|page/\d+|shop|stores?|catalog|catalogue|departments?|latest|recent|trending")
_URL_DOCS = _segments(r"docs?|documentation|wiki|reference|api|manual|tutorials?|howto|kb|knowledge-?base|handbook|book|guide")
_URL_SERVICE = _segments(r"services?|solutions?|pricing|plans|features|about(?:-us)?|contact(?:-us)?|careers|jobs|remote-jobs|calculators?|tools-calculators|tools|platform|demo|signup|login|account|support")
_HOST_FORUM = re.compile(r"^(?:www\.)?(?:forums?|community|communities|discuss|discussion|bbs|talk|boards?|answers)\.|(?:^|\.)(?:stackoverflow\.com|stackexchange\.com|superuser\.com|serverfault\.com|askubuntu\.com|reddit\.com|quora\.com)$")
_HOST_DOCS = re.compile(r"^(?:www\.)?(?:docs?|developers?|dev|wiki|api|manual|learn|support|help|kb|reference)\.")
_HOST_SHOP = re.compile(r"^(?:www\.)?(?:shop|store|buy)\.")
_IP_HOST = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\])$")
_HOSTNAME = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}$")

# --- text --------------------------------------------------------------------------------------
_CLASS_VALUES = etree.XPath("//@class", smart_strings=False)  # plain strings: no per-value parent link
_PRICE = re.compile(r"(?:[$€£¥₹]\s?\d[\d,.]*\d|\d[\d,.]*\s?(?:€|USD|EUR|GBP|CHF|kr|zł)(?!\w))")
_TITLE_SPLIT = re.compile(r"\s[|–—·•:»]\s|\s-\s")  # "Headline | Site" -> "Headline"
_ARCHIVE_TITLE = re.compile(r"\barchives?\b\s*(?:[|–—·•:»-]|$)|^(?:category|tag|topic|archive)\s*:", re.I)
_WORD = re.compile(r"[^\W\d_]{2,}")

_LABELS = {"product": "product page", "forum": "forum thread", "documentation": "documentation page", "listing": "listing page", "service": "service page"}
_UNDATED = "no publication date"


def page_tree(html: str):
    """An lxml tree of the page for resolve_published() and article_verdict() to share.

    Parse it once, next to trafilatura (which parses its own copy and modifies it).
    """
    from trafilatura.utils import load_html

    return load_html(html)


def article_verdict(tree_or_html, url: str, extracted: dict | None = None) -> str | None:
    """None if the page reads as an article, else a short reason, e.g.
    "forum thread: forum software (discourse), 12 posts".

    ``tree_or_html``: the page's lxml tree (read, not modified) or its HTML text; ``url``:
    the page URL; ``extracted``: trafilatura's result as a dict (text, title, author ...).
    """
    return verdict_from_signals(page_signals(as_tree(tree_or_html), url, extracted))


def verdict_from_signals(s: dict) -> str | None:
    """The decision on page_signals()' output."""
    pos, neg = _weigh(s)
    best, score, whys = None, 0, []
    for category, items in neg.items():
        total = sum(w for w, _ in items)
        if total > score:
            best, score, whys = category, total, items
    if best is not None and score >= REJECT_AT and score > pos:
        reasons = [why for _, why in sorted(whys, key=lambda item: -item[0]) if why != _UNDATED]
        return f"{_LABELS[best]}: " + ", ".join(reasons)[:200]
    if pos <= WEAK_AT and s["long_lines"] < 1:
        # no evidence either way and not one paragraph of prose (150+ characters): a page with
        # running text gets the benefit of the doubt (WCXB: 7 more articles kept, 1 more
        # non-article let through; docs/extraction.md)
        return "not an article: no article markup, date, byline, headline or prose"
    return None


# --- evidence ------------------------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join((text or "").split()).lower()


def host_and_path(url: str) -> tuple[str, str] | None:
    """(host, path) of a URL, lower-cased, the path without trailing slash ("/" for the root).

    A page served from an IP address or localhost under a first path segment that is a host
    name (``http://127.0.0.1:8000/www.example.com/news/x.html``: how the benchmarks and
    fixtures serve real pages) is read as that host and the rest of the path.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    path = (parts.path or "/").lower()
    if _IP_HOST.match(host):
        first, _, rest = path.lstrip("/").partition("/")
        if _HOSTNAME.match(first):
            host, path = first, "/" + rest
    return host, path.rstrip("/") or "/"


def _url_parts(url: str, others: list[str]) -> tuple[set[str], list[str], str]:
    """Hosts and paths of the page URL and of its canonical/og:url when on the same host; its own path."""
    own = host_and_path(url) if url else None
    hosts, paths = set(), []
    if own:
        hosts.add(own[0])
        paths.append(own[1])
    for other in others:
        found = host_and_path(other)
        if found and (own is None or found[0] == own[0]) and found[1] not in paths:
            hosts.add(found[0])
            paths.append(found[1])
    return hosts, paths, own[1] if own else (paths[0] if paths else "")


def _types_of(objects: list[dict]) -> set[str]:
    """The schema.org types of JSON-LD objects and of their mainEntity."""
    types: set[str] = set()
    for obj in objects:
        types |= ld_types(obj)
        main = obj.get("mainEntity")
        if isinstance(main, dict):
            types |= ld_types(main)
    return types


def declares_article(tree) -> bool:
    """The page's JSON-LD has an article object (NewsArticle, Article, BlogPosting, ...)."""
    return bool(_types_of(jsonld_objects(tree)) & _ARTICLE_TYPES)


def page_signals(tree, url: str, extracted: dict | None) -> dict:
    """Every piece of evidence the verdict weighs, as a flat dict (for tests and tuning)."""
    extracted = extracted or {}
    now = datetime.now(timezone.utc)
    s: dict = {}
    objects = jsonld_objects(tree) if tree is not None else []
    types = _types_of(objects)
    s["ld_types"] = types
    s["ld_article"] = bool(types & _ARTICLE_TYPES)

    metas: dict[str, str] = {}
    canonical = None
    microdata: set[str] = set()
    classes = controls = ""
    anchors: set[str] = set()
    s["pre_blocks"] = 0
    s["date_source"] = None
    if tree is not None:
        for meta in tree.iter("meta"):
            key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
            if key and key not in metas:
                metas[key] = (meta.get("content") or "").strip()
        for link in tree.iter("link"):
            if "canonical" in (link.get("rel") or "").lower().split():
                canonical = link.get("href")
                break
        for itemtype in tree.xpath("//@itemtype"):
            microdata.update(one.rstrip("/").rsplit("/", 1)[-1].lower() for one in str(itemtype).split())
        classes = " " + " ".join(_CLASS_VALUES(tree)).lower()
        controls = " ".join(
            tree.xpath("//button//text() | //button/@aria-label | //input[@type='submit']/@value | //@id[contains(., 'cart') or contains(., 'Cart')]")
        ).lower()
        s["pre_blocks"] = int(tree.xpath("count(//pre)"))
        # link titles (for the listing test): only worth collecting when the text has 5+ lines of that size
        all_lines = (extracted.get("text") or "").split("\n")
        if sum(15 <= len(line.strip()) <= 300 for line in all_lines) >= 5:
            wanted = {_norm(line) for line in all_lines}
            for a in tree.iter("a"):
                t = a.text_content()
                if len(t) >= 15:
                    t = _norm(t)
                    if t in wanted:  # only link texts that are lines of the text are looked up
                        anchors.add(t)
        if jsonld_date(objects, now):
            s["date_source"] = "jsonld"
        elif meta_date(tree, now):
            s["date_source"] = "meta"
        elif body_date(tree, now):
            s["date_source"] = "page"
    s["microdata"] = microdata
    s["og_type"] = _norm(metas.get("og:type", "")) or None
    s["generator"] = _norm(metas.get("generator", "")) or None

    others = [u for u in (canonical, metas.get("og:url")) if u and "://" in u]
    s["hosts"], s["paths"], s["own_path"] = _url_parts(url, others)
    s["url_date"] = any(url_date(u, now) for u in [url, *others])
    s["slug_words"] = max((len(_WORD.findall(seg)) for p in s["paths"] for seg in p.split("/") if seg), default=0)

    title = (extracted.get("title") or metas.get("og:title") or "").strip()
    s["title_words"] = len(_TITLE_SPLIT.split(title, 1)[0].split()) if title else 0
    s["archive_title"] = bool(_ARCHIVE_TITLE.search(title))
    s["author"] = bool(
        extracted.get("author") or metas.get("author") or metas.get("article:author") or metas.get("parsely-author") or metas.get("sailthru.author")
    )

    text = extracted.get("text") or ""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    s["chars"] = len(text)
    s["lines"] = len(lines)
    s["long_lines"] = sum(len(line) >= PROSE_LINE_CHARS for line in lines)
    s["prose_share"] = sum(len(line) for line in lines if len(line) >= PROSE_LINE_CHARS) / max(1, len(text))
    s["short_share"] = sum(len(line) < 60 for line in lines) / max(1, len(lines))
    s["prices"] = len(_PRICE.findall(text))
    linked = [line for line in lines if _norm(line) in anchors]
    s["linked_share"] = sum(len(line) for line in linked) / max(1, len(text))
    s["linked_lines"] = len(linked)

    s["cart"] = sum(controls.count(m) + classes.count(m) for m in _CART)
    s["forum_markup"] = any(m in classes for m in _FORUM_CLASSES) or bool(tree is not None and tree.xpath("boolean(//@data-xf-init)"))
    s["docs_markup"] = any(m in classes for m in _DOCS_CLASSES)
    s["post_blocks"] = max((classes.count(m) for m in _POST_CLASSES), default=0)
    return s


def _weigh(s: dict) -> tuple[int, dict[str, list[tuple[int, str]]]]:
    """(article points, {category: [(points, why), ...]})."""
    og = s["og_type"] or ""
    paths, hosts, types = s["paths"], s["hosts"], s["ld_types"]
    article_ld = s["ld_article"]
    dated = bool(s["date_source"] or s["url_date"])

    pos = 0
    pos += 3 if article_ld else 0
    pos += 2 if s["date_source"] else 0
    pos += 2 if s["url_date"] else 0
    pos += 1 if _OG_ARTICLE.match(og) else 0
    pos += 1 if s["author"] else 0
    pos += 1 if any(_URL_ARTICLE.search(p) for p in paths) else 0
    pos += 1 if s["prose_share"] >= 0.6 and s["long_lines"] >= 4 else 0
    pos += 1 if s["title_words"] >= 6 else 0  # a headline, not a section, product or service name
    pos += 1 if s["slug_words"] >= 4 else 0  # /2026/11/city-council-approves-budget

    neg: dict[str, list[tuple[int, str]]] = {k: [] for k in _LABELS}
    product, forum, docs, listing, service = (neg[k] for k in _LABELS)
    if types & _PRODUCT_TYPES and not article_ld:
        product.append((3, "schema.org Product"))
    elif {"product", "offer"} & s["microdata"] and not article_ld:
        product.append((2, "Product microdata"))
    if _OG_PRODUCT.search(og):
        product.append((3, f"og:type {og}"))
    if any(_URL_PRODUCT.search(p) for p in paths) or any(_HOST_SHOP.search(h) for h in hosts):
        product.append((2, "product URL"))
    if s["cart"]:
        product.append((2, "add-to-cart control"))
    if s["prices"] >= 5:
        product.append((1, f"{s['prices']} prices in the text"))

    faq = "faqpage" in types or "faqpage" in s["microdata"]  # FAQ blocks are Question/Answer too
    if types & {"discussionforumposting", "qapage"} or "discussionforumposting" in s["microdata"] or (
        not faq and ("question" in types or {"question", "answer"} <= s["microdata"])
    ):
        forum.append((3, "schema.org DiscussionForumPosting/QAPage"))
    gen = s["generator"] or ""
    if _FORUM_ENGINES.search(gen):
        forum.append((3, f"forum software ({gen.split()[0]})"))
    elif s["forum_markup"]:
        forum.append((2, "forum software markup"))
    if s["post_blocks"] >= 3:
        forum.append((3, f"{s['post_blocks']} posts"))
    if any(_HOST_FORUM.search(h) for h in hosts):
        forum.append((2, "forum host"))
    if any(_URL_FORUM.search(p) for p in paths):
        forum.append((2, "forum URL"))

    if _DOCS_ENGINES.search(gen):
        docs.append((3, f"documentation generator ({gen.split()[0]})"))
    elif s["docs_markup"]:
        docs.append((2, "documentation markup"))
    if any(_HOST_DOCS.search(h) for h in hosts):
        docs.append((2, "documentation host"))
    if any(_URL_DOCS.search(p) for p in paths):
        docs.append((2, "documentation URL"))
    if s["pre_blocks"] >= 3:
        docs.append((1, f"{s['pre_blocks']} code blocks"))

    if s["own_path"] == "/":
        listing.append((HOME_WEIGHT, "home page"))
    if types & {"collectionpage", "searchresultspage"} and not article_ld:
        listing.append((3, "schema.org CollectionPage"))
    elif types & {"itemlist", "profilepage"} and not article_ld:
        listing.append((2, "schema.org ItemList"))
    if any(_URL_LISTING.search(p) for p in paths):
        listing.append((2, "listing URL"))
    if s["archive_title"]:
        listing.append((3, "archive title"))
    if s["linked_share"] >= 0.25 and s["linked_lines"] >= 5:
        listing.append((3, f"{s['linked_lines']} link titles in the main text"))
    if s["lines"] >= 15 and s["short_share"] >= 0.8 and s["long_lines"] <= 2:
        listing.append((2, "main text made of short lines"))

    if types & _SERVICE_TYPES and not article_ld:
        service.append((3, "schema.org " + "/".join(sorted(types & _SERVICE_TYPES))))
    if any(_URL_SERVICE.search(p) for p in paths):
        service.append((2, "service URL"))
    if _OG_OTHER.search(og):
        service.append((1, f"og:type {og}"))
        listing.append((1, f"og:type {og}"))

    if not dated:
        for items in neg.values():
            if items:
                items.append((1, _UNDATED))
    return pos, neg
