"""pipelines.textclean.clean_text: page furniture leaves the text, the article's own lines stay."""

import lxml.html

from pipelines.textclean import clean_text

PAGE = """<html><head><title>Harbour board backs new ferry timetable | Coast Courier</title></head><body>
<h1>Harbour board backs new ferry timetable</h1>
<ul class="related"><li><a href="/news/bridge">Bridge repairs delayed until spring</a></li>
<li><a href="/news/market">Farmers market returns to the square</a></li>
<li><a href="/news/library">Library to open on Sundays</a></li></ul>
<p><a href="/news/timetable-faq">Read the full timetable</a></p>
</body></html>"""

BODY = [
    "The harbour board approved a new ferry timetable on Monday after months of complaints from island residents.",
    "Services will start earlier in winter and the last boat will leave the island at ten in the evening.",
    "Read the full timetable",
    "The board said the change would cost little because the crews already work the early shift.",
]


def _clean(lines):
    tree = lxml.html.fromstring(PAGE)
    return clean_text("\n".join(lines), tree, "https://coast.example/news/ferry", "Harbour board backs new ferry timetable").split("\n")


def test_article_lines_stay_and_furniture_goes():
    text = _clean(
        ["Harbour board backs new ferry timetable", *BODY,
         "Bridge repairs delayed until spring", "Farmers market returns to the square", "Library to open on Sundays",
         "Share this article", "Copyright 2026 Coast Courier. All rights reserved."]
    )
    assert text == BODY  # headline, the run of related links, share and copyright lines removed; one link line kept


def test_a_copied_block_is_removed_once():
    text = _clean([*BODY, *BODY])
    assert text == BODY


def test_text_without_furniture_is_unchanged():
    assert _clean(BODY) == BODY


TOC_PAGE = """<html><head><title>How to plan a winter garden | Coast Courier</title></head><body>
<nav class="toc"><a href="#soil">Preparing the soil</a><a href="/garden/winter#bulbs">Choosing the bulbs</a></nav>
<ul class="related"><li><a href="/garden/frost">Frost covers tested</a></li><li><a href="/garden/tools">Tools worth buying</a></li></ul>
</body></html>"""


def test_headings_listed_in_a_table_of_contents_stay():
    """Consecutive headings that are also in-page anchors (#section) are the article's own, not a link list."""
    lines = ["Preparing the soil", "Choosing the bulbs",
             "Dig in compost before the first frost so that the beds drain well through the wet months ahead.",
             "Frost covers tested", "Tools worth buying"]
    tree = lxml.html.fromstring(TOC_PAGE)
    text = clean_text("\n".join(lines), tree, "https://coast.example/garden/winter", "How to plan a winter garden").split("\n")
    assert text == lines[:3]  # the table-of-contents headings stay; the run of links to other pages goes


def test_title_loses_a_trailing_site_name_only():
    from pipelines.textclean import clean_title

    url = "https://www.harbourtimes.example/news/ferry"
    assert clean_title("Ferry timetable approved | Harbour Times", "Harbour Times", url) == "Ferry timetable approved"
    assert clean_title("Ferry timetable approved - Local | Harbour Times", "Harbour Times", url) == "Ferry timetable approved"
    assert clean_title("Ferry timetable approved – harbourtimes.example", None, url) == "Ferry timetable approved"  # the host's name
    # a dash inside the headline, a section that is not the site, a long remainder: kept
    assert clean_title("Council - and the ferry board - agree", "Harbour Times", url) == "Council - and the ferry board - agree"
    assert clean_title("Ferry timetable approved | Opinion", "Harbour Times", url) == "Ferry timetable approved | Opinion"
    long = "Ferry board - what the Harbour Times readers said about the new winter timetable this week"
    assert clean_title(long, "Harbour Times", url) == long


def test_recall_retry_only_where_it_can_help():
    """The second extraction (recall mode) runs when the first found nothing, or took under
    half of the page's visible text, unless the page's JSON-LD declares an article."""
    from trafilatura.utils import load_html

    from pipelines.detect import declares_article
    from pipelines.extract import needs_recall_retry

    guide = "".join(f"<p>Step {i}: the council reads every comment aloud at the hearing before it votes on the plan.</p>" for i in range(10))

    def page(ld_type: str | None) -> object:
        ld = f'<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "{ld_type}", "headline": "Guide"}}</script>' if ld_type else ""
        return load_html(f"<html><head>{ld}</head><body><main><h1>Guide</h1>{guide}</main></body></html>")

    first_step = "Step 0: the council reads every comment aloud at the hearing before it votes on the plan."
    whole = "\n".join(f"Step {i}: the council reads every comment aloud at the hearing before it votes on the plan." for i in range(10))

    def retry(found: bool, raw: str, tree) -> bool:
        return needs_recall_retry(found, raw, tree, declares_article(tree))

    assert retry(True, first_step, page(None))  # one block of ten
    assert retry(True, first_step, page("WebPage"))  # not an article type
    assert not retry(True, whole, page(None))  # the whole text
    assert not retry(True, first_step, page("NewsArticle"))  # declares an article
    assert not retry(True, first_step, page("BlogPosting"))
    assert retry(False, "", page("NewsArticle"))  # nothing found: always


def test_fast_extraction_redone_when_it_falls_short():
    """On pages declaring an article, extract() takes trafilatura's fast mode first; the full
    cascade runs again when that text is under the article minimum or under 60% of the
    page's paragraph text."""
    from trafilatura.utils import load_html

    from pipelines.extract import fast_pass_fell_short

    step = "Step {}: the council reads every comment aloud at the hearing before it votes on the plan."
    tree = load_html("<html><body><main><h1>Guide</h1>" + "".join(f"<p>{step.format(i)}</p>" for i in range(10)) + "</main></body></html>")
    whole = "\n".join(step.format(i) for i in range(10))
    six, five = "\n".join(step.format(i) for i in range(6)), "\n".join(step.format(i) for i in range(5))
    assert not fast_pass_fell_short(whole, tree, 400)
    assert not fast_pass_fell_short(six, tree, 400)  # 60% of the paragraphs
    assert fast_pass_fell_short(five, tree, 400)  # one block of a longer text
    assert fast_pass_fell_short(whole, tree, len(whole) + 1)  # under the article minimum
    assert fast_pass_fell_short("", tree, 400)  # fast mode found nothing


PROSE = ("Paragraph {} of the report: the harbour board heard from fishing crews, ferry operators and the "
         "engineers who surveyed the northern channel, and it set out how the dredging would be paid for over five years.")


def test_baseline_replaces_a_text_that_kept_one_part_of_a_long_article():
    """When trafilatura keeps one block of a long article (under half the page's <p> text),
    trafilatura's baseline() is taken if it is twice as long and what it adds is prose."""
    from trafilatura.utils import load_html

    from pipelines.extract import _baseline_if_longer

    tree = load_html("<html><body><div class='a'>" + "".join(f"<p>{PROSE.format(i)}</p>" for i in range(3)) + "</div>"
                     "<div class='b'>" + "".join(f"<p>{PROSE.format(i)}</p>" for i in range(3, 9)) + "</div></body></html>")
    part = "\n".join(PROSE.format(i) for i in range(3))
    whole = _baseline_if_longer(part, tree, "http://news.example/a", None)
    assert all(PROSE.format(i) in whole for i in range(9))
    most = "\n".join(PROSE.format(i) for i in range(5))  # over half of the paragraphs: kept as it is
    assert _baseline_if_longer(most, tree, "http://news.example/a", None) is most


def test_baseline_never_brings_in_a_list_of_short_card_descriptions():
    """A short article next to a creati.ai-style "Featured" list of 85 cards (a linked name and
    a <p> description each): the cards are most of the page's <p> text, but not prose."""
    from pipelines.extract import ExtractOptions, extract

    cards = "".join(f"<div class='card'><a href='/tool/{i}'>Tool {i}</a><p>An assistant that drafts replies and summaries for team {i}.</p></div>"
                    for i in range(85))
    # in a sidebar trafilatura leaves out, while baseline() (every paragraph) takes it in
    page = ("<html><head><title>Harbour dredging</title></head><body><div class='entry-content'><h1>Harbour dredging</h1>"
            + "".join(f"<p>{PROSE.format(i)}</p>" for i in range(3)) + "</div>"
            f"<div class='sidebar widget-area'><h2>Featured</h2>{cards}</div></body></html>").encode()
    text = extract(page, "utf-8", "http://news.example/harbour", {}, ExtractOptions(keep_raw_html=False, detect_articles=False))["text"]
    assert all(PROSE.format(i) in text for i in range(3))
    assert "drafts replies" not in text


def test_baseline_respects_the_sites_prune_rules():
    """A block a NEWS_SITE_RULES prune_xpath removes stays out, though baseline() would take it in."""
    from pipelines.extract import ExtractOptions, extract

    promo = "".join(f"<p>Promotion {i}: {PROSE.format(i)}</p>" for i in range(6))
    page = ("<html><head><title>Harbour dredging</title></head><body><div class='entry-content'><h1>Harbour dredging</h1>"
            + "".join(f"<p>{PROSE.format(i)}</p>" for i in range(3)) + f"</div><div class='promo'>{promo}</div></body></html>").encode()
    options = ExtractOptions(keep_raw_html=False, detect_articles=False, site_rules={"news.example": {"prune_xpath": ["//div[@class='promo']"]}})
    text = extract(page, "utf-8", "http://news.example/harbour", {}, options)["text"]
    assert all(PROSE.format(i) in text for i in range(3)) and "Promotion" not in text
