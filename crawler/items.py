"""Items passed from the spider through the pipelines."""

from __future__ import annotations

import scrapy


class ArticleItem(scrapy.Item):
    # set by the spider
    url = scrapy.Field()  # canonical URL (primary key in the store)
    fetched_url = scrapy.Field()  # the URL requested
    topics = scrapy.Field()  # names of the topics whose sources listed this article
    sources = scrapy.Field()  # [{topic, kind, source, query}]: which feed, sitemap, page or search found it
    hints = scrapy.Field()  # {title, published, published_source} from the feed or sitemap; {language, domain} from GDELT
    html = scrapy.Field(serializer=lambda _: None)  # response body (bytes); dropped after extraction
    encoding = scrapy.Field()
    status = scrapy.Field()
    content_type = scrapy.Field()
    fetched_at = scrapy.Field()
    # set by ExtractPipeline
    title = scrapy.Field()
    text = scrapy.Field()
    published = scrapy.Field()
    published_source = scrapy.Field()
    authors = scrapy.Field()
    sitename = scrapy.Field()
    hostname = scrapy.Field()
    language = scrapy.Field()
    description = scrapy.Field()
    tags = scrapy.Field()
    image = scrapy.Field()
    word_count = scrapy.Field()
    content_hash = scrapy.Field()
    html_zlib = scrapy.Field(serializer=lambda _: None)
    block_keys = scrapy.Field(serializer=lambda _: None)  # keys of the page's short text blocks (template removal)
    group_features = scrapy.Field(serializer=lambda _: None)  # pipelines.group.Features, computed in the worker

    # set by RelevancePipeline: {topic: [matched terms]}
    matches = scrapy.Field()
