"""What went wrong with a request: (kind, detail) for fetch_errors and the per-kind counts."""

from __future__ import annotations

from twisted.python.failure import Failure

from crawler.urls import RefusedAddress

__all__ = ["describe_failure"]


def describe_failure(failure: Failure) -> tuple[str, str]:
    """(kind, detail) of a failed request, for fetch_errors and the per-kind counts."""
    from scrapy import exceptions as sx
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import error as net

    exc = failure.value
    text = str(exc)[:500]
    if isinstance(exc, RefusedAddress):
        return "refused_address", text
    if isinstance(exc, HttpError):
        return f"http_{exc.response.status}", f"HTTP {exc.response.status}"
    if isinstance(exc, sx.IgnoreRequest):
        # Scrapy's middlewares raise plain IgnoreRequests: tell them apart by their message
        if "robots.txt" in text:
            return "robots", text
        if "max redirections" in text:
            return "too_many_redirects", text
        if "max size" in text.lower() or "DOWNLOAD_MAXSIZE" in text:
            return "too_large", text  # e.g. a decompression bomb
        return "ignored", text
    if isinstance(exc, sx.DownloadCancelledError):  # cancelled: larger than DOWNLOAD_MAXSIZE, or shut down
        return ("too_large" if "max size" in text.lower() else "cancelled"), text
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
