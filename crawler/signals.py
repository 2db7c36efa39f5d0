"""Signals of the news crawler (Scrapy custom signals)."""

#: sent when a request fails for good (after retries): kwargs url, kind, detail, topics
fetch_failed = object()

#: sent by StorePipeline once its last batch is written (before spider_closed): kwargs run_id
store_finished = object()
