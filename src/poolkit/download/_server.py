"""A local HTTP server on 127.0.0.1: the demo's 15 pages, and faults on demand for tests.

Routes:
    /wiki/<page>                   a demo page (size by page, ``latency`` seconds late)
    /delay/<seconds>               a small page after a delay
    /status/<code>[?retry_after=]  that status, with Retry-After when given
    /flaky/<key>/<n>/<code>        ``code`` for the first n requests of key, then 200
    /redirect?to=<url>             302 to ``to``;  /loop  redirects to itself
    /bytes/<n>                     n bytes;  /gzip/<n>  n zero bytes, gzip-encoded
    /short                         declares 1000 bytes, sends 10, closes
    /stall                         sends half its body, then stalls
    /drop                          closes the connection without answering
    /cd/<name>                     a body with Content-Disposition: attachment; filename=<name>
    /echo-headers                  the request's headers as JSON
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DEMO_PAGES", "LocalServer", "local_server"]

DEMO_PAGES = (
    "Portal:Arts",
    "Portal:History",
    "Portal:Society",
    "Portal:Biography",
    "Portal:Mathematics",
    "Portal:Technology",
    "Portal:Geography",
    "Portal:Science",
    "Computer_science",
    "Python_(programming_language)",
    "Java_(programming_language)",
    "PHP",
    "Node.js",
    "The_C_Programming_Language",
    "Go_(programming_language)",
)


def demo_page(name: str) -> bytes:
    """A deterministic HTML page of a realistic size (60-260 kB) for ``name``."""
    size = 60_000 + (sum(name.encode()) * 7919) % 200_000
    paragraph = (
        f"<p>{name.replace('_', ' ')} is one of the pages of the classic exercise: "
        "download fifteen pages serially, then with threads, then with processes.</p>\n"
    )
    head = f"<!doctype html><html><head><title>{name}</title></head><body>\n"
    body = paragraph * (size // len(paragraph) + 1)
    return (head + body)[: size - 15].encode() + b"</body></html>\n"


class LocalServer:
    """The server; use ``local_server()`` to run one for a ``with`` block."""

    def __init__(self, latency: float = 0.0, faults: bool = False, slow: float = 0.0) -> None:
        self.latency = latency
        self.faults = faults
        self.slow = slow  # with faults: how late the one slow page answers
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, daemon=True, name="poolkit-demo-server"
        )

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return self.base + path

    def demo_urls(self, sites: int = 15) -> list[str]:
        """The URLs of the first ``sites`` demo pages (repeating them past 15)."""
        return [
            self.url(f"/wiki/{DEMO_PAGES[n % len(DEMO_PAGES)]}") + ("" if n < 15 else f"?copy={n}")
            for n in range(sites)
        ]

    def reset(self) -> None:
        """Forget the request counts (flaky routes fail again)."""
        with self._lock:
            self.hits.clear()

    def count(self, key: str) -> int:
        with self._lock:
            self.hits[key] += 1
            return self.hits[key]

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@contextmanager
def local_server(
    latency: float = 0.0, faults: bool = False, slow: float = 0.0
) -> Iterator[LocalServer]:
    """Serve the demo's pages on 127.0.0.1 (a free port) for a ``with`` block: the
    downloader, tried without the network. ``latency`` delays every answer; ``faults``
    adds the demo's 503 and slow page.

    Examples:
        >>> from poolkit.download import download_all, local_server
        >>> with local_server() as server:
        ...     results = download_all(server.demo_urls(3))
        >>> [page.status for page in results.values]
        [200, 200, 200]
    """
    server = LocalServer(latency, faults, slow).start()
    try:
        yield server
    finally:
        server.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default, 5, drops connections from 64 concurrent clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a download stopped by Ctrl-C, a timeout) is no error
        of the server's: no traceback on stderr for it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes; with Nagle on, the body waits for the
        # client's delayed ACK (40 ms on Linux) on every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: tests and the demo print what matters

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            try:
                self._route(path, query)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _route(self, path: str, query: dict[str, list[str]]) -> None:
            if path.startswith("/wiki/"):
                self._wiki(path[len("/wiki/") :])
            elif path.startswith("/delay/"):
                time.sleep(float(path.split("/")[2]))
                self._send(200, b"late but here\n")
            elif path.startswith("/status/"):
                code = int(path.split("/")[2])
                extra = {"Retry-After": query["retry_after"][0]} if "retry_after" in query else {}
                self._send(code, f"status {code}\n".encode(), extra)
            elif path.startswith("/flaky/"):
                _, _, key, times, failing = path.split("/")
                if server.count("flaky:" + key) <= int(times):
                    extra = (
                        {"Retry-After": query["retry_after"][0]} if "retry_after" in query else {}
                    )
                    self._send(int(failing), b"try again\n", extra)
                else:
                    self._send(200, b"fine now\n")
            elif path == "/redirect":
                self._send(302, b"", {"Location": query["to"][0]})
            elif path == "/loop":
                self._send(302, b"", {"Location": "/loop"})
            elif path.startswith("/bytes/"):
                self._send(200, b"x" * int(path.split("/")[2]))
            elif path.startswith("/gzip/"):
                body = gzip.compress(b"\0" * int(path.split("/")[2]))
                self._send(200, body, {"Content-Encoding": "gzip"})
            elif path == "/short":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.wfile.flush()
                self.close_connection = True
            elif path == "/stall":
                self.send_response(200)
                self.send_header("Content-Length", "2000")
                self.end_headers()
                self.wfile.write(b"s" * 1000)
                self.wfile.flush()
                time.sleep(float(query.get("seconds", ["30"])[0]))
                self.close_connection = True
            elif path == "/drop":
                self.close_connection = True
                self.connection.close()
            elif path.startswith("/cd/"):
                name = path[len("/cd/") :]
                body = query.get("body", ["attached"])[0].encode() + b"\n"
                self._send(200, body, {"Content-Disposition": f'attachment; filename="{name}"'})
            elif path.startswith("/gzip2/"):  # two layers: gzip, gzip
                body = gzip.compress(gzip.compress(b"z" * int(path.split("/")[2])))
                self._send(200, body, {"Content-Encoding": "gzip, gzip"})
            elif path == "/trickle":  # a byte every 0.2 s: never idle long enough to time out
                seconds = float(query.get("seconds", ["4"])[0])
                self.send_response(200)
                self.send_header("Content-Length", str(10**6))
                self.end_headers()
                end = time.monotonic() + seconds
                try:
                    while time.monotonic() < end:
                        self.wfile.write(b"t")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
                self.close_connection = True
            elif path == "/echo-headers":
                self._send(
                    200,
                    json.dumps(dict(self.headers.items())).encode(),
                    {"Content-Type": "application/json"},
                )
            else:
                self._send(404, b"no such page\n")

        def _wiki(self, name: str) -> None:
            if name not in DEMO_PAGES:
                self._send(404, b"no such page\n")
                return
            if server.faults and name == "Portal:History" and server.count(name) == 1:
                self._send(503, b"busy, try again\n", {"Retry-After": "0"})
                return
            delay = server.latency
            if server.faults and name == "Go_(programming_language)":
                delay = server.slow
            time.sleep(delay)
            self._send(200, demo_page(name))

    return Handler
