"""Request meta keys of the ``news`` spider, and the download slots of the search services.

Shared by the spider (crawler/spiders/news.py, crawler/spiders/search_sources.py) and the
downloader middlewares (crawler/middlewares.py).
"""

from __future__ import annotations

from typing import NamedTuple

TOPICS = "news_topics"  # tuple of topic names
ARTICLE = "news_article"  # True on article requests
HINTS = "news_hints"  # what the source said: title, published, published_source
SOURCE = "news_source"  # feed | sitemap | robots | page | a search service, on discovery requests
SEARCH_QUERY = "news_search_query"  # the query sent to a search service
KEY = "news_key"  # the canonical URL an article was scheduled under (before redirects)
SEARCH_URL = "news_search_url"  # on requests resolving a Google News link: the search that listed it
GOOGLE_LINK = "news_google_link"  # on those requests: (the search result, the resolution step)
GOOGLE_FIRST_STEP = "article page"  # the first request resolving such a link (then "batchexecute")
GOOGLE_CACHED = "news_google_cached"  # set by GoogleLinkCacheMiddleware when it answered from google_links
GOOGLE_NO_CACHE = "news_google_no_cache"  # on a request that must ask Google (its stored answer was refused)
STORED_AS = "news_stored_as"  # set by SeenArticlesMiddleware on an article request it skips: the stored URL
# meta of a request to a search service's own host: its download slot, spaced exactly by
# NEWS_SEARCH_DELAYS (AutoThrottle would bring every slot's delay down to the latency)
NO_THROTTLE = {"autothrottle_dont_adjust_delay": True}
REDIRECT_STATUSES = [301, 302, 303, 307, 308]


def search_slot(service: str) -> str:
    """The download slot of ``service`` (see SearchSources.update_settings)."""
    return f"search-{service}"


class Listing(NamedTuple):
    """Who listed a batch of candidate articles: its topics, the source's URL (for a link
    resolved through Google, the search that listed it) and the search query ("" if none)."""

    topics: tuple[str, ...]
    source_url: str
    query: str = ""

    @classmethod
    def of(cls, response) -> "Listing":
        meta = response.meta
        return cls(tuple(meta[TOPICS]), meta.get(SEARCH_URL, response.url), meta.get(SEARCH_QUERY, ""))
