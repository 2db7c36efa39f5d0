"""A small threaded HTTP server for fixture sites, on 127.0.0.1 only.

Used by the offline demo, the tests and the benchmarks. It serves a directory (or an
in-memory mapping of path -> bytes), replaces ``{{BASE}}`` in text files with its own
base URL, answers conditional GETs (ETag / Last-Modified -> 304), and records every
request so tests can check what the crawler fetched.

    with FixtureServer(root="demo/site") as server:
        print(server.base)          # http://127.0.0.1:PORT
        ...
        server.paths()              # ["/robots.txt", "/feeds/rss.xml", ...]
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import mimetypes
import posixpath
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

__all__ = ["FixtureServer", "Response", "RequestRecord"]

_TEXT_TYPES = {".html", ".htm", ".xml", ".json", ".txt", ".toml", ".rss", ".atom", ""}
# one fixed date so conditional GETs are reproducible
_LAST_MODIFIED = email.utils.formatdate(1_763_000_000, usegmt=True)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    drip: float = 0.0  # hostile-server tests: seconds between 100-byte chunks of the body
    abort: bool = False  # hostile-server tests: close the connection without answering
    reset: bool = False  # hostile-server tests: with abort, reset it (TCP RST) instead of closing it
    declared_length: int | None = None  # hostile-server tests: a Content-Length the body falls short of


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # path + query, as requested
    status: int
    headers: dict


Route = Callable[["BaseHTTPRequestHandler"], Response]


class FixtureServer:
    def __init__(
        self,
        root: str | Path | None = None,
        pages: Mapping[str, bytes | Response] | None = None,
        routes: Mapping[str, Route] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.root = Path(root).resolve() if root else None
        self.pages = dict(pages or {})
        self.routes = dict(routes or {})
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FixtureServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fixture-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FixtureServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def paths(self) -> list[str]:
        return [r.path for r in self.records()]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # -- content -----------------------------------------------------------------
    def resolve(self, handler: BaseHTTPRequestHandler) -> Response:
        path = urlsplit(handler.path).path
        if path in self.routes:
            return self.routes[path](handler)
        if path in self.pages:
            page = self.pages[path]
            return page if isinstance(page, Response) else Response(200, page, {"Content-Type": _guess_type(path)})
        if self.root is not None:
            file = self._file_for(path)
            if file is not None:
                return Response(200, self._file_body(file), {"Content-Type": _guess_type(file.name)})
            if path.endswith(".gz"):
                # X.gz is served as the gzip of X (with {{BASE}} replaced) when only X exists
                plain = self._file_for(path[: -len(".gz")])
                if plain is not None:
                    body = gzip.compress(self._file_body(plain), mtime=0)
                    return Response(200, body, {"Content-Type": "application/gzip"})
        return Response(404, b"<html><body><h1>Not found</h1></body></html>", {"Content-Type": "text/html"})

    def _file_body(self, file: Path) -> bytes:
        body = file.read_bytes()
        if file.suffix in _TEXT_TYPES:
            body = body.replace(b"{{BASE}}", self.base.encode())
        return body

    def _file_for(self, path: str) -> Path | None:
        rel = posixpath.normpath(unquote(path)).lstrip("/")
        if rel.startswith(".."):
            return None
        candidate = (self.root / rel).resolve()
        if self.root not in candidate.parents and candidate != self.root:
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionResetError:  # the client reset a kept-alive connection: not our problem
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                self._serve(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(head=True)

            def _serve(self, head: bool) -> None:
                try:
                    response = server.resolve(self)
                except Exception as exc:  # a broken route must not kill the server
                    response = Response(500, repr(exc).encode(), {"Content-Type": "text/plain"})
                if response.abort:
                    with server._lock:
                        server._records.append(RequestRecord(self.command, self.path, 0, dict(self.headers)))
                    if response.reset:  # linger 0, closed here (not shut down first): the client gets an RST
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                    self.close_connection = True
                    return
                headers = dict(response.headers or {})
                status, body = response.status, response.body
                if status == 200 and "ETag" not in headers:
                    headers["ETag"] = '"%s"' % hashlib.sha1(body).hexdigest()[:16]
                    headers.setdefault("Last-Modified", _LAST_MODIFIED)
                    if _not_modified(self.headers, headers):
                        status, body = 304, b""
                with server._lock:
                    server._records.append(RequestRecord(self.command, self.path, status, dict(self.headers)))
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(response.declared_length or len(body)))
                    self.end_headers()
                    if not head and body and response.drip:
                        for i in range(0, len(body), 100):
                            self.wfile.write(body[i : i + 100])
                            self.wfile.flush()
                            time.sleep(response.drip)
                    elif not head and body:
                        self.wfile.write(body)
                    if response.declared_length:
                        self.close_connection = True  # the rest never comes
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (a killed crawl): not our problem

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler


def _not_modified(request_headers, response_headers: dict) -> bool:
    if_none_match = request_headers.get("If-None-Match")
    if if_none_match is not None:
        return response_headers["ETag"] in [tag.strip() for tag in if_none_match.split(",")]
    if_modified_since = request_headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
            modified = email.utils.parsedate_to_datetime(response_headers["Last-Modified"])
        except (TypeError, ValueError):
            return False
        return modified <= since
    return False


def _guess_type(name: str) -> str:
    if name.endswith(".gz"):
        return "application/gzip"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".xml"):
        return "application/xml"
    if name.endswith("robots.txt") or name.endswith(".txt"):
        return "text/plain; charset=utf-8"
    guessed = mimetypes.guess_type(name)[0]
    if guessed is None or guessed == "text/html":
        return "text/html; charset=utf-8"
    return guessed
