"""A fixture site in the creati.ai layout: articles followed by a "Featured" list of ad cards.

The cards come in every variant that makes trafilatura leak or nearly leak them: in the
same container as the article paragraphs, in a sibling div after the article, inside
<article> after the body; each card either fully linked (the whole card is one <a>) or
name-only linked (<a>name</a> then a plain <p> description). Article text and cards are
our own (the demo site's), re-laid out here.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = [
    ("same_container", "name_link"),
    ("same_container", "full_link"),
    ("sibling_div", "name_link"),
    ("sibling_div", "full_link"),
    ("inside_article", "name_link"),
    ("inside_article", "full_link"),
]


def _manifest() -> dict:
    return json.loads((ROOT / "demo" / "site_manifest.json").read_text(encoding="utf-8"))


def _cards(cards: list[dict], style: str) -> str:
    out = ['<h3 class="featured-heading">Featured</h3>']
    for card in cards:
        name, desc = html.escape(card["name"]), html.escape(card["description"])
        slug = card["name"].lower().replace(" ", "-")
        if style == "full_link":
            out.append(f'<a class="tool-card" href="/tools/{slug}"><h4>{name}</h4><p>{desc}</p></a>')
        else:
            out.append(f'<div class="tool-card"><a href="/tools/{slug}">{name}</a><p>{desc}</p></div>')
    return "\n".join(out)


def _page(article: dict, cards: str, placement: str, jsonld: bool) -> str:
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in article["paragraphs"])
    title = html.escape(article["title"])
    body_extra = cards if placement == "same_container" else ""
    article_extra = f'<div class="featured-tools">{cards}</div>' if placement == "inside_article" else ""
    after_article = f'<div class="featured-tools">{cards}</div>' if placement == "sibling_div" else ""
    # JSON-LD declaring a NewsArticle, as most news sites publish: extract() then uses trafilatura's fast mode
    ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": article["title"], "datePublished": article["published"]})
    ld_script = f'<script type="application/ld+json">{html.escape(ld, quote=False)}</script>' if jsonld else ""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} | AI Wire</title>
<meta property="og:type" content="article"><meta property="article:published_time" content="{article['published']}T09:00:00Z">{ld_script}
</head><body>
<header><a href="/">AI Wire</a><nav><a href="/news/">News</a> <a href="/tools/">Tools</a> <a href="/about/">About</a></nav></header>
<main><article><h1>{title}</h1><p class="byline">By Staff</p>
<div class="article-body">
{paragraphs}
{body_extra}
</div>
{article_extra}
</article>
{after_article}
</main>
<footer><a href="/privacy/">Privacy</a> <a href="/terms/">Terms</a></footer>
</body></html>"""


def build(base: str, jsonld: bool = False) -> tuple[dict[str, bytes], list[dict]]:
    """Pages (path -> body) including /feed.xml, and the articles laid out on them;
    ``jsonld``: every page declares a NewsArticle in JSON-LD."""
    manifest = _manifest()
    articles = [a for a in manifest["articles"] if a["path"].startswith("/news/2026/")][: len(VARIANTS)]
    cards = manifest["featured_cards"]
    pages: dict[str, bytes] = {}
    laid_out = []
    for index, (article, (placement, style)) in enumerate(zip(articles, VARIANTS)):
        path = f"/news/{index + 1}-{placement}-{style}.html"
        pages[path] = _page(article, _cards(cards, style), placement, jsonld).encode("utf-8")
        laid_out.append({**article, "path": path, "variant": f"{placement}/{style}"})
    items = "".join(f"<item><title>{html.escape(a['title'])}</title><link>{base}{a['path']}</link></item>" for a in laid_out)
    pages["/feed.xml"] = f'<?xml version="1.0"?><rss version="2.0"><channel><title>AI Wire</title>{items}</channel></rss>'.encode()
    return pages, laid_out
