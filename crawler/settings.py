"""Scrapy settings for the news crawler.

Everything project-specific is a ``NEWS_*`` setting, read by the component that uses it
in ``from_crawler`` and overridable on the command line: ``scrapy crawl news -s NEWS_DB=x.db``.
"""

from pathlib import Path

BOT_NAME = "newscrawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

_ROOT = Path(__file__).resolve().parent.parent

# --- The NEWS_* block ------------------------------------------------------------
# Topics file (TOML, see README). Relative paths are taken from the current directory.
NEWS_TOPICS = str(_ROOT / "topics.toml")
# The SQLite store (created on first use; WAL mode).
NEWS_DB = str(_ROOT / "news.db")
# Contact put in the User-Agent so site owners can reach whoever runs the crawler.
NEWS_CONTACT = "https://github.com/newsgroup-crawler/newsgroup-crawler"
# Extraction worker processes; 0 = one per CPU core. Each is replaced after
# NEWS_EXTRACT_MAX_TASKS_PER_CHILD pages (0 = never) so memory stays flat on long crawls.
NEWS_EXTRACT_WORKERS = 0
NEWS_EXTRACT_MAX_TASKS_PER_CHILD = 500
# Pages whose extracted text is shorter than this (characters) are "not an article".
NEWS_MIN_TEXT_CHARS = 400
# Reject listing, forum, product, service and documentation pages (pipelines/detect.py).
NEWS_DETECT_ARTICLES = True
# Keep the raw HTML of each stored article (zlib-compressed, table raw_html) so that
# extraction can be re-run later without re-fetching.
NEWS_KEEP_RAW_HTML = True
# Articles written per transaction, and the longest an article waits in the buffer.
NEWS_STORE_BATCH_SIZE = 50
NEWS_STORE_FLUSH_SECONDS = 2.0
# Most articles between the start of extraction and the end of the store (pipelines/flow.py):
# at this many, fetching pauses until some are stored, so it cannot run ahead of the writer.
# 0 = automatic: 3 x NEWS_STORE_BATCH_SIZE + 4 x extraction workers.
NEWS_ITEMS_IN_FLIGHT = 0
# Long crawls: return freed heap memory to the OS (glibc malloc_trim) at most this often,
# from the store's writer thread, so resident memory stays near what is really in use. 0 = off.
NEWS_MALLOC_TRIM_SECONDS = 1.0
# ...and give every block of at least this many bytes its own mapping (glibc mallopt
# M_MMAP_THRESHOLD), so the grouping index's growing arrays do not fragment the heap. 0 = glibc's default.
NEWS_MALLOC_MMAP_THRESHOLD = 1048576
# Links followed from one listing page (section pages), and entries read from one sitemap.
NEWS_MAX_LINKS_PER_PAGE = 200
NEWS_MAX_SITEMAP_URLS = 50_000
# Longest wait honoured from a Retry-After header (seconds); longer ones give up the retry.
NEWS_RETRY_AFTER_MAX = 120
# Exponential back-off between retries: base * 2**(attempt-1) seconds.
NEWS_RETRY_BACKOFF_BASE = 1.0

# Site-template removal (pipelines/template.py): a short text block (at most
# NEWS_TEMPLATE_MAX_BLOCK_CHARS characters) found on NEWS_TEMPLATE_MIN_PAGES or more pages
# of one site, and on at least NEWS_TEMPLATE_MIN_SHARE of the site's pages seen so far, is
# boilerplate and is removed from that site's article text.
NEWS_TEMPLATE_REMOVAL = True
NEWS_TEMPLATE_MIN_PAGES = 3
NEWS_TEMPLATE_MIN_SHARE = 0.3
NEWS_TEMPLATE_MAX_BLOCK_CHARS = 300
# Per-site extraction rules for hard cases, by host (a rule for "example.com" also covers
# its subdomains): {"example.com": {"prune_xpath": ["//div[@class='featured']"]}}.
# On the command line: -s 'NEWS_SITE_RULES={"example.com": {"prune_xpath": "//aside"}}'
NEWS_SITE_RULES = {}

# Grouping (pipelines/group.py, see docs/grouping.md): near-duplicate groups (cluster_id)
# and stories (story_id). NEWS_DEDUP_* and NEWS_STORY_* tune it; defaults come from
# measurements on the evaluation sets.
NEWS_GROUPING = True

# Fetch links that point at loopback/private/link-local addresses even when they are not
# on one of the topics' configured source origins (off: a server daemon must not be
# steered into its own network by a feed).
NEWS_ALLOW_PRIVATE_NETWORKS = False

# News-search services (a topic's `search = [...]`): base URLs (path and query are built
# by the crawler), Google News language and country, and the per-service rate limits.
NEWS_GOOGLE_NEWS_URL = "https://news.google.com"
NEWS_GOOGLE_NEWS_HL = "en-US"
NEWS_GOOGLE_NEWS_GL = "US"
NEWS_BING_NEWS_URL = "https://www.bing.com"
NEWS_GDELT_URL = "https://api.gdeltproject.org"
# Seconds between two requests to each service (GDELT asks for one every 5 seconds). The
# spider gives each service its own download slot (DOWNLOAD_SLOTS "search-<service>", see
# SearchSources.update_settings in crawler/spiders/search_sources.py): one request at a
# time, exactly this far apart (no jitter, not adjusted by AutoThrottle). Only requests to the service's host use it; publisher pages
# found by a search use their own host's slot. Services left out keep these defaults.
NEWS_SEARCH_DELAYS = {"google_news": 1.0, "bing_news": 1.0, "gdelt": 5.0}

# --- Politeness ----------------------------------------------------------------
# "{contact}" is filled in from NEWS_CONTACT by crawler.middlewares.ContactUserAgentMiddleware.
USER_AGENT = "newscrawler/0.1 (+{contact})"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
# Scrapy starts this many asyncio tasks for the output of every response; an article page
# gives one item and a feed or sitemap a list of requests that are queued in a moment, so
# Scrapy's default of 100 only costs CPU and memory (100 tasks per page in flight).
CONCURRENT_ITEMS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 20 * 1024 * 1024
DOWNLOAD_WARNSIZE = 5 * 1024 * 1024
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
REDIRECT_MAX_TIMES = 10
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.NetworkSafetyMiddleware": 50,
    "crawler.middlewares.SearchSlotMiddleware": 60,
    "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": None,
    "crawler.middlewares.ContactUserAgentMiddleware": 500,
    # Retry with back-off and Retry-After replaces Scrapy's plain retry.
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
    "crawler.middlewares.SeenArticlesMiddleware": 560,
    "crawler.middlewares.ConditionalGetMiddleware": 570,
    "crawler.middlewares.GoogleLinkCacheMiddleware": 580,
}

ITEM_PIPELINES = {
    "pipelines.extract.ExtractPipeline": 200,
    "pipelines.template.TemplatePipeline": 250,
    "pipelines.relevance.RelevancePipeline": 300,
    "pipelines.store.StorePipeline": 900,
}

EXTENSIONS = {
    "crawler.runs.CrawlRunRecorder": 100,
    # progress every LOGSTATS_INTERVAL seconds: Scrapy's pages/min plus the crawl's own counters
    "scrapy.extensions.logstats.LogStats": None,
    "crawler.progress.CrawlProgress": 0,
}

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
# what `scrapy crawl news -O items.jsonl` exports (internal fields such as the raw HTML stay out)
FEED_EXPORT_FIELDS = [
    "url", "fetched_url", "title", "text", "published", "published_source", "authors", "sitename",
    "hostname", "language", "description", "tags", "image", "word_count", "content_hash",
    "topics", "matches", "sources", "fetched_at",
]
LOG_LEVEL = "INFO"
