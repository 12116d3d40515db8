"""The simulator's HTTP plumbing: a threading server that tracks its connections, and the
request-handler base that sends, reads and waits the way every route needs.

Every connection runs on its own thread so latency is concurrent; waits use
``SimState.stopping`` so a hung or slow handler wakes as soon as the server stops. The routes
themselves are in ``sim.handler``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cometnb.sim.generation import JSON, error_body
from cometnb.sim.state import SimState

__all__ = ["MAX_BODY", "SimHTTPServer", "SimHandlerBase"]

MAX_BODY = 16 * 1024 * 1024  # larger bodies get 413 (CometAPI lists it)


class SimHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its live connections, so ``stop()`` can close them
    (waking keep-alive readers) and join their threads with a bounded wait.

    Example::

        >>> from cometnb.sim.handler import SimHandler
        >>> httpd = SimHTTPServer(("127.0.0.1", 0), SimState(), SimHandler)
        >>> httpd.server_close()
    """

    daemon_threads = True
    block_on_close = False  # we join ourselves, with a deadline
    request_queue_size = 128  # the default 5 drops SYNs when a benchmark opens 16 at once

    def __init__(
        self,
        address: tuple[str, int],
        state: SimState,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        self.state = state
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="cometnb-sim-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is normal; anything else is a simulator bug.
        if isinstance(sys.exc_info()[1], OSError):
            return
        self.state.note_error(traceback.format_exc())

    def close_connections(self) -> None:
        """Shut down every live connection's socket (their reader threads wake and end)."""
        with self._conn_lock:
            sockets = list(self._conns)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_connections(self, deadline: float) -> list[threading.Thread]:
        """Join connection threads until ``deadline``; return the ones still alive."""
        with self._conn_lock:
            threads = list(self._conns.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]


class SimHandlerBase(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with the simulator's marker header on every response, quiet logs,
    bounded body reads, stoppable waits and chunked writes."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real service
    server_version = "cometnb-sim"
    timeout = 300  # seconds an idle keep-alive connection is kept
    server: SimHTTPServer
    _responded = False  # a status line went out for the current request
    limit_headers: dict[str, str] | None = None  # the rate limiter's headers for this answer

    @property
    def state(self) -> SimState:
        return self.server.state

    def send_response(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response(code, message)
        self.send_header("X-CometNB-Simulator", "1")
        for name, value in (self.limit_headers or {}).items():
            self.send_header(name, value)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only (never headers, so never the key), and only when asked.
        if self.state.verbose:
            super().log_message(format, *args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = JSON,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body; ``None`` (after answering 400 or 413) when it cannot be read."""
        raw = (self.headers.get("Content-Length") or "0").strip()
        # "abc", "-5", "1e3": a real server answers 400; it must not crash the handler.
        if not (raw.isascii() and raw.isdigit()):
            self.close_connection = True
            message = f"Invalid Content-Length header: {raw[:20]!r}"
            self._send(400, error_body(message, "invalid_request_error"))
            return None
        length = int(raw)
        if length > MAX_BODY:
            # Drain what was sent (up to a bound) so the client reads the 413 instead of
            # failing its write on a reset connection.
            remaining = min(length, 4 * MAX_BODY)
            while remaining > 0 and self.rfile.read(min(remaining, 1 << 20)):
                remaining -= 1 << 20
            self.close_connection = True
            self._send(413, error_body("Request body too large.", "invalid_request_error"))
            return None
        return self.rfile.read(length) if length else b""

    def _wait(self, seconds: float) -> bool:
        """Sleep without blocking other requests; False when the server is stopping."""
        if seconds > 0 and self.state.stopping.wait(seconds):
            self.close_connection = True
            return False
        return not self.state.stopping.is_set()

    def _chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
