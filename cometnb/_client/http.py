"""The one HTTP seam: every request cometnb sends goes through here (the shared httpx pool, the key
as a header only at the last moment, capped reads of every body, image downloads with their
address checked against private networks, log records scrubbed of the key, and the library
frames dropped from tracebacks so their locals never hold it). Everything about one exchange's
bytes and the key's safety in it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import httpcore
import httpx

from cometnb._client.loop import loop_thread
from cometnb._core.byte_limits import MB, ByteLimits
from cometnb._core.errors import ResponseError, redact
from cometnb._core.secret import Secret
from cometnb._version import __version__

__all__ = [
    "ACCEPT_ENCODING",
    "BILLED_HINT",
    "DECODE_STEP",
    "LOGGERS",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "AsyncHttp",
    "BodyDecoder",
    "Budget",
    "KeyInQuery",
    "LineSplitter",
    "RedactSecrets",
    "Reply",
    "Resolver",
    "SocketBackend",
    "SocketStream",
    "SocketTransport",
    "Target",
    "adownload",
    "aget",
    "alines",
    "aread_body",
    "async_transport",
    "check_image_url",
    "download_error",
    "drop_library_frames",
    "error_budget",
    "get",
    "install",
    "is_loopback_host",
    "megabytes",
    "pin_image_url",
    "redirect_target",
    "result_budget",
    "shared_ssl_context",
    "stream_budget",
]

P = ParamSpec("P")
T = TypeVar("T")

# --- frames ------------------------------------------------------------------------------------
# Tracebacks that end at our last frame: no library frame's locals can show the key.

# As imported and with symlinks resolved: frames carry the path the module was loaded from.
_PACKAGE = tuple({str(Path(__file__).parents[1]), str(Path(__file__).resolve().parents[1])})


def _ours(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_PACKAGE)


def _cut(tb: TracebackType | None) -> None:
    last_ours = None
    node = tb
    while node is not None:
        if _ours(node):
            last_ours = node
        node = node.tb_next
    if last_ours is not None:
        last_ours.tb_next = None


def drop_library_frames(exc: BaseException) -> BaseException:
    """Cut ``exc``'s traceback (and its chain's) after the last cometnb frame; returns ``exc``."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        _cut(node.__traceback__)
        if node.__cause__ is not None:
            _cut(node.__cause__.__traceback__)
        node = node.__context__
    return exc


# --- logsafe -----------------------------------------------------------------------------------
# Keep the API key out of log records, including those httpx and httpcore write.

LOGGERS = (
    "cometnb",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_install_lock = threading.Lock()


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message or traceback holds a secret; never drops a record.

    Example::

        >>> record = logging.LogRecord("httpx", 20, "", 0, "GET %s", ("https://x/",), None)
        >>> RedactSecrets().filter(record)
        True
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is redacted once here.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install() -> None:
    """Add :class:`RedactSecrets` to :data:`LOGGERS` (once per process)."""
    with _install_lock:  # the loggers' own filters say whether it is installed: no flag
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactSecrets) for f in logger.filters):
                logger.addFilter(RedactSecrets())


# --- fetch_guard -------------------------------------------------------------------------------
# Which image URLs the client may download: http(s) on public addresses only.

MAX_REDIRECTS = 5
Resolver = Callable[[str], list[str]]
_GUARD_HINT = "cometnb downloads result images only from public http(s) hosts; nothing was fetched."
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _unmapped(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback literals (where the simulator runs)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    addr = _literal(host)
    return addr is not None and _unmapped(addr).is_loopback


def _kind(addr: IPAddress) -> str | None:
    """Why ``addr`` may not be fetched (``None`` when it is a public address)."""
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_private:
        return "a private address"
    if addr.is_multicast or addr.is_unspecified or addr.is_reserved or not addr.is_global:
        return "a non-public address"
    return None


def _refuse(host: str, why: str) -> ResponseError:
    return ResponseError(
        f"The image URL from the server points to {host}, {why}.", hint=_GUARD_HINT
    )


@dataclass(frozen=True)
class Target:
    """Where to download ``url`` from: ``connect`` is the same URL with the checked address as
    its host; ``headers`` and ``extensions`` keep the real name for ``Host`` and TLS (SNI and
    the certificate check)."""

    url: httpx.URL
    connect: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def check_image_url(
    url: str, *, allow_loopback: bool, resolve: Resolver | None = None
) -> httpx.URL:
    """The parsed URL when it may be fetched; :class:`ResponseError` naming why not."""
    return pin_image_url(url, allow_loopback=allow_loopback, resolve=resolve).url


def pin_image_url(url: str, *, allow_loopback: bool, resolve: Resolver | None = None) -> Target:
    """Check ``url`` and resolve its host once: the :class:`Target` to connect to, or a
    :class:`ResponseError` naming why it may not be fetched."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        scheme = f"'{parsed.scheme}:'" if parsed is not None and parsed.scheme else "no"
        raise ResponseError(
            f"The server returned an image URL that is not http(s) or has no host ({scheme} "
            "scheme).",
            hint=_GUARD_HINT,
        )
    host = parsed.host
    if allow_loopback and is_loopback_host(host):
        return Target(parsed, parsed)  # the simulator: nothing to rebind to
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress | None] = [literal]
    else:
        try:
            addresses = [_literal(a) for a in (resolve or _resolve)(host)]
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:  # letting httpx look it up again would reopen the rebinding gap
            raise _refuse(host, "a host name that does not resolve")
    for addr in addresses:
        why = _kind(_unmapped(addr)) if addr is not None else "an address that cannot be parsed"
        if why is not None:
            raise _refuse(host, why)
    if literal is not None:
        return Target(parsed, parsed)
    chosen = str(addresses[0])
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Target(
        parsed, parsed.copy_with(host=chosen), {"Host": parsed.netloc.decode("ascii")}, extensions
    )


def redirect_target(response: httpx.Response, base: httpx.URL | None = None) -> str | None:
    """The absolute URL a redirect response points to (``None`` when it is no redirect);
    relative locations are joined to ``base`` (the URL as named, not the pinned address)."""
    if response.status_code not in _REDIRECTS:
        return None
    location = response.headers.get("location")
    if not location:
        return None
    try:
        return str((base or response.url).join(location))
    except httpx.InvalidURL:
        return None


# --- capped ------------------------------------------------------------------------------------
# The caps on one reply, counted without doing any I/O: :class:`Budget` and friends.

BILLED_HINT = "The generation may have been billed; it was not retried."


def megabytes(size: int) -> str:
    """``size`` bytes as ``"1.5 MB"`` (in messages about a cap)."""
    return f"{size / MB:.3g} MB"


class Budget:
    """Counts the bytes of one reply and watches its deadline.

    Example::

        >>> b = Budget("example.com", "the result", limit=2 * MB, seconds=60)
        >>> b.take(MB)
        >>> try:
        ...     b.take(MB + 1)
        ... except ResponseError as exc:
        ...     print(exc.message)
        example.com sent more than 2 MB for the result; the rest was not read.
    """

    def __init__(
        self, host: str, what: str, *, limit: int, seconds: float, hint: str = BILLED_HINT
    ) -> None:
        self.host, self.what, self.limit, self.hint = host, what, limit, hint
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.used = 0

    def take(self, size: int) -> None:
        """Account for ``size`` more bytes (0 just checks the clock)."""
        self.used += size
        if self.used > self.limit:
            raise ResponseError(
                f"{self.host} sent more than {megabytes(self.limit)} for {self.what}; the rest was "
                "not read.",
                hint=self.hint,
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ResponseError(
                f"{self.host} was still sending {self.what} after {self.seconds:g} s; "
                f"stopped reading ({megabytes(self.used)} received).",
                hint=self.hint,
            )


class LineSplitter:
    """Bytes → lines (``\\n``, ``\\r\\n`` or ``\\r`` end one), each at most ``limit`` bytes."""

    def __init__(self, budget: Budget, limit: int) -> None:
        self.budget, self.limit = budget, limit
        self._buf = bytearray()
        self._cr = False  # the last chunk ended in "\r": a "\n" next belongs to it

    def feed(self, chunk: bytes) -> list[str]:
        self.budget.take(len(chunk))  # the stream's total, and its deadline
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        lines = []
        start = 0
        for end, width in _line_ends(chunk):
            self._grow(chunk[start:end])
            lines.append(self._take())
            start = end + width
        self._grow(chunk[start:])
        return lines

    def flush(self) -> list[str]:
        return [self._take()] if self._buf else []

    def discard(self) -> None:
        """Let go of a partial line (the read failed: nothing it held is kept)."""
        self._buf = bytearray()

    def _grow(self, piece: bytes) -> None:
        if len(self._buf) + len(piece) > self.limit:
            self._buf.clear()
            raise ResponseError(
                f"{self.budget.host} sent a stream line longer than {megabytes(self.limit)}; "
                "the rest was not read.",
                hint=self.budget.hint,
            )
        self._buf += piece

    def _take(self) -> str:
        line = self._buf.decode("utf-8", "replace")
        self._buf.clear()
        return line


def _line_ends(chunk: bytes) -> Iterator[tuple[int, int]]:
    """``(index, width)`` of every line end in ``chunk``."""
    if b"\r" not in chunk:  # the usual case: fast
        start = 0
        while (found := chunk.find(b"\n", start)) >= 0:
            yield found, 1
            start = found + 1
        return
    index = 0
    while index < len(chunk):
        byte = chunk[index]
        if byte == 0x0D:
            width = 2 if chunk[index + 1 : index + 2] == b"\n" else 1
            yield index, width
            index += width
            continue
        if byte == 0x0A:
            yield index, 1
        index += 1


# --- the budgets of one attempt ------------------------------------------------------------


def result_budget(host: str, limits: ByteLimits, body: Mapping[str, Any], started: float) -> Budget:
    """A JSON result body: ``n`` images; the attempt's deadline counts from ``started``."""
    budget = Budget(
        host, "the result", limit=limits.json_body_bytes(_n(body)), seconds=limits.deadline_s
    )
    budget.deadline = started + limits.deadline_s
    return budget


def stream_budget(host: str, limits: ByteLimits, body: Mapping[str, Any], started: float) -> Budget:
    """A streamed result: every partial and final image of ``n``, each at most one line."""
    events = _n(body) * (int(body.get("partial_images") or 0) + 1)
    budget = Budget(
        host,
        "the stream",
        limit=events * limits.sse_line_bytes + MB,
        seconds=limits.deadline_s,
    )
    budget.deadline = started + limits.deadline_s
    return budget


def error_budget(host: str, limits: ByteLimits, started: float) -> Budget:
    """An error body (real ones are a few hundred bytes)."""
    budget = Budget(
        host, "an error reply", limit=limits.error_body_bytes, seconds=limits.deadline_s
    )
    budget.deadline = started + limits.deadline_s
    return budget


def _n(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


# --- http --------------------------------------------------------------------------------------
# The one HTTP seam: every request cometnb makes goes through this module.

USER_AGENT = f"cometnb/{__version__}"
# The encodings decoded here; asking for exactly these keeps br / zstd off the wire.
ACCEPT_ENCODING = "gzip, deflate"
DECODE_STEP = 64 * 1024  # decoded bytes produced (and counted) per step
_IDENTITY = frozenset({"", "identity"})
_KNOWN = frozenset({"gzip", "x-gzip", "deflate"})


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every client in the process.

    Building one loads the CA bundle (~25 ms), and the magic makes a client per cell; an
    ``SSLContext`` may be shared by many connections and threads.
    """
    return httpx.create_ssl_context()


def _headers(key: Secret | None, accept: str, extra: Mapping[str, str] | None) -> httpx.Headers:
    """The request headers; the bare key exists only in the expression that writes it.
    (``httpx.Headers`` shows ``Authorization`` masked in its repr.)"""
    headers = httpx.Headers(
        {"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": ACCEPT_ENCODING}
    )
    headers.update(extra or {})
    if key is not None:
        headers["Authorization"] = key.bearer()
    return headers


# --- decoding: one known layer, a step at a time ------------------------------------------


class BodyDecoder:
    """Raw body bytes → decoded pieces: a compressed body inflated :data:`DECODE_STEP` bytes at
    a time (each counted before the next is made), an identity body passed on as read.

    Made by :meth:`for_response`, which refuses a stacked or unknown ``Content-Encoding``.

    Example::

        >>> packed = zlib.compress(b"x" * 200_000, wbits=31)
        >>> d = BodyDecoder("gzip", "example.com", "hint")
        >>> [len(p) for p in d.feed(packed)]
        [65536, 65536, 65536, 3392]
    """

    def __init__(self, encoding: str, host: str, hint: str) -> None:
        self.encoding, self.host, self.hint = encoding, host, hint
        self._inflate: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS)
        self._started = False
        self._trailing = 0

    @classmethod
    def for_response(cls, response: httpx.Response, budget: Budget) -> BodyDecoder:
        """The decoder for ``response``'s ``Content-Encoding``, or a :class:`ResponseError`."""
        layers = [
            value.strip().lower()
            for value in response.headers.get_list("content-encoding", split_commas=True)
        ]
        layers = [layer for layer in layers if layer not in _IDENTITY]
        if len(layers) > 1 or (layers and layers[0] not in _KNOWN):
            shown = ", ".join(layers)[:60]
            raise ResponseError(
                f"{budget.host} sent {budget.what} encoded as '{shown}'; cometnb decodes one "
                "layer of gzip or deflate only, so it was not read.",
                hint=budget.hint,
            )
        return cls(layers[0] if layers else "identity", budget.host, budget.hint)

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``raw`` (lazily: each is counted before the next is made).
        Identity bytes are already in memory, as read: ``raw`` itself, not copied in steps."""
        if self._inflate is None:
            if raw:
                yield raw
            return
        data = raw
        while data and not self._inflate.eof:
            try:
                piece = self._inflate.decompress(data, DECODE_STEP)
            except zlib.error:
                if self.encoding == "deflate" and not self._started:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                    self._started = True
                    continue
                raise self._corrupt() from None
            self._started = True
            data = self._inflate.unconsumed_tail
            if piece:
                yield piece
        if data or self._inflate.unused_data:
            # Bytes after the end of the compressed stream: never decoded, but never endless.
            self._trailing += len(data) + len(self._inflate.unused_data)
            if self._trailing > DECODE_STEP:
                raise self._corrupt()

    def flush(self) -> Iterator[bytes]:
        """What is left once the raw body has ended."""
        if self._inflate is None or self._inflate.eof:
            return
        try:
            piece = self._inflate.flush(DECODE_STEP)
        except zlib.error:
            raise self._corrupt() from None
        if piece:
            yield piece

    def _corrupt(self) -> ResponseError:
        return ResponseError(
            f"Could not decode the answer from {self.host} (corrupt {self.encoding} body).",
            hint=self.hint,
        )


# --- reading a reply ------------------------------------------------------------------------


def _decoder(response: httpx.Response, budget: Budget) -> BodyDecoder:
    if response.is_stream_consumed:
        # Made in memory by a test transport (``Response(content=...)``): httpx has already
        # read and decoded it; it was never on a wire.
        return BodyDecoder("identity", budget.host, budget.hint)
    return BodyDecoder.for_response(response, budget)


async def _araw(response: httpx.Response) -> AsyncIterator[bytes]:
    if response.is_stream_consumed:
        yield response.content
    else:
        async for raw in response.aiter_raw():
            yield raw


class _Body:
    """A body as it arrives. An answer up to :data:`_PIECES` bytes is kept as the pieces read
    and joined once at the end: one copy, where growing one buffer copied it about twice more
    (a 3.75 MB answer, RESULTS.md §13c). Pieces under :data:`_WHOLE` bytes are gathered into
    a buffer first, so a server sending one byte at a time costs a byte per byte, not an
    object per byte. A longer body (a decompression bomb up to its cap) goes on in one buffer
    of its own, which the allocator gives back to the system once it is dropped; thousands
    of small pieces would stay in the process's heap after a failure.
    """

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._size = 0  # bytes in _pieces
        self._small = bytearray()
        self._long: bytearray | None = None

    def add(self, piece: bytes) -> None:
        if self._long is not None:
            self._long += piece
        elif len(piece) >= _WHOLE:
            self._keep_small()
            self._keep(piece)
        else:
            self._small += piece
            if len(self._small) >= _WHOLE:
                self._keep_small()

    def _keep_small(self) -> None:
        if self._small:
            self._keep(bytes(self._small))
            self._small.clear()

    def _keep(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size > _PIECES:
            self._long = bytearray().join(self._pieces)
            self._pieces.clear()

    def join(self) -> bytes:
        if self._long is not None:
            self._long += self._small
            return bytes(self._long)
        self._keep_small()
        return self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)

    def clear(self) -> None:
        self._pieces.clear()
        self._small.clear()
        self._long = None


_WHOLE = 4096  # a TLS record is at most 16 KB, a plain read 64 KB: both kept whole
_PIECES = 16 * MB  # an image answer (n = 1-4) is read as pieces


async def aread_body(response: httpx.Response, budget: Budget) -> bytes:
    """The whole decoded body, or a :class:`ResponseError` once over ``budget``."""
    decoder = _decoder(response, budget)
    body = _Body()
    try:
        async for raw in _araw(response):
            budget.take(0)
            for piece in decoder.feed(raw):
                budget.take(len(piece))
                body.add(piece)
        for piece in decoder.flush():
            budget.take(len(piece))
            body.add(piece)
        return body.join()
    except BaseException as exc:
        drop_library_frames(exc)
        raise
    finally:
        body.clear()  # a traceback keeps this frame: it must hold nothing large


async def alines(response: httpx.Response, budget: Budget, limit: int) -> AsyncGenerator[str, None]:
    """The lines of a streamed body, each at most ``limit`` bytes, all within ``budget``."""
    decoder = _decoder(response, budget)
    splitter = LineSplitter(budget, limit)  # charges every piece to the budget
    try:
        async for raw in _araw(response):
            budget.take(0)
            for piece in decoder.feed(raw):
                for line in splitter.feed(piece):
                    yield line
        for piece in decoder.flush():
            for line in splitter.feed(piece):
                yield line
        for line in splitter.flush():
            yield line
    except BaseException as exc:
        splitter.discard()
        drop_library_frames(exc)
        raise


# --- sockets: httpcore's network backend for the seam ------------------------------------
# httpcore reads a reply 64 KB at a time. Through anyio (httpx's default on asyncio) every read
# is a trip around the event loop (a checkpoint, the transport's buffer, a wake-up), which cost
# the loop thread 2-3 ms of CPU per 3.75 MB answer; here a read takes what the socket already
# holds, and only an empty socket waits for the loop (RESULTS.md §13c).


class SocketStream(httpcore.AsyncNetworkStream):
    """One connection's non-blocking socket, plain or TLS (an ``ssl.SSLSocket``), read and
    written directly; the loop is awaited only when the socket cannot give or take now.

    Errors are httpcore's (``ReadTimeout``, ``ConnectError``, …), as httpx expects to map
    them; a TLS peer that closes without a close-notify is an end of stream, as with anyio.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            while True:
                try:
                    return self._sock.recv(max_bytes)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    await _ready(self._sock, write=False, timeout=timeout)
                except ssl.SSLWantWriteError:  # TLS wants to send first (a key update)
                    await _ready(self._sock, write=True, timeout=timeout)
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            while view:
                try:
                    view = view[self._sock.send(view) :]
                except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                    await _ready(self._sock, write=True, timeout=timeout)
                except ssl.SSLWantReadError:
                    await _ready(self._sock, write=False, timeout=timeout)

    async def aclose(self) -> None:
        self._sock.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> SocketStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            tls = ssl_context.wrap_socket(
                self._sock, server_hostname=server_hostname, do_handshake_on_connect=False
            )
            try:
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        await _ready(tls, write=False, timeout=timeout)
                    except ssl.SSLWantWriteError:
                        await _ready(tls, write=True, timeout=timeout)
            except BaseException:
                tls.close()
                raise
        return SocketStream(tls)

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if info == "ssl_object":  # httpcore asks it for the ALPN protocol
            return sock if isinstance(sock, ssl.SSLSocket) else None
        if info == "socket":
            return sock
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "is_readable":  # an idle pooled connection that is readable was closed
            return _readable_now(sock)
        return None


class SocketBackend(httpcore.AsyncNetworkBackend):
    """Connections as :class:`SocketStream` on asyncio's selector loop (Linux and macOS, and
    the session's loop thread there); on any other loop (Windows' proactor, uvloop) httpcore's
    own anyio backend, which does not need ``add_reader``.

    Addresses are tried in the resolver's order, one after another, as ``socket.
    create_connection`` (httpx's blocking client) does, within ``timeout`` in all.
    """

    def __init__(self) -> None:
        self._other = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, asyncio.SelectorEventLoop):
            return await self._other.connect_tcp(host, port, timeout, local_address, socket_options)
        connecting = _connect(loop, host, port, local_address, list(socket_options or ()))
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            return SocketStream(await asyncio.wait_for(connecting, timeout))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._other.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    local_address: str | None,
    options: list[Any],
) -> socket.socket:
    failure: OSError | None = None
    for family, kind, proto, _name, address in await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio's own
            for option in options:
                sock.setsockopt(*option)
            if local_address:
                sock.bind((local_address, 0))
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            # asyncio words it "Connect call failed"; the system's words say why (refused...).
            failure = OSError(exc.errno, os.strerror(exc.errno)) if exc.errno else exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise failure or OSError(f"no address found for {host}")


async def _ready(sock: socket.socket, *, write: bool, timeout: float | None) -> None:
    """Wait until ``sock`` can be written (or read), at most ``timeout`` s (``TimeoutError``)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    if write:
        loop.add_writer(fd, _wake, waiter, None)
    else:
        loop.add_reader(fd, _wake, waiter, None)
    timer = None if timeout is None else loop.call_later(timeout, _wake, waiter, TimeoutError())
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()


def _wake(waiter: asyncio.Future[None], error: BaseException | None) -> None:
    if waiter.done():
        return
    if error is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(error)


def _readable_now(sock: socket.socket) -> bool:
    if sock.fileno() < 0:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


@contextmanager
def _mapped(timeout: type[Exception], failure: type[Exception]) -> Iterator[None]:
    """OS and TLS errors as the httpcore errors httpx turns into its own."""
    try:
        yield
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise timeout(str(exc) or "timed out") from exc
    except OSError as exc:  # ssl.SSLError is one too
        raise failure(str(exc) or type(exc).__name__) from exc


class SocketTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its pool on :class:`SocketBackend` (same limits as httpx's)."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits | None = None) -> None:
        limits = limits or _POOL_LIMITS
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=SocketBackend(),
        )


# httpx's own defaults for a client's pool.
_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class _SeamClient(httpx.AsyncClient):
    """An httpx client whose direct route (no proxy, no test transport) is a
    :class:`SocketTransport`; proxies from the environment keep httpx's own transports."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        made = super()._init_transport(*args, **kwargs)
        if type(made) is not httpx.AsyncHTTPTransport:
            return made  # a transport the caller gave
        limits = kwargs.get("limits")
        return SocketTransport(
            shared_ssl_context(), limits if isinstance(limits, httpx.Limits) else None
        )


# --- sending --------------------------------------------------------------------------------


class AsyncHttp:
    """The seam's connection pool (redirects are never followed).

    :meth:`open` sends one request and yields the response with its body not yet read; read it
    with :func:`aread_body` or :func:`alines`. ``transport`` is for tests
    (``httpx.MockTransport``). An httpx pool belongs to the event loop that first used it, so
    a pool is made again when this one is used from another loop (the session's loop thread
    restarted, a forked process): one pool per client per loop.
    """

    def __init__(
        self, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self._transport = transport
        self._client = self._new_client()
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop the pool belongs to

    def _new_client(self) -> httpx.AsyncClient:
        return _SeamClient(
            transport=self._transport, timeout=self.timeout, verify=shared_ssl_context()
        )

    def _bound(self) -> httpx.AsyncClient:
        running = asyncio.get_running_loop()
        if self.loop is not running:
            if self.loop is not None:  # that loop's connections cannot be used (nor closed) here
                self._client = self._new_client()
            self.loop = running
        return self._client

    @asynccontextmanager
    async def open(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        key: Secret | None = None,
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
        **content: Any,
    ) -> AsyncIterator[httpx.Response]:
        """Send ``method url`` (``content``: ``json=``, ``data=``, ``files=``, ``extensions=``)
        and yield the response, closed on the way out."""
        try:
            client = self._bound()
            request = client.build_request(
                method, url, headers=_headers(key, accept, headers), **content
            )
            response = await client.send(request, stream=True)
        except BaseException as exc:  # an interrupt while connecting or sending, too
            drop_library_frames(exc)
            raise
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


def async_transport(
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None,
) -> httpx.AsyncBaseTransport | None:
    """``transport`` for the seam, which performs all I/O asynchronously (``MockTransport``
    is both kinds); a TypeError for a transport that is only blocking."""
    if transport is None or isinstance(transport, httpx.AsyncBaseTransport):
        return transport
    raise TypeError(
        f"cometnb needs a transport that is an httpx.AsyncBaseTransport (httpx.MockTransport "
        f"is one); got {type(transport).__name__}"
    )


# --- one side fetch (the model list, the price catalog, the balance) -----------------------


@dataclass(frozen=True)
class Reply:
    """A side fetch's answer, read in full within its caps."""

    status: int
    body: bytes
    host: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> object:
        """The body as JSON; :class:`ResponseError` when it is not."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise ResponseError(f"{self.host} did not answer JSON.") from None


async def aget(
    url: str,
    *,
    what: str,
    limit: int = 4 * MB,
    seconds: float = 30.0,
    key: Secret | None = None,
    key_param: str | None = None,
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    hint: str = "Nothing was billed; try again later.",
) -> Reply:
    """``GET url`` once, its body at most ``limit`` decoded bytes within ``seconds`` in all;
    a pool of its own, closed after (:func:`get` is the blocking call).

    The key goes in the ``Authorization`` header, or with ``key_param`` in the query string
    under that name (CometAPI's quota endpoint), added by :class:`KeyInQuery` as the request
    leaves: no URL holding it exists in a cometnb frame, a message or a log line.

    Every failure (unreachable, over a cap, an encoding refused) is one short
    :class:`ResponseError` naming ``what`` and the host; the status is the caller's to judge.
    """
    host = _host(url)
    budget = Budget(host, what, limit=limit, seconds=seconds, hint=hint)
    timeout = httpx.Timeout(seconds, connect=min(10.0, seconds))
    checked = async_transport(transport)
    if key_param is not None and key is not None:
        checked, key = KeyInQuery(key_param, key, checked), None
    http = AsyncHttp(timeout, checked)
    try:
        async with http.open("GET", url, key=key) as response:
            return Reply(response.status_code, await aread_body(response, budget), host)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        failure = type(exc).__name__  # raised outside: no chained httpx error keeps a request
    finally:
        await http.aclose()
    raise ResponseError(f"could not read {what} from {host}: {failure}", hint=hint)


def _blocking(fetch: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """``fetch`` as a blocking call, run on the session's loop thread (the seam is async)."""

    @functools.wraps(fetch)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return loop_thread().run(fetch(*args, **kwargs))

    return run


# ``GET url`` as :func:`aget`, blocking: it runs on the session's loop thread (so it cannot be
# called from that thread; await :func:`aget` there).
get = _blocking(aget)


class KeyInQuery(httpx.AsyncBaseTransport):
    """A transport that sends each request with ``?<name>=<key>`` added, then forgets it.

    The URL with the key is built in the call that hands it on, never kept in a name here, so
    a traceback through this frame shows only the request without it; httpx logs and error
    messages see the request without it too (``response.request`` is the caller's).
    """

    def __init__(
        self, name: str, key: Secret, inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._name, self._key = name, key
        self._inner = inner or SocketTransport(shared_ssl_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(
            httpx.Request(
                request.method,
                request.url.copy_merge_params({self._name: self._key.reveal()}),
                headers=request.headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or "the server"
    except httpx.InvalidURL:
        return "the server"


# --- fetch -------------------------------------------------------------------------------------
# Downloading a URL result: checked addresses, checked redirects, bounded size and time.

_DOWNLOAD_HINT = (
    "Image URLs expire (about 60 minutes); the generation was billed, so run it again only if "
    "you need the image."
)


def download_error(url: str, why: str) -> ResponseError:
    """The error for a download that failed; names the host, not the URL's query or the body."""
    try:
        host = httpx.URL(url).host or "the image host"
    except httpx.InvalidURL:
        host = "the image host"
    return ResponseError(
        f"Could not download the generated image from {host}: {why}.", hint=_DOWNLOAD_HINT
    )


def _budget(url: str, limits: ByteLimits) -> Budget:
    host = httpx.URL(url).host or "the image host"
    return Budget(
        host, "the image download", limit=limits.download_bytes, seconds=limits.download_s
    )


def _pinned(target: Target) -> dict[str, Any]:
    """The GET for a checked target goes to the address that was checked, under the host's
    name (the ``Host`` header and the TLS server name)."""
    return {"headers": target.headers, "extensions": target.extensions}


async def adownload(
    http: AsyncHttp, url: str, *, allow_loopback: bool, limits: ByteLimits
) -> bytes:
    """GET ``url`` (following checked redirects); the image bytes or a :class:`ResponseError`.
    Host names are resolved off the event loop."""
    target = await asyncio.to_thread(pin_image_url, url, allow_loopback=allow_loopback)
    budget = _budget(url, limits)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            opened = http.open("GET", target.connect, accept="*/*", **_pinned(target))
            async with opened as response:
                location = redirect_target(response, target.url)
                if location is None:
                    if not response.is_success:
                        raise download_error(url, f"HTTP {response.status_code}")
                    return await aread_body(response, budget)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise download_error(url, type(exc).__name__) from None
        target = await asyncio.to_thread(pin_image_url, location, allow_loopback=allow_loopback)
        url = location
    raise download_error(url, f"more than {MAX_REDIRECTS} redirects")
