"""Signals of the news crawler (Scrapy custom signals)."""

#: sent when a request fails for good (after retries): kwargs url, kind, detail, topics
fetch_failed = object()

#: sent by StorePipeline once its last batch is written (before spider_closed): kwargs run_id
store_finished = object()

#: sent by SeenArticlesMiddleware for an already stored article listed again: kwargs
#: article_topics, article_sources (rows to add); StorePipeline writes them with its next
#: batch, on its writer thread (the reactor never waits for SQLite's write lock)
seen_article_rows = object()
