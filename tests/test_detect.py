"""pipelines/detect.py: keep articles, reject listing, forum, product, service and documentation pages."""

from __future__ import annotations

import json

import pytest
from lxml import html as lxml_html

from pipelines.detect import article_verdict, page_signals, page_tree

PARAGRAPH = (
    "The city council voted on Tuesday evening to approve a budget that raises spending on "
    "schools and public transport while cutting the administrative costs of the town hall by a tenth. "
)
STORY = "\n".join(PARAGRAPH + f"Paragraph {i} adds detail from the meeting and reactions of residents." for i in range(6))


def ld(obj) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def doc(head: str = "", body: str = "", title: str = "A page") -> str:
    return f"<html><head><title>{title}</title>{head}</head><body>{body}</body></html>"


def verdict(html: str, url: str, text: str = STORY, title: str | None = None, author: str | None = None):
    extracted = {"text": text, "title": title, "author": author}
    return article_verdict(page_tree(html), url, extracted)


# --- articles are kept -------------------------------------------------------------------------------
def test_news_article_with_structured_data():
    head = ld({"@type": "NewsArticle", "headline": "Council approves budget", "datePublished": "2026-11-20T09:00:00Z"})
    head += '<meta property="og:type" content="article">'
    html = doc(head, "<article><h1>Council approves budget</h1>" + "".join(f"<p>{PARAGRAPH}</p>" for _ in range(6)) + "</article>")
    url = "https://news.example.com/politics/2026/11/20/council-approves-budget-for-schools"
    assert verdict(html, url, title="Council approves budget raising school spending", author="A. Writer") is None


def test_plain_blog_post_without_markup_but_with_a_byline_and_a_slug():
    html = doc(body="<h1>What we learned from running a bakery for ten years</h1><p>By Sam Baker</p>")
    url = "https://example.org/what-we-learned-from-running-a-bakery"
    assert verdict(html, url, title="What we learned from running a bakery for ten years", author="Sam Baker") is None


def test_a_newsroom_story_is_not_a_service_page_because_of_its_company_schema():
    head = ld({"@type": "LocalBusiness", "name": "Bakery"}) + ld({"@type": "BlogPosting", "datePublished": "2026-11-01"})
    assert verdict(doc(head), "https://bakery.example/blog/our-new-oven-arrived-after-months") is None


def test_faq_questions_in_an_article_are_not_a_forum():
    faq = {"@type": "FAQPage", "mainEntity": [{"@type": "Question", "name": "Why?", "acceptedAnswer": {"@type": "Answer", "text": "Because."}}]}
    head = ld(faq) + '<meta property="article:published_time" content="2026-11-10">'
    assert verdict(doc(head), "https://example.com/guides-and-tips/how-to-pick-a-bike-helmet", title="How to pick a bike helmet that fits well") is None


# --- non-articles are rejected -----------------------------------------------------------------------
def test_product_page():
    head = ld({"@type": "Product", "name": "Trail Shoe", "offers": {"@type": "Offer", "price": "89.99"}}) + '<meta property="og:type" content="product">'
    body = '<h1>Trail Shoe</h1><button class="btn">Add to cart</button><p>$89.99</p>'
    text = "Trail Shoe\n$89.99\nLightweight shoe for rough trails.\nSizes 38 to 47\n$79.99 member price\n$9.99 shipping\n$5 off\n$99 bundle"
    reason = verdict(doc(head, body), "https://shop.example.com/products/trail-shoe", text=text, title="Trail Shoe")
    assert reason.startswith("product page:")
    assert "schema.org Product" in reason and "add-to-cart control" in reason


def test_forum_thread():
    head = '<meta name="generator" content="Discourse 3.6.0 - https://github.com/discourse/discourse">'
    posts = "".join(f'<div class="topic-post"><div class="cooked"><p>Reply {i}: {PARAGRAPH}</p></div></div>' for i in range(5))
    reason = verdict(doc(head, posts), "https://forum.example.org/t/which-telescope-should-i-buy/1555", title="Which telescope should I buy?")
    assert reason.startswith("forum thread:")
    assert "forum software (discourse" in reason and "5 posts" in reason


def test_question_and_answer_page():
    head = ld({"@type": "QAPage", "mainEntity": {"@type": "Question", "name": "How do I exit vim?", "answerCount": 3}})
    assert verdict(doc(head), "https://qa.example.com/questions/11828270/how-do-i-exit-vim").startswith("forum thread:")


def test_documentation_page():
    head = '<meta name="generator" content="Docusaurus v3.5.2">'
    body = "<pre>pip install x</pre><pre>x --help</pre><pre>x run</pre>"
    reason = verdict(doc(head, body), "https://docs.example.dev/docs/getting-started", title="Getting started")
    assert reason.startswith("documentation page:")
    assert "documentation generator (docusaurus" in reason


def test_home_page_is_a_listing_whatever_else_it_has():
    head = ld({"@type": "NewsArticle", "datePublished": "2026-11-20"})
    assert verdict(doc(head), "https://news.example.com/").startswith("listing page: home page")


def test_listing_made_of_link_titles():
    headlines = [f"Council approves budget for the {i}th time this decade" for i in range(12)]
    body = "".join(f'<article><h2><a href="/news/story-{i}">{h}</a></h2></article>' for i, h in enumerate(headlines))
    reason = verdict(doc(body=body), "https://news.example.com/section/politics", text="\n".join(headlines), title="Politics")
    assert reason.startswith("listing page:")
    assert "12 link titles in the main text" in reason


def test_collection_page_and_archive_title():
    head = ld({"@type": "CollectionPage", "name": "Recipes"})
    assert verdict(doc(head), "https://food.example.com/recipes/dinner/", title="Dinner Recipes").startswith("listing page:")
    assert verdict(doc(), "https://blog.example.com/beginners/", title="Beginners Archives - Example Blog").startswith("listing page:")


def test_service_page():
    head = ld({"@type": "Service", "name": "Data analytics consulting"}) + '<meta property="og:type" content="website">'
    reason = verdict(doc(head), "https://consulting.example.com/services/data-analytics", title="Data Analytics Services")
    assert reason.startswith("service page:")


def test_page_without_any_article_evidence():
    text = "Welcome.\nWe help you grow.\nOur team\nContact us today for a free quote on your project and more."
    assert verdict(doc(), "https://example.com/grow", text=text, title="Grow").startswith("not an article:")


def test_page_without_evidence_but_with_a_paragraph_of_prose_gets_the_benefit_of_the_doubt():
    text = "Notes\n" + PARAGRAPH + "The rest of the evening went to questions from the public about parking."
    assert verdict(doc(), "https://example.com/grow", text=text, title="Grow") is None
    short = "Notes\n" + PARAGRAPH[:140]  # under 150 characters: not a paragraph of prose
    assert verdict(doc(), "https://example.com/grow", text=short, title="Grow").startswith("not an article:")


# --- inputs ------------------------------------------------------------------------------------------
def test_pages_served_by_the_benchmarks_are_read_as_their_original_host():
    head = '<meta name="generator" content="Discourse 3.6.0">'
    signals = page_signals(page_tree(doc(head)), "http://127.0.0.1:8123/forum.example.org/t/a-thread-title/99", {"text": STORY})
    assert signals["hosts"] == {"forum.example.org"}
    assert signals["own_path"] == "/t/a-thread-title/99"
    local_home = page_signals(page_tree(doc()), "http://127.0.0.1:8123/news.example.com/", {"text": STORY})
    assert local_home["own_path"] == "/"


def test_canonical_on_another_host_is_not_used_for_the_url_signals():
    head = '<link rel="canonical" href="https://forum.other.example/t/thread/1">'
    signals = page_signals(page_tree(doc(head)), "https://news.example.com/2026/11/20/story-about-things", {"text": STORY})
    assert signals["hosts"] == {"news.example.com"}


@pytest.mark.parametrize("given", ["tree", "str", "bytes"])
def test_accepts_a_tree_or_html_and_does_not_modify_the_tree(given):
    html = doc('<meta name="generator" content="Sphinx 7.1">', "<pre>a</pre>")
    tree = lxml_html.fromstring(html)
    before = lxml_html.tostring(tree)
    page = {"tree": tree, "str": html, "bytes": html.encode()}[given]
    assert article_verdict(page, "https://docs.example.org/en/latest/usage.html", {"text": STORY, "title": "Usage"}).startswith("documentation page:")
    assert lxml_html.tostring(tree) == before


def test_empty_or_missing_inputs_do_not_raise():
    assert article_verdict(None, "", None).startswith("not an article")
    assert article_verdict("", "not a url", {}).startswith("not an article")


def test_with_trafilatura_output():
    """The verdict on what extract() actually passes: trafilatura's result for a small page."""
    import trafilatura

    head = ld({"@type": "NewsArticle", "headline": "Council approves budget", "datePublished": "2026-11-20T09:00:00Z", "author": {"@type": "Person", "name": "A. Writer"}})
    html = doc(head, "<article><h1>Council approves budget</h1>" + "".join(f"<p>{PARAGRAPH} ({i})</p>" for i in range(6)) + "</article>", title="Council approves budget")
    tree = page_tree(html)
    url = "https://news.example.com/politics/council-approves-budget"
    data = trafilatura.bare_extraction(tree, url=url, with_metadata=True).as_dict()
    assert article_verdict(tree, url, data) is None
