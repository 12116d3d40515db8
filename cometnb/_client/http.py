"""The one HTTP seam: every request cometnb makes goes through this module.

Generations and edits (``POST``), URL result downloads, ``GET /v1/models``, the price catalog
and the account balance all use :class:`Http` / :class:`AsyncHttp` (a long-lived connection
pool, for a client) or :func:`get` (one side fetch). Nothing else in the package builds an
httpx client or request (``tests/client/test_http.py`` greps for it), so every exchange gets
the same guarantees, and a new endpoint gets them by calling this module:

* **The key stays a** :class:`~cometnb._core.secret.Secret` until the one expression that
  writes it into the ``Authorization`` header (:func:`_headers`); no local of any frame holds
  it in clear, and an exception passing up through httpx (an interrupt while the server is
  slow, an unexpected error) has the library frames, whose locals hold the raw header bytes,
  cut from its traceback (:func:`~cometnb._client.frames.drop_library_frames`).
* **At most one** ``Content-Encoding`` **layer, of a known kind** (``gzip``, ``deflate``;
  ``identity`` is none). Only those are asked for (``Accept-Encoding``); a stacked or unknown
  encoding is refused with one short :class:`ResponseError` before a byte is decoded (httpx
  would decode ``gzip, gzip`` a whole read at a time: 3 KB on the wire became 2 GB).
* **Decoded bytes are counted as they arrive**: raw bytes from the wire are inflated at most
  :data:`DECODE_STEP` bytes at a time (``zlib`` with ``max_length``) and each step is charged to
  the reply's :class:`~cometnb._client.capped.Budget` before it is kept, so no cap is checked
  after the damage.
* **Bounded per-chunk overhead**: a body grows in one ``bytearray``, never a list of chunks
  (a body sent one byte per chunk costs one byte per byte).
* **A total time**: the budget's deadline is checked at every step (httpx's own timeout is per
  read).
* **A failed read keeps nothing**: the buffer is emptied before the error leaves, so an error
  kept on a ``Generation`` (its traceback holds our frames) holds no megabytes.

Example::

    >>> reply = get("https://api.cometapi.com/v1/models", what="the model list",
    ...             limit=4 * MB, seconds=10, key=key)  # doctest: +SKIP
    >>> reply.ok, type(reply.json())  # doctest: +SKIP
    (True, <class 'dict'>)
"""

from __future__ import annotations

import functools
import json
import ssl
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from cometnb._client.capped import Budget, LineSplitter
from cometnb._client.frames import drop_library_frames
from cometnb._core.byte_limits import MB
from cometnb._core.errors import ResponseError
from cometnb._core.secret import Secret
from cometnb._version import __version__

__all__ = [
    "ACCEPT_ENCODING",
    "DECODE_STEP",
    "USER_AGENT",
    "AsyncHttp",
    "BodyDecoder",
    "Http",
    "Reply",
    "alines",
    "aread_body",
    "get",
    "lines",
    "read_body",
    "shared_ssl_context",
]

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
    """Raw body bytes → decoded pieces of at most :data:`DECODE_STEP` bytes.

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
        """The decoded pieces of ``raw`` (lazily: each is counted before the next is made)."""
        if self._inflate is None:
            for start in range(0, len(raw), DECODE_STEP):
                yield raw[start : start + DECODE_STEP]
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


def _raw(response: httpx.Response) -> Iterator[bytes]:
    if response.is_stream_consumed:
        yield response.content
    else:
        yield from response.iter_raw()


async def _araw(response: httpx.Response) -> AsyncIterator[bytes]:
    if response.is_stream_consumed:
        yield response.content
    else:
        async for raw in response.aiter_raw():
            yield raw


def read_body(response: httpx.Response, budget: Budget) -> bytes:
    """The whole decoded body, or a :class:`ResponseError` once over ``budget``."""
    decoder = _decoder(response, budget)
    body = bytearray()
    try:
        for raw in _raw(response):
            budget.take(0)  # the clock, also while nothing decodes
            for piece in decoder.feed(raw):
                budget.take(len(piece))
                body += piece
        for piece in decoder.flush():
            budget.take(len(piece))
            body += piece
        return bytes(body)
    except BaseException as exc:
        body.clear()  # the traceback keeps this frame: it must hold nothing large
        drop_library_frames(exc)
        raise
    finally:
        body.clear()


async def aread_body(response: httpx.Response, budget: Budget) -> bytes:
    """Async :func:`read_body`."""
    decoder = _decoder(response, budget)
    body = bytearray()
    try:
        async for raw in _araw(response):
            budget.take(0)
            for piece in decoder.feed(raw):
                budget.take(len(piece))
                body += piece
        for piece in decoder.flush():
            budget.take(len(piece))
            body += piece
        return bytes(body)
    except BaseException as exc:
        body.clear()
        drop_library_frames(exc)
        raise
    finally:
        body.clear()


def lines(response: httpx.Response, budget: Budget, limit: int) -> Iterator[str]:
    """The lines of a streamed body, each at most ``limit`` bytes, all within ``budget``."""
    decoder = _decoder(response, budget)
    splitter = LineSplitter(budget, limit)  # charges every piece to the budget
    try:
        for raw in _raw(response):
            budget.take(0)
            for piece in decoder.feed(raw):
                yield from splitter.feed(piece)
        for piece in decoder.flush():
            yield from splitter.feed(piece)
        yield from splitter.flush()
    except BaseException as exc:
        splitter.discard()
        drop_library_frames(exc)
        raise


async def alines(response: httpx.Response, budget: Budget, limit: int) -> AsyncGenerator[str, None]:
    """Async :func:`lines`."""
    decoder = _decoder(response, budget)
    splitter = LineSplitter(budget, limit)
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


# --- sending --------------------------------------------------------------------------------


def _request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    key: Secret | None,
    accept: str,
    headers: Mapping[str, str] | None,
    content: dict[str, Any],
) -> httpx.Request:
    return client.build_request(method, url, headers=_headers(key, accept, headers), **content)


class Http:
    """The blocking side of the seam: one connection pool (redirects are never followed).

    :meth:`open` sends one request and yields the response with its body not yet read; read it
    with :func:`read_body` or :func:`lines`. ``transport`` is for tests
    (``httpx.MockTransport``).
    """

    def __init__(
        self, timeout: httpx.Timeout, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self._client = httpx.Client(
            transport=transport, timeout=timeout, verify=shared_ssl_context()
        )

    @contextmanager
    def open(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        key: Secret | None = None,
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
        **content: Any,
    ) -> Iterator[httpx.Response]:
        """Send ``method url`` (``content``: ``json=``, ``data=``, ``files=``, ``extensions=``)
        and yield the response, closed on the way out."""
        try:
            request = _request(self._client, method, url, key, accept, headers, content)
            response = self._client.send(request, stream=True)
        except BaseException as exc:  # an interrupt while connecting or sending, too
            drop_library_frames(exc)
            raise
        try:
            yield response
        finally:
            response.close()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncHttp:
    """The asyncio side of the seam: :class:`Http` with ``await``."""

    def __init__(
        self, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, verify=shared_ssl_context()
        )

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
        """Async :meth:`Http.open`."""
        try:
            request = _request(self._client, method, url, key, accept, headers, content)
            response = await self._client.send(request, stream=True)
        except BaseException as exc:  # an interrupt while connecting or sending, too
            drop_library_frames(exc)
            raise
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


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


def get(
    url: str,
    *,
    what: str,
    limit: int = 4 * MB,
    seconds: float = 30.0,
    key: Secret | None = None,
    transport: httpx.BaseTransport | None = None,
    hint: str = "Nothing was billed; try again later.",
) -> Reply:
    """``GET url`` once, its body at most ``limit`` decoded bytes within ``seconds`` in all.

    Every failure (unreachable, over a cap, an encoding refused) is one short
    :class:`ResponseError` naming ``what`` and the host; the status is the caller's to judge.
    """
    host = _host(url)
    budget = Budget(host, what, limit=limit, seconds=seconds, hint=hint)
    timeout = httpx.Timeout(seconds, connect=min(10.0, seconds))
    try:
        with Http(timeout, transport) as http, http.open("GET", url, key=key) as response:
            return Reply(response.status_code, read_body(response, budget), host)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ResponseError(
            f"could not read {what} from {host}: {type(exc).__name__}", hint=hint
        ) from None


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or "the server"
    except httpx.InvalidURL:
        return "the server"
