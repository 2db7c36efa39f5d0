"""Site-template removal: text blocks that repeat across a site's pages are not article text.

trafilatura leaks some boilerplate in known layouts (e.g. a creati.ai-style "Featured" list
of ad cards inside the article container). Such blocks repeat on every page of the site,
which is how they are caught here:

* every page's short text blocks (paragraphs, list items, headings, links, table cells)
  are read from its HTML in the extraction worker, whatever trafilatura kept;
* per site (host), each block's key is counted once per page (``site_blocks``, kept
  across crawls);
* the extracted text is split into its lines, and each line is looked up;
* a block seen on at least ``NEWS_TEMPLATE_MIN_PAGES`` distinct pages of the site, and on
  at least ``NEWS_TEMPLATE_MIN_SHARE`` of the site's pages seen so far, is template, and is
  removed from the site's articles (a site's template is on nearly every page; a story
  the site republished three times is on three pages out of many: it stays);
* never removed: blocks longer than ``NEWS_TEMPLATE_MAX_BLOCK_CHARS`` (article paragraphs
  are long; card blurbs, navigation, bylines and promos are short), and blocks sharing two
  or more title words with the article's own title (a series' recurring background line);
* the first pages of a site are stored before the template is known: at the end of the
  crawl, this crawl's articles of every site with template blocks are cleaned again.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from urllib.parse import urlsplit

from scrapy.exceptions import NotConfigured

from crawler import signals as news_signals

from crawler.items import ArticleItem
from pipelines.db import open_db, write_transaction
from pipelines.textnorm import block_key, content_hash, words

logger = logging.getLogger(__name__)

__all__ = ["SiteTemplates", "TemplatePipeline"]

RECLEAN_PAGE = 500  # articles read at a time when a crawl's articles are cleaned again at its end

_STOP = frozenset(
    "the a an and or of to in on for with from by at as is are was were be been this that these those "
    "it its into over after before about than more most new says said will would could can has have had "
    "not but who what when where how why which".split()
)


def _title_words(title: str | None) -> set[str]:
    return {w for w in words(title or "") if len(w) > 3 and w not in _STOP}


class SiteTemplates:
    """Counts of short text blocks per site, and the cleaning that follows from them.

    ``load(host)`` is called with each host's stored counts before its first page; the
    counts added by this crawl are returned by ``changes()`` for saving.
    """

    PAGES_KEY = 0  # the site's page counter is stored as the block with key 0
    PRUNE_EVERY = 500  # pages of a site between two prunings of its single-page blocks

    def __init__(self, min_pages: int = 3, max_block_chars: int = 300, min_share: float = 0.3):
        if min_pages < 2:
            raise ValueError(f"min_pages={min_pages}: a block must repeat on at least 2 pages to be template (3 or more is safer)")
        if not 0.0 <= min_share <= 1.0:
            raise ValueError(f"min_share={min_share}: NEWS_TEMPLATE_MIN_SHARE is a fraction of the site's pages, from 0 to 1 (e.g. 0.3)")
        self.min_pages = min_pages
        self.min_share = min_share
        self.max_block_chars = max_block_chars
        self._counts: dict[str, dict[int, int]] = {}
        self._dirty: set[tuple[str, int]] = set()

    def knows(self, host: str) -> bool:
        return host in self._counts

    def load(self, host: str, counts: dict[int, int]) -> None:
        self._counts[host] = dict(counts)

    def observe(self, host: str, keys) -> None:
        """Count the block keys of one page of ``host`` (each key once per page)."""
        counts = self._counts.setdefault(host, {})
        for key in {*keys, self.PAGES_KEY}:
            counts[key] = counts.get(key, 0) + 1
            self._dirty.add((host, key))
        pages = counts[self.PAGES_KEY]
        if pages % self.PRUNE_EVERY == 0:
            # keep memory flat on long crawls: a block seen on one page of the last
            # PRUNE_EVERY is far from the share a template needs (and is not saved anyway)
            for key in [k for k, n in counts.items() if n == 1 and k != self.PAGES_KEY]:
                del counts[key]
                self._dirty.discard((host, key))

    def _threshold(self, counts: dict[int, int]) -> int:
        return max(self.min_pages, math.ceil(self.min_share * counts.get(self.PAGES_KEY, 0)))

    def has_template(self, host: str) -> bool:
        counts = self._counts.get(host, {})
        threshold = self._threshold(counts)
        return any(n >= threshold for key, n in counts.items() if key != self.PAGES_KEY)

    def clean(self, host: str, text: str, title: str | None = None) -> tuple[str, int]:
        """``text`` without the site's template blocks, and how many lines were removed."""
        counts = self._counts.get(host)
        if not counts:
            return text, 0
        protected = _title_words(title)
        threshold = self._threshold(counts)
        kept, removed = [], 0
        for line in text.split("\n"):
            block = line.strip()
            if (
                block
                and len(block) <= self.max_block_chars
                and counts.get(block_key(block), 0) >= threshold
                and len(protected & set(words(block))) < 2
            ):
                removed += 1
                continue
            kept.append(line)
        return "\n".join(kept).strip(), removed

    def changes(self) -> list[dict]:
        rows = [{"host": host, "key": key, "pages": self._counts[host][key]} for host, key in self._dirty]
        self._dirty.clear()
        return rows


class TemplatePipeline:
    """Learns each site's template blocks and removes them from article text (see module doc).

    Settings: NEWS_TEMPLATE_MIN_PAGES (3), NEWS_TEMPLATE_MIN_SHARE (0.3),
    NEWS_TEMPLATE_MAX_BLOCK_CHARS (300), NEWS_TEMPLATE_REMOVAL (True).
    """

    def __init__(self, crawler, db_path: str, templates: SiteTemplates):
        self.stats = crawler.stats
        self.signals = crawler.signals
        self.db_path = db_path
        self.templates = templates
        self.db = None
        self._hosts_this_crawl: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        if not settings.getbool("NEWS_TEMPLATE_REMOVAL", True):
            raise NotConfigured("NEWS_TEMPLATE_REMOVAL is off")
        templates = SiteTemplates(
            min_pages=settings.getint("NEWS_TEMPLATE_MIN_PAGES", 3),
            max_block_chars=settings.getint("NEWS_TEMPLATE_MAX_BLOCK_CHARS", 300),
            min_share=settings.getfloat("NEWS_TEMPLATE_MIN_SHARE", 0.3),
        )
        pipeline = cls(crawler, settings.get("NEWS_DB"), templates)
        # pipelines close in parallel: re-clean once the store has written its last batch
        # (and before the crawl run is recorded as finished)
        crawler.signals.connect(pipeline.store_finished, signal=news_signals.store_finished)
        return pipeline

    def open_spider(self):
        self.db = open_db(self.db_path)

    def process_item(self, item):
        if not isinstance(item, ArticleItem) or not item.get("text"):
            return item
        host = urlsplit(item["url"]).netloc.lower()  # a site is scheme-less host[:port]
        if not self.templates.knows(host):
            rows = self.db.execute("SELECT key, pages FROM site_blocks WHERE host = ?", [host]).fetchall()
            self.templates.load(host, dict(rows))
        self._hosts_this_crawl.add(host)
        self.templates.observe(host, item.get("block_keys") or ())
        item["block_keys"] = None
        text, removed = self.templates.clean(host, item["text"], item.get("title"))
        if removed:
            self.stats.inc_value("news/template_lines_removed", removed)
            _set_text(item, text)
        return item

    def store_finished(self, run_id=None):
        """Save the counts, then clean this crawl's early articles of sites whose template emerged."""
        if self.db is None:
            return
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # blocks seen on one page only are not kept (most links and headlines are unique): the
        # table holds what can become template, not every line of every page
        rows = [(r["host"], r["key"], r["pages"], now) for r in self.templates.changes() if r["pages"] >= 2 or r["key"] == SiteTemplates.PAGES_KEY]
        with write_transaction(self.db):
            self.db.conn.executemany(
                "INSERT INTO site_blocks (host, key, pages, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(host, key) DO UPDATE SET pages = excluded.pages, last_seen = excluded.last_seen",
                rows,
            )
        recleaned = 0
        for host in sorted(self._hosts_this_crawl):
            if not self.templates.has_template(host):
                continue
            # in pages of RECLEAN_PAGE rows: a big crawl of one site must not load all its texts at once
            after = 0
            while True:
                rows = self.db.execute(
                    "SELECT rowid, url, title, text FROM articles WHERE hostname = ? AND run_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                    [host.rsplit(":", 1)[0].strip("[]"), run_id, after, RECLEAN_PAGE],
                ).fetchall()
                if not rows:
                    break
                after = rows[-1][0]
                changed = []
                with write_transaction(self.db):
                    for _, url, title, text in rows:
                        if urlsplit(url).netloc.lower() != host:
                            continue
                        cleaned, removed = self.templates.clean(host, text or "", title)
                        if removed:
                            self.db["articles"].update(url, text_fields(cleaned))
                            changed.append((url, title, cleaned))
                if changed:  # their groups were decided on the uncleaned text
                    recleaned += len(changed)
                    self.signals.send_catch_log(news_signals.articles_recleaned, rows=changed)
        if recleaned:
            logger.info("Cleaned %d article(s) again once their site's template was known", recleaned)
            self.stats.inc_value("news/template_recleaned", recleaned)
        self.db.close()
        self.db = None


def text_fields(text: str) -> dict:
    return {"text": text, "content_hash": content_hash(text), "word_count": len(text.split())}


def _set_text(item: ArticleItem, text: str) -> None:
    for key, value in text_fields(text).items():
        item[key] = value
