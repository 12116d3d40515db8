"""Fault injection: every fault the simulator can be told to answer with, and the answers.

:data:`FAULT_PARAMS` lists each kind and its parameters; :class:`Fault` is one queued fault
(``SimServer.fail_next`` checks it). Status faults (429 with or without ``Retry-After``, quota,
5xx, gateway HTML pages) get their headers from :func:`retry_headers` and their body from
:func:`fault_body`, shaped as the real gateway sends them; a failing stream ends with
:func:`stream_error_event`. The other kinds here are hostile answers for abuse tests, replies
built to exhaust a client's memory or patience, answered by :func:`answer` (generation POSTs)
or, for the URL-result kinds, by :func:`download` (the ``GET /v1/files/hostile-…`` the client
makes next):

* ``gzip_bomb`` — a gzip body that inflates to ``mb`` megabytes of JSON whitespace (``status``
  200 for a result body, 4xx/5xx for an error body); ``download_bomb`` — the same on the image
  download of a URL result.
* ``endless_download`` — a download that never ends; ``drip_download`` — one byte every
  ``seconds``.
* ``endless_sse_line`` — a stream whose first ``data:`` line never ends;
  ``keepalive_stream`` — a stream of ``: keepalive`` comments only.
* ``drip`` — a JSON result sent one byte every ``seconds``.
* ``huge_header_png`` — a valid result whose PNG header claims ``width`` × ``height`` pixels.

Every endless writer stops when the client hangs up, when the server stops, or after
:data:`_MAX_WRITE` bytes, so no test can leave a thread spinning.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any

from cometnb.sim.generation import JSON, comet_error, error_body, sse_event

__all__ = [
    "DOWNLOAD_PREFIX",
    "FAULT_PARAMS",
    "HOSTILE_PARAMS",
    "HTML",
    "Fault",
    "answer",
    "download",
    "fault_body",
    "html_page",
    "png_header_only",
    "retry_headers",
    "stream_error_event",
]

HTML = "text/html; charset=utf-8"

# The hostile kinds, answered by :func:`answer` / :func:`download`, and their parameters.
HOSTILE_PARAMS: dict[str, frozenset[str]] = {
    "gzip_bomb": frozenset({"mb", "status"}),
    "download_bomb": frozenset({"mb"}),
    "endless_download": frozenset(),
    "drip_download": frozenset({"seconds"}),
    "endless_sse_line": frozenset(),
    "keepalive_stream": frozenset({"seconds"}),
    "drip": frozenset({"seconds"}),
    "huge_header_png": frozenset({"width", "height"}),
}
# Every fault kind and the keyword parameters it takes.
FAULT_PARAMS: dict[str, frozenset[str]] = {
    **HOSTILE_PARAMS,  # replies built to exhaust memory or time (abuse tests)
    "429": frozenset({"retry_after", "retry_after_date", "no_retry_after", "quota"}),
    "500": frozenset({"retry_after"}),
    "500_invalid": frozenset(),
    "502": frozenset({"retry_after", "html"}),
    "503": frozenset({"retry_after"}),
    "504": frozenset({"retry_after", "html"}),
    "524": frozenset({"retry_after", "html"}),
    "reset": frozenset(),
    "hang": frozenset({"seconds"}),
    "truncated_json": frozenset(),
    "corrupt_b64": frozenset(),
    "non_image": frozenset(),
    "cut_stream": frozenset({"abrupt"}),
    "stream_error": frozenset(),
    "latency": frozenset({"seconds"}),
    "expired_url": frozenset(),
    "html_404": frozenset(),
    "moderation": frozenset(),
    "http": frozenset({"status", "body", "headers"}),
}


@dataclass(frozen=True)
class Fault:
    """One queued fault: ``kind`` from :data:`FAULT_PARAMS` and its parameters.

    Example::

        >>> Fault.make("429", retry_after=2).params
        {'retry_after': 2}
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, kind: str, **params: Any) -> Fault:
        """Check ``kind`` and its parameters (a typo in a test should fail loudly)."""
        allowed = FAULT_PARAMS.get(kind)
        if allowed is None:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_PARAMS)}")
        unknown = set(params) - allowed
        if unknown:
            raise TypeError(f"fault {kind!r} takes {sorted(allowed)}; got {sorted(unknown)}")
        return cls(kind, dict(params))


DOWNLOAD_PREFIX = "hostile-"
_URL_KINDS = ("download_bomb", "endless_download", "drip_download")
_MB = 1 << 20
_MAX_WRITE = 8 << 30  # an "endless" writer gives up after 8 GB
_BLOCK = b" " * _MB  # JSON whitespace: the body would even parse, if anyone read it all


def answer(
    handler: BaseHTTPRequestHandler, stopping: threading.Event, kind: str, params: dict[str, Any]
) -> None:
    """Answer a generation POST with the hostile reply ``kind``."""
    if kind == "gzip_bomb":
        _gzip_bomb(handler, stopping, int(params.get("status", 200)), float(params.get("mb", 1024)))
    elif kind in _URL_KINDS:
        query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        url = f"{_files_url(handler)}{DOWNLOAD_PREFIX}{kind}?{query}"
        _send_json(handler, {"created": 1, "data": [{"url": url}]})
    elif kind == "endless_sse_line":
        _start_stream(handler)
        _chunk(handler, b"data: ")
        _endless(handler, stopping, lambda: _chunk(handler, b"A" * 65536))
    elif kind == "keepalive_stream":
        pause = float(params.get("seconds", 0.05))
        _start_stream(handler)
        _endless(handler, stopping, lambda: _chunk(handler, b": keepalive\n\n"), pause)
    elif kind == "drip":
        body = json.dumps({"created": 1, "data": [{"b64_json": _tiny_png_b64()}]}).encode()
        _drip(handler, stopping, body, "application/json", float(params.get("seconds", 1.0)))
    elif kind == "huge_header_png":
        png = png_header_only(int(params.get("width", 30000)), int(params.get("height", 30000)))
        b64 = base64.b64encode(png).decode("ascii")
        _send_json(handler, {"created": 1, "data": [{"b64_json": b64}]})
    else:
        raise ValueError(f"not a hostile fault: {kind!r}")


def download(
    handler: BaseHTTPRequestHandler, stopping: threading.Event, name: str, query: str
) -> None:
    """Serve ``GET /v1/files/hostile-<kind>?<params>``."""
    kind = name.removeprefix(DOWNLOAD_PREFIX)
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    if kind == "download_bomb":
        _gzip_bomb(handler, stopping, 200, float(params.get("mb", 1024)), "image/png")
    elif kind == "endless_download":
        _start_chunked(handler, "image/png")
        _chunk(handler, b"\x89PNG\r\n\x1a\n")
        _endless(handler, stopping, lambda: _chunk(handler, _BLOCK))
    elif kind == "drip_download":
        _drip(handler, stopping, png_header_only(64, 64), "image/png", float(params["seconds"]))
    else:
        handler.send_response(404)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG (signature, IHDR, a tiny IDAT, IEND) claiming ``width`` × ``height``."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- writers -------------------------------------------------------------------------------


def _files_url(handler: BaseHTTPRequestHandler) -> str:
    # The Host header is exactly the host:port the client reached the simulator on.
    return f"http://{handler.headers.get('Host', 'localhost')}/v1/files/"


def _send_json(handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _start_chunked(
    handler: BaseHTTPRequestHandler,
    content_type: str,
    encoding: str | None = None,
    status: int = 200,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    if encoding:
        handler.send_header("Content-Encoding", encoding)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def _start_stream(handler: BaseHTTPRequestHandler) -> None:
    _start_chunked(handler, "text/event-stream; charset=utf-8")


def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> int:
    if data:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    return len(data)


def _end_chunks(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"0\r\n\r\n")


def _endless(
    handler: BaseHTTPRequestHandler,
    stopping: threading.Event,
    write: Any,
    pause: float = 0.0,
) -> None:
    """Call ``write()`` until the client hangs up, the server stops or 8 GB went out."""
    handler.close_connection = True
    sent = 0
    try:
        while sent < _MAX_WRITE and not stopping.is_set():
            sent += max(1, int(write()))
            handler.wfile.flush()
            if pause and stopping.wait(pause):
                return
    except OSError:
        return  # the client gave up: what it should do


def _gzip_bomb(
    handler: BaseHTTPRequestHandler,
    stopping: threading.Event,
    status: int,
    megabytes: float,
    content_type: str = "application/json",
) -> None:
    """Stream ``megabytes`` of whitespace gzip-compressed (about 1000:1), chunk by chunk."""
    _start_chunked(handler, content_type, "gzip", status)
    handler.close_connection = True
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    blocks = int(megabytes)
    try:
        for _ in range(blocks):
            if stopping.is_set():
                return
            _chunk(handler, packer.compress(_BLOCK))
        _chunk(handler, packer.flush())
        _end_chunks(handler)
    except OSError:
        return


def _drip(
    handler: BaseHTTPRequestHandler,
    stopping: threading.Event,
    body: bytes,
    content_type: str,
    seconds: float,
) -> None:
    """Send ``body`` (with its true length) one byte every ``seconds``."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.close_connection = True
    try:
        for index in range(len(body)):
            handler.wfile.write(body[index : index + 1])
            handler.wfile.flush()
            if stopping.wait(seconds):
                return
    except OSError:
        return


def _tiny_png_b64() -> str:
    return base64.b64encode(png_header_only(1, 1)).decode("ascii")


# --- status faults: what the gateway sends instead of a result -----------------------------------


_HTML_PAGES = {
    404: ("404 Not Found", "<center><h1>404 Not Found</h1></center><hr><center>nginx</center>"),
    502: ("502 Bad Gateway", "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"),
    504: (
        "504 Gateway Time-out",
        "<center><h1>504 Gateway Time-out</h1></center><hr><center>nginx</center>",
    ),
    524: (
        "api.cometapi.com | 524: A timeout occurred",
        "<h1>A timeout occurred</h1><p>Error code 524</p><p>The origin web server timed out "
        "responding to this request.</p><p>Cloudflare</p>",
    ),
}


def html_page(status: int) -> bytes:
    """The HTML a gateway or web server sends instead of JSON for ``status``."""
    title, body = _HTML_PAGES.get(status, (f"{status} Error", f"<h1>{status} Error</h1>"))
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>\n".encode()


def retry_headers(kind: str, params: dict[str, Any]) -> dict[str, str]:
    """The ``Retry-After`` header a status fault sends (seconds, or an HTTP date), if any."""
    if params.get("no_retry_after") or params.get("quota"):
        return {}
    seconds = params.get("retry_after", 1 if kind == "429" else None)
    if seconds is None:
        return {}
    if params.get("retry_after_date"):
        return {"Retry-After": formatdate(time.time() + float(seconds), usegmt=True)}
    return {"Retry-After": str(seconds)}


# CometAPI's own JSON errors, by fault kind: status, message, code.
_COMET_ERRORS: dict[str, tuple[int, str, str]] = {
    "429": (429, "Rate limit reached, please retry later", "rate_limit_exceeded"),
    "429_quota": (
        429,
        "You exceeded your current quota: the account balance is exhausted",
        "insufficient_quota",
    ),
    "500": (500, "Internal server error", ""),
    "500_invalid": (500, "Invalid request: upstream rejected a parameter", "invalid_request"),
    "503": (503, "The upstream service is overloaded, try again later", ""),
}


def fault_body(kind: str, params: dict[str, Any]) -> tuple[int, bytes, str]:
    """Status, body and content type of a status fault, shaped as the real gateway sends it."""
    html = params.get("html")
    known = _COMET_ERRORS.get("429_quota" if kind == "429" and params.get("quota") else kind)
    if known is not None:
        status, message, code = known
        return status, comet_error(message, code), JSON
    if kind == "html_404":
        return 404, html_page(404), HTML
    status = int(kind)  # 502, 504, 524
    if status == 524 and not html:
        body = error_body("Gateway timeout.", "cf_gateway_timeout", None, 524)
        return 524, body, JSON
    if html is False:
        return status, comet_error(f"Upstream gateway error {status}"), JSON
    return status, html_page(status), HTML


def stream_error_event() -> bytes:
    """The SSE ``error`` event a stream ends with when generation fails upstream."""
    error = {
        "message": "Image generation failed upstream (simulated).",
        "type": "server_error",
        "param": None,
        "code": "image_generation_failed",
    }
    return sse_event("error", {"type": "error", "error": error})
