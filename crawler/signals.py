"""Signals of the news crawler (Scrapy custom signals)."""

#: sent when a request fails for good (after retries): kwargs url, kind, detail, topics
fetch_failed = object()

#: sent by StorePipeline once its last batch is written (before spider_closed): kwargs run_id
store_finished = object()

#: sent by TemplatePipeline (while handling store_finished) for each page of articles whose
#: text it cleaned again at the end of the crawl: kwargs rows ([(url, title, text), ...]).
#: StorePipeline regroups them (Grouper.rejoin) before it closes the store
articles_recleaned = object()

#: sent by the spider when an article it will not fetch (again) is listed by a source: the
#: URL is stored (an earlier crawl; SeenArticlesMiddleware skipped it) or was fetched in this
#: crawl (it may still be on its way to the store). kwargs url (the stored URL), sources
#: ((topic, kind, source URL, query), ...). StorePipeline tags the article with the topics
#: whose query its stored text matches and records the sources for the topics it is tagged
#: with, on its writer thread, once the article is stored (the reactor never waits for SQLite)
article_listed = object()

#: sent by the spider when a Google News link in the newer format was resolved through
#: Google: kwargs article_id, url (the publisher's). StorePipeline keeps it in google_links,
#: from which GoogleLinkCacheMiddleware answers the same id in later crawls
google_link_resolved = object()
