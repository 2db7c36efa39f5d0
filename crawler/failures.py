"""What went wrong with a request: (kind, detail) for fetch_errors and the per-kind counts."""

from __future__ import annotations

import re

from scrapy.exceptions import IgnoreRequest
from twisted.python.failure import Failure

from crawler.urls import RefusedAddress

__all__ = ["SeenBefore", "describe_failure"]

DETAIL_CHARS = 500  # of an error's message, kept in fetch_errors.detail
_URL = re.compile(r"\S+://\S+|<\d{3} \S+>")  # URLs, and Scrapy's <200 URL> response reprs


class SeenBefore(IgnoreRequest):
    """An article request dropped because its URL is stored or was judged by an earlier crawl
    (SeenArticlesMiddleware): counted as skipped_seen, not as a failure."""


def describe_failure(failure: Failure) -> tuple[str, str]:
    """(kind, detail) of a failed request, for fetch_errors and the per-kind counts."""
    from scrapy import exceptions as sx
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import error as net

    exc = failure.value
    text = str(exc)[:DETAIL_CHARS]
    # matched without the URLs it names (a long URL comes before what matters, and a URL may
    # itself contain "robots.txt" or "max size")
    message = _URL.sub(" ", str(exc))
    if isinstance(exc, SeenBefore):
        return "seen", text
    if isinstance(exc, RefusedAddress):
        return "refused_address", text
    if isinstance(exc, HttpError):
        return f"http_{exc.response.status}", f"HTTP {exc.response.status}"
    if isinstance(exc, sx.IgnoreRequest):
        # Scrapy's middlewares raise plain IgnoreRequests: tell them apart by their message
        if "robots.txt" in message:
            return "robots", text
        if "max redirections" in message:
            return "too_many_redirects", text
        if "max size" in message.lower() or "DOWNLOAD_MAXSIZE" in message:
            return "too_large", text  # e.g. a decompression bomb
        return "ignored", text
    if isinstance(exc, sx.DownloadCancelledError):  # cancelled: larger than DOWNLOAD_MAXSIZE, or shut down
        return ("too_large" if "max size" in message.lower() else "cancelled"), text
    kinds = [
        ((sx.DownloadTimeoutError, net.TimeoutError, net.TCPTimedOutError), "timeout"),
        ((sx.CannotResolveHostError, net.DNSLookupError), "dns"),
        ((sx.DownloadConnectionRefusedError, net.ConnectionRefusedError), "connection_refused"),
        ((sx.ResponseDataLossError,), "truncated_response"),
        ((sx.UnsupportedURLSchemeError,), "unsupported_scheme"),
        ((sx.DownloadFailedError, net.ConnectionLost, net.ConnectionDone, net.ConnectError), "connection_lost"),
    ]
    for types, kind in kinds:
        if isinstance(exc, types):
            return kind, text
    return type(exc).__name__, text
