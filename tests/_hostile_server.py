"""A loopback HTTP server that answers each route with whatever a test scripts, byte for byte.

The simulator follows the API; this one does not have to: stacked ``Content-Encoding`` layers,
bodies sent one byte per chunk, a ``/v1/models`` or price catalog that inflates to a gigabyte,
a model list that never answers. Every reply stops when the client hangs up or the server
stops, and every wait is bounded, so no test can leave a thread spinning.
"""

from __future__ import annotations

import functools
import json
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "HostileServer",
    "bomb",
    "byte_chunks",
    "hang",
    "json_reply",
    "nested_gzip",
]

MB = 1 << 20
Reply = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@functools.cache
def _gzip_of_whitespace(mb: int) -> bytes:
    """``mb`` MiB of JSON whitespace, gzip-compressed (about 1000:1), built block by block."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * MB
    parts = [packer.compress(block) for _ in range(mb)]
    parts.append(packer.flush())
    return b"".join(parts)


@functools.cache
def nested_gzip(mb: int, layers: int = 2) -> bytes:
    """``mb`` MiB of whitespace under ``layers`` gzip layers (1 GiB, twice: about 3 KB)."""
    data = _gzip_of_whitespace(mb)
    for _ in range(layers - 1):
        data = zlib.compress(data, 9, wbits=31)
    return data


def _send_head(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], chunked: bool
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.close_connection = True


def bomb(
    wire: bytes, encoding: str, status: int = 200, content_type: str = "application/json"
) -> Reply:
    """Send ``wire`` as is, in 64 KB chunks, labelled ``Content-Encoding: encoding``."""

    def reply(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        headers = {"Content-Type": content_type, "Content-Encoding": encoding}
        _send_head(handler, status, headers, chunked=True)
        try:
            for start in range(0, len(wire), 65536):
                if stopping.is_set():
                    return
                piece = wire[start : start + 65536]
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            return  # the client hung up: what it should do

    return reply


def byte_chunks(body: bytes, status: int = 200, content_type: str = "application/json") -> Reply:
    """Send ``body`` with chunked transfer encoding, one byte per chunk."""
    wire = b"".join(b"1\r\n%s\r\n" % body[i : i + 1] for i in range(len(body))) + b"0\r\n\r\n"

    def reply(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        _send_head(handler, status, {"Content-Type": content_type}, chunked=True)
        try:
            for start in range(0, len(wire), MB):
                if stopping.is_set():
                    return
                handler.wfile.write(wire[start : start + MB])
        except OSError:
            return

    return reply


def json_reply(payload: Any, status: int = 200) -> Reply:
    body = json.dumps(payload).encode()

    def reply(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        _send_head(handler, status, headers, chunked=False)
        handler.wfile.write(body)

    return reply


def hang(seconds: float) -> Reply:
    """Answer nothing for ``seconds`` (or until the server stops), then an empty list."""

    def reply(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        stopping.wait(seconds)
        json_reply({"data": []})(handler, stopping)

    return reply


class HostileServer:
    """``routes[(method, path)] = reply``; unknown routes get a 404. ``requests`` logs
    ``(method, path)`` of everything received."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply] = {}
        self.requests: list[tuple[str, str]] = []
        self.arrived = threading.Event()  # set at each request
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, path))
                server.arrived.set()
                reply = server.routes.get((self.command, path))
                if reply is None:
                    reply = json_reply({"error": {"message": "no such route"}}, 404)
                try:
                    reply(self, server._stopping)
                except OSError:
                    self.close_connection = True  # the client hung up: what it should do

            do_GET = do_POST = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
