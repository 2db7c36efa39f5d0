"""Relevance: keep articles that match their topics' queries; store the matched terms."""

from __future__ import annotations

import logging

from scrapy.exceptions import NotConfigured

from crawler.items import ArticleItem
from crawler.stats import count
from crawler.topics import topics_by_name
from pipelines.drops import IrrelevantDrop

logger = logging.getLogger(__name__)


class RelevancePipeline:
    """Matches title + text against each of the item's topics.

    An article is kept when at least one of its topics matches; ``item["matches"]`` maps
    each matching topic to its matched terms. Topics that do not match count it as
    ``irrelevant``; an article that matches none is dropped.
    """

    def __init__(self, topics: dict, stats):
        self.topics = topics  # name -> Topic
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.get("NEWS_TOPICS"):
            raise NotConfigured("NEWS_TOPICS is not set")
        return cls(topics_by_name(crawler.settings), crawler.stats)

    def process_item(self, item):
        if not isinstance(item, ArticleItem):
            return item
        text = f"{item.get('title') or ''}\n{item.get('text') or ''}"
        matches = {}
        for name in item["topics"]:
            topic = self.topics.get(name)
            found = topic.match(text) if topic else None
            if found is None:
                count(self.stats, "irrelevant", [name], total=False)
            else:
                matches[name] = sorted(found)
        if not matches:
            count(self.stats, "irrelevant")
            logger.info("Irrelevant to %s: %s", ", ".join(item["topics"]), item["url"])
            raise IrrelevantDrop("matches no topic query", log_level="DEBUG")
        item["topics"] = tuple(matches)
        item["matches"] = matches
        return item
