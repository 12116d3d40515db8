"""The CometAPI image client: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

As in httpx, one base class (:class:`_BaseClient`) holds everything that is not I/O — the
configuration (base URL, timeouts, retry policy), the key and its checks, building and
validating requests, what each POST carries, mapping answers to results or failures, storing
outcomes (:class:`~cometnb._client.storing._Storing`). There is one engine: :class:`AsyncClient`
performs the I/O steps of :func:`cometnb._client.exchange.request_steps` by awaiting. The
blocking :class:`Client` owns one AsyncClient (its engine, one connection pool) and runs every
request on it on the session's private loop thread (:mod:`~cometnb._client.loop`), relaying
``on_partial`` / ``on_event`` back to the caller's thread in order.

Flow of one request: validate (nothing is sent for a request the model cannot take) → resolve
the key → POST with billing-aware retries (:mod:`~cometnb._client.exchange`,
:mod:`~cometnb._client.retry`) → parse JSON or SSE → decode base64 / download URLs at once →
store in the history → :class:`~cometnb._core.generations.Generation`. Every failure after
validation is recorded in the history before it is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
import weakref
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import httpx

from cometnb._client import exchange as _exchange
from cometnb._client import http as _http
from cometnb._client.exchange import (
    KEY_HINT,
    Attempt,
    Download,
    RequestSteps,
    Send,
    StreamReader,
    failure_from_exception,
    failure_from_status,
    notify,
    parse_result,
    request_steps,
)
from cometnb._client.http import (
    AsyncHttp,
    adownload,
    alines,
    aread_body,
    async_transport,
    drop_library_frames,
    error_budget,
    is_loopback_host,
    result_budget,
    stream_budget,
)
from cometnb._client.loop import LoopThread, Relay, loop_thread
from cometnb._client.retry import Failure, RetryPolicy
from cometnb._client.runner import Pacer, Run, RunHooks, not_sent, open_gate
from cometnb._client.storing import InFlight, _Storing
from cometnb._core import edit_inputs as _sources
from cometnb._core import settings as _settings
from cometnb._core.billing import BillingRisk
from cometnb._core.budget import SpendGuard
from cometnb._core.byte_limits import ByteLimits
from cometnb._core.errors import (
    AuthenticationError,
    BudgetError,
    CancelledError,
    CometError,
    ResponseError,
    ValidationError,
    redact,
)
from cometnb._core.generations import ApiResult, ClientEvent, Generation, ImageRequest
from cometnb._core.model_registry import NO_INPUT_IMAGE, get_edit_caps
from cometnb._core.protocols import HistorySink, OnEvent, OnPartial
from cometnb._core.secret import MIN_KEY_CHARS, Secret, mask
from cometnb._core.validation import check_no_key, check_stored
from cometnb._storage.batches import BatchStore
from cometnb._storage.folder import History
from cometnb._storage.folder import history as active_history

__all__ = [
    "AsyncClient",
    "Client",
    "HistoryArg",
    "OnResult",
    "RequestLike",
]


# --- what both clients share: everything but I/O --------------------------------------------------

log = logging.getLogger("cometnb")

OnResult = Callable[[int, Generation], None]
RequestLike = ImageRequest | Mapping[str, Any]
HistoryArg = HistorySink | str | os.PathLike[str] | Literal[False] | None

SIMULATOR_HEADER = "x-cometnb-simulator"
_UNSAFE_KEY_HINT = "Copy the key again (only the key) and " + KEY_HINT[0].lower() + KEY_HINT[1:]
CANCELLED_MESSAGE = "Cancelled before the result arrived (a request already sent may be billed)."
CANCELLED_UNSENT = "Cancelled before the request was sent: nothing was billed."


def _history_sink(history: object) -> HistorySink | Literal[False] | None:
    """``history=`` as the client keeps it: a folder path becomes ``History(path)``."""
    if history is None or history is False:
        return history
    if isinstance(history, str | os.PathLike):
        return History(history)
    if history is True or not hasattr(history, "record_success"):
        raise TypeError(
            "history= takes a folder path, a cometnb.History, False (keep images in memory) "
            f"or None (the active history); got {type(history).__name__}"
        )
    return cast(HistorySink, history)


class _BaseClient(_Storing):
    """Request building, policy, parsing and storage shared by both clients (no I/O)."""

    def __init__(
        self,
        api_key: str | Secret | None,
        base_url: str | None,
        timeout: float | None,
        max_retries: int | None,
        *,
        history: HistoryArg,
        retry_billed: bool,
        rng: random.Random | None,
        limits: ByteLimits | None = None,
    ) -> None:
        settings = _settings.active()
        _http.install()
        # Held as a Secret from here to the header: no repr, traceback or log shows it.
        self._api_key = Secret.of(api_key)
        self.base_url = _settings.resolve_base_url(base_url)
        url = httpx.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValidationError(
                f"base_url must be an http(s) URL such as {_settings.DEFAULT_BASE_URL}; "
                f"got {self.base_url!r}",
                field="base_url",
            )
        self.host = url.host
        # Image URLs on loopback are fetched only when the API itself is there (the simulator).
        self._loopback = is_loopback_host(url.host)
        self.limits = limits if limits is not None else settings.limits
        self.timeout = float(settings.timeout if timeout is None else timeout)
        self.connect_timeout = float(min(settings.connect_timeout, self.timeout))
        # Made once: every request of this client posts to the same URL with the same timeouts.
        self.endpoint = _settings.generations_url(self.base_url)
        self._timeouts = httpx.Timeout(self.timeout, connect=self.connect_timeout)
        self.max_retries = int(settings.max_retries if max_retries is None else max_retries)
        self.retry_billed = retry_billed
        self.policy = RetryPolicy(
            max_retries=self.max_retries, retry_billed=retry_billed, rng=rng or random.Random()
        )
        self._history_arg = _history_sink(history)

    # Every attribute __init__ sets: what it resolves from the arguments and settings. A
    # blocking Client takes its engine's (one resolution, one retry policy, one History for
    # both); the engine's own state (pacer, in-flight marks) is AsyncClient's.
    _SETTINGS = (
        "_api_key",
        "base_url",
        "host",
        "_loopback",
        "limits",
        "timeout",
        "connect_timeout",
        "endpoint",
        "_timeouts",
        "max_retries",
        "retry_billed",
        "policy",
        "_history_arg",
    )

    def _share_settings(self, engine: _BaseClient) -> None:
        for name in self._SETTINGS:
            setattr(self, name, getattr(engine, name))

    # -- configuration ---------------------------------------------------------------

    def _key(self) -> Secret | None:
        """The key this client was given, else the configured one (looked up now: it may have
        been entered after the client was made)."""
        return self._api_key if self._api_key is not None else _settings.resolve_key()

    def _require_key(self) -> Secret:
        key = self._key()
        if key is None:
            raise _before_sending(
                AuthenticationError("No CometAPI key is configured.", hint=KEY_HINT)
            )
        if not key.header_safe:
            # httpx would fail while writing the header and quote the key in its error text.
            raise _before_sending(
                AuthenticationError(
                    "The API key contains a space, line break or non-ASCII character, which an "
                    "HTTP header cannot carry; nothing was sent.",
                    hint=_UNSAFE_KEY_HINT,
                )
            )
        if not key.realistic:
            # Never sent: a server could echo it back, and it is too short to redact safely.
            raise _before_sending(
                AuthenticationError(
                    f"The API key is too short to be a CometAPI key ({len(key)} characters; "
                    f"real keys have at least {MIN_KEY_CHARS}); nothing was sent.",
                    hint=_UNSAFE_KEY_HINT,
                )
            )
        return key

    def _history(self) -> HistorySink | None:
        if self._history_arg is False:
            return None
        if self._history_arg is None:
            return active_history()
        return self._history_arg

    def _writable_history(self) -> HistorySink | None:
        """The history, once it is known that it can hold the images (checked before sending)."""
        history = self._history()
        if history is not None:
            history.check_writable()
        return history

    def __repr__(self) -> str:
        key = _settings.resolve_key(self._api_key)
        shown = mask(key.reveal()) if key is not None else None
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={shown!r})"

    # -- requests --------------------------------------------------------------------

    def build_request(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        n: int | None = None,
        partial_images: int | None = None,
        **fields: Any,
    ) -> ImageRequest:
        """The :class:`ImageRequest` that ``generate`` would send (settings fill the gaps)."""
        if partial_images is not None:
            fields = {**fields, "stream": True, "partial_images": partial_images}
        request = ImageRequest(prompt, model, n=n, **fields)
        explicit = {"size": size, "quality": quality}
        request = request.with_overrides(**{k: v for k, v in explicit.items() if v is not None})
        return request.with_session_defaults()

    def _request_from(self, item: object, index: int) -> ImageRequest:
        if isinstance(item, ImageRequest):
            return item
        if isinstance(item, Mapping):
            return ImageRequest.from_dict(item).with_session_defaults()
        raise ValidationError(
            f"request {index} is a {type(item).__name__}, not an ImageRequest or a dict"
        )

    def _prepare(
        self, request: ImageRequest, *, validated: bool = False, key: Secret | None = None
    ) -> dict[str, Any]:
        """The body to send; ``key``: this client's key when the caller already has it."""
        key = key or self._key()
        if not validated:
            # Against the configured key, which is this client's key unless it was given one
            # (then the configured one is looked up: a prompt quoting it would still leak it).
            request.validate(key if self._api_key is None else None)
        body = request.to_body()
        check_no_key(body, key)  # this client's own key too
        return body

    def _stored_fields(
        self, tags: Iterable[str], origin: str | None = None, *, key: Secret | None = None
    ) -> tuple[str, ...]:
        """The tags and origin the record will hold, refused before sending when unstorable."""
        return check_stored(tags, origin, key or self._key())

    def _prepare_many(self, requests: Iterable[object]) -> list[dict[str, Any]]:
        """Validate every request before any is sent; the error names the bad one's index."""
        bodies = []
        key = self._key()
        for index, item in enumerate(requests):
            try:
                bodies.append(self._prepare(self._request_from(item, index), key=key))
            except ValidationError as exc:
                if exc.message.startswith(f"request {index} "):
                    raise
                raise ValidationError(
                    f"request {index}: {exc.message}", field=exc.field, hint=exc.hint
                ) from None
        return bodies

    def _post(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and the :meth:`AsyncHttp.open <cometnb._client.http.AsyncHttp.open>` arguments of
        ``body``'s POST (JSON, or multipart for the edits endpoint)."""
        stream = bool(body.get("stream"))
        accept = "text/event-stream, application/json" if stream else "application/json"
        if _exchange.is_multipart(body):
            url = self.base_url + _exchange.edit_path(body)
            # Never log the parts: names and sizes only (the bytes can be megabytes).
            log.debug("cometnb: POST %s (multipart, %d input(s))", url, len(body.images))
            content = {
                "data": _exchange.form_fields(body),
                "files": _exchange.multipart_files(body),
            }
            return url, {"accept": accept, "timeout": self._timeouts, **content}
        log.debug("cometnb: POST %s", self.endpoint)
        json_body = _exchange.json_with_references(body)
        return self.endpoint, {"accept": accept, "timeout": self._timeouts, "json": json_body}

    def build_edit(
        self,
        prompt: str,
        image: Any,
        *,
        mask: Any = None,
        markup: Any = None,
        model: str | None = None,
        partial_images: int | None = None,
        **fields: Any,
    ) -> ImageRequest:
        """The :class:`ImageRequest` that ``edit`` would send; ``@-1`` looks in this client's
        history. ``image`` is one source or a list (see :mod:`cometnb._core.edit_inputs`);
        ``mask`` and ``markup`` (2.6) are sources too."""
        found = self._history()
        history = cast(_sources.HistoryLookup, found) if hasattr(found, "get") else None
        # Files over the model's limit are refused before a byte of them is read.
        caps = get_edit_caps(model or _settings.active().model)
        most = caps.max_image_bytes if caps is not None else None
        images = _sources.resolve_sources(image, history=history, max_bytes=most)
        if not images:  # else it would go out as a (billed) plain generation
            raise ValidationError(NO_INPUT_IMAGE, field="image")
        mask_input = markup_input = None
        if mask is not None:
            mask_most = caps.mask_max_bytes if caps is not None else None
            mask_input = _sources.resolve_source(mask, history=history, max_bytes=mask_most)
        if markup is not None:
            markup_input = _sources.resolve_source(markup, history=history, max_bytes=most)
        request = self.build_request(prompt, model=model, partial_images=partial_images, **fields)
        return request.with_overrides(images=images, mask=mask_input, markup=markup_input)

    # -- responses -------------------------------------------------------------------

    def _status_failure(self, response: httpx.Response, content: bytes) -> Failure:
        return failure_from_status(response.status_code, response.headers, content, self.host)

    def _transport_failure(self, exc: httpx.RequestError) -> Failure:
        return failure_from_exception(exc, self.host, self.timeout)

    @staticmethod
    def _is_sse(response: httpx.Response, body: dict[str, Any]) -> bool:
        ctype = response.headers.get("content-type", "").lower()
        # A server that ignores stream=true answers plain JSON: parse that as a normal result.
        return "event-stream" in ctype or (bool(body.get("stream")) and not ctype)

    @staticmethod
    def _received(step: Send, response: httpx.Response) -> None:
        """An answer has been read in full: keep its rate-limit headers for the pacer, and say
        when it is a good one (the server is done with this request)."""
        step.note_headers(response.headers)
        if response.is_success:
            notify(step.on_event, ClientEvent("received"))

    def _complete_answer(self, response: httpx.Response, content: bytes) -> Attempt:
        """A fully read, non-streamed answer: the parsed result or the failure it means."""
        if not response.is_success:
            return self._status_failure(response, content)
        return parse_result(content, self.host), _is_synthetic(response)

    def _stream_reader(self, step: Send) -> StreamReader:
        return StreamReader(self.host, step.on_partial, step.on_event, self.limits)

    @staticmethod
    def _too_much(error: CometError) -> Failure:
        """A reply over a size cap, past its deadline or unusable: the request was sent and
        answered, so it may have been billed; never retried."""
        return Failure(error, BillingRisk.ANSWERED_UNUSABLE, "reply over its limit")


def _is_synthetic(response: httpx.Response) -> bool:
    return bool(response.headers.get(SIMULATOR_HEADER) == "1")


def _cancelled(sent: bool = True) -> CancelledError:
    """The error a cancelled request is recorded with; one cancelled before its first POST
    left (``sent=False``) may not have been billed, so it costs $0."""
    error = CancelledError(CANCELLED_MESSAGE if sent else CANCELLED_UNSENT)
    error.billing = BillingRisk.SENT_NO_ANSWER if sent else BillingRisk.NOT_SENT
    return error


def unexpected(exc: BaseException, stage: Literal["sending", "storing"]) -> CometError:
    """A failure that is not a :class:`CometError` (MemoryError, an OSError, a Pillow or an
    encoding error) as one, so it is recorded like any other and fails only its request."""
    drop_library_frames(exc)
    detail = redact(str(exc)).strip()
    what = f"{type(exc).__name__}{': ' + detail[:160] if detail else ''}"
    if stage == "storing":
        error = CometError(
            f"Storing the result failed unexpectedly ({what}).",
            hint="The generation was billed; the images may be lost. Check the disk and memory.",
        )
    else:
        error = CometError(
            f"The request failed unexpectedly after it was sent ({what}).",
            hint="The generation may have been billed, so it was not retried.",
        )
    error.__cause__ = exc
    # It failed after sending (or storing a billed answer): the batch must not resend it.
    error.billing = BillingRisk.NOT_STORED if stage == "storing" else BillingRisk.SENT_NO_ANSWER
    return error


def _before_sending(error: CometError) -> CometError:
    """An error found before the request left: $0, and nothing a batch must hold back."""
    error.billing = BillingRisk.NOT_SENT
    return error


def storing_failure(exc: BaseException) -> CometError:
    """The error of a request whose answer arrived but could not be stored (a full disk, a
    locked index): the generation was billed, whatever the error says."""
    failure = exc if isinstance(exc, CometError) else unexpected(exc, "storing")
    failure.billing = BillingRisk.NOT_STORED
    return failure


# --- AsyncClient: the steps performed by awaiting -------------------------------------------------


class AsyncClient(_BaseClient):
    """Asyncio client: the same behaviour as :class:`Client`, with ``await``.

    Example::

        >>> async with AsyncClient(api_key="sk-…") as c:  # doctest: +SKIP
        ...     gens = await c.generate_many([{"prompt": "a fox"}, {"prompt": "an owl"}])

    ``sleep`` replaces ``asyncio.sleep`` between retries (tests). History writes run in a
    worker thread so the event loop is never blocked by disk I/O.
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        history: HistoryArg = None,
        retry_billed: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        limits: ByteLimits | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout,
            max_retries,
            history=history,
            retry_billed=retry_billed,
            rng=rng,
            limits=limits,
        )
        self._sleep = sleep or asyncio.sleep
        self._http = AsyncHttp(self._timeouts, transport)
        # Sends at the server's rate limit once one shows (headers or 429s); None: unpaced.
        self.pacer: Pacer | None = Pacer()
        # A result could not be stored: each later request asks the history for room first.
        self._store_failed = False
        # The batch tables requests are marked in while on the wire (one per history folder).
        self._in_flight: dict[Path, BatchStore] = {}

    def _close_in_flight(self) -> None:
        for store in self._in_flight.values():
            store.close()
        self._in_flight.clear()

    def _steps(
        self,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        patient: bool = False,
    ) -> RequestSteps:
        """The I/O steps of one request, from the first attempt to its result (``patient``:
        one request of a run of several, see :func:`~cometnb._client.exchange.request_steps`)."""
        key = self._require_key()
        pacer = self.pacer
        return request_steps(body, key, self.policy, on_partial, on_event, pacer, patient=patient)

    # -- public API ------------------------------------------------------------------

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        n: int | None = None,
        partial_images: int | None = None,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
        **fields: Any,
    ) -> Generation:
        """Generate image(s) for ``prompt``; raise a :class:`CometError` on failure."""
        request = self.build_request(
            prompt,
            model=model,
            size=size,
            quality=quality,
            n=n,
            partial_images=partial_images,
            **fields,
        )
        return await self.run(
            request, on_partial=on_partial, on_event=on_event, tags=tags, origin=origin
        )

    async def edit(
        self,
        prompt: str,
        image: Any,
        *,
        mask: Any = None,
        model: str | None = None,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
        **fields: Any,
    ) -> Generation:
        """Edit ``image`` (see :meth:`cometnb.Client.edit`); raise on failure."""
        request = self.build_edit(prompt, image, mask=mask, model=model, **fields)
        return await self.run(
            request, on_partial=on_partial, on_event=on_event, tags=tags, origin=origin
        )

    async def run(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
    ) -> Generation:
        """Send a prepared :class:`ImageRequest` (validated first); raise on failure.

        Refused (:class:`~cometnb.BudgetError`, nothing sent) when its estimate is more than
        ``CometImg.budget`` has left, or its cost is unknown while a budget is set.
        """
        key = self._key()  # once for the request (a cell hands its own over: no look-up)
        body = self._prepare(request, key=key)
        stored = self._stored_fields(tags, origin, key=key)
        gate = open_gate([body])
        history = await self._open_history()
        gen = await self._gated(gate, history, body, on_partial, on_event, stored, origin)
        return gen.raise_for_error()

    async def send_checked(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: tuple[str, ...] = (),
        origin: str | None = None,
        patient: bool = False,
    ) -> Generation:
        """One request of a run (a grid's cell, a batch's item) to its outcome, a failure
        included (not raised). The runner's caller has validated it, checked ``tags`` and
        ``origin`` (``check_stored``) and that the history is writable, and the runner admits
        it under the budget: none of that is done again here. ``patient``: a run of several."""
        body = request.to_body()
        history = self._history()
        return await self._outcome(history, body, on_partial, on_event, tags, origin, patient)

    agenerate = generate
    aedit = edit
    arun = run

    async def generate_many(
        self,
        requests: Iterable[RequestLike],
        concurrency: int = 4,
        *,
        tags: Sequence[str] = (),
        on_result: OnResult | None = None,
    ) -> list[Generation]:
        """Run many requests concurrently; results in input order, failures not raised.

        The whole estimate is checked against ``CometImg.budget`` before the first request
        (``BudgetError``); a request not yet sent once what is left cannot cover it is not
        sent (its Generation holds the ``BudgetError``).
        """
        bodies = self._prepare_many(requests)
        return await self._many(bodies, concurrency, self._stored_fields(tags), on_result)

    async def aclose(self) -> None:
        await self._http.aclose()
        self._close_in_flight()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- I/O -------------------------------------------------------------------------

    async def _many(
        self,
        bodies: list[dict[str, Any]],
        concurrency: int,
        tags: tuple[str, ...],
        on_result: OnResult | None,
    ) -> list[Generation]:
        gate = open_gate(bodies)  # the whole estimate, before the first request
        history = await self._open_history()  # once, not once per request
        hooks = _ManyHooks(self, history, bodies, tags, None, on_result=on_result)
        await Run(range(len(bodies)), hooks, concurrency, gate).run()
        return hooks.results()

    async def _open_history(self) -> HistorySink | None:
        """The history results go to, opened before anything is sent."""
        if self._history_arg is None:
            # The active history: opening a folder the first time touches the disk.
            return await asyncio.to_thread(self._writable_history)
        # Given (or False): a stat call, no thread, whose queue may be busy storing.
        return self._writable_history()

    async def _gated(
        self,
        gate: SpendGuard | None,
        history: HistorySink | None,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        """One request as a run of one: admitted by ``gate`` (the budget) when one is set."""
        hooks = _ManyHooks(self, history, [body], tags, origin, on_partial, on_event)
        await Run((0,), hooks, 1, gate).run()
        return hooks.results()[0]

    async def _outcome(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
        patient: bool = False,
    ) -> Generation:
        start = time.monotonic()
        # The request's in-flight mark while it is on the wire; it also notes whether its POST
        # left (a cancel before the first POST is not billed).
        marks = InFlight(self._in_flight, history, origin)
        watched = marks.follow(body, on_event)
        try:
            try:
                if history is not None and self._store_failed:
                    # A result of this run could not be stored: is there room for this one?
                    await asyncio.to_thread(history.check_writable)
                result = await self._obtain(body, on_partial, watched, patient)
            except CometError as error:
                elapsed = time.monotonic() - start
                return await asyncio.to_thread(
                    self._record_failure, history, body, error, elapsed, tags, origin
                )
            except Exception as exc:  # MemoryError, a bug below us: this request's error only
                failure = unexpected(exc, "sending")
                elapsed = time.monotonic() - start
                return await asyncio.to_thread(
                    self._record_failure, history, body, failure, elapsed, tags, origin
                )
            except (asyncio.CancelledError, KeyboardInterrupt) as cancel:
                # A cancel (Ctrl-C in a blocking Client's caller cancels this task), or an
                # interrupt raised in here (a callback, a test transport): recorded the same way.
                drop_library_frames(cancel)  # their locals hold the raw header bytes
                elapsed = time.monotonic() - start
                record = asyncio.to_thread(
                    self._record_failure,
                    history,
                    body,
                    _cancelled(marks.sent),
                    elapsed,
                    tags,
                    origin,
                    "cancelled",
                )
                await asyncio.shield(record)  # a second cancel must not lose the record
                raise
            notify(watched, ClientEvent("storing"))
            elapsed = time.monotonic() - start
            try:
                return await asyncio.to_thread(
                    self._store, history, body, result, elapsed, tags, origin
                )
            except Exception as exc:  # a full disk, MemoryError: this request's error, recorded
                self._store_failed = True
                failure = storing_failure(exc)
                return await asyncio.to_thread(
                    self._record_failure, history, body, failure, elapsed, tags, origin
                )
        finally:
            marks.close()  # recorded (or never sent): the request is no longer in flight

    async def _obtain(
        self,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        patient: bool = False,
    ) -> ApiResult:
        steps = self._steps(body, on_partial, on_event, patient)
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as finished:
                return cast(ApiResult, finished.value)
            if isinstance(step, Send):
                answer = await self._attempt(step)
            elif isinstance(step, Download):
                answer = await self._download(step.url)
            else:
                await self._sleep(step.seconds)
                answer = None

    async def _attempt(self, step: Send) -> Attempt:
        started = time.monotonic()
        url, content = self._post(step.body)
        try:
            async with self._http.open("POST", url, key=step.key, **content) as response:
                return await self._answer(step, response, started)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        except ResponseError as exc:  # over a size cap, past the deadline, an odd encoding
            return self._too_much(exc)

    async def _answer(self, step: Send, response: httpx.Response, started: float) -> Attempt:
        if not response.is_success:
            content = await aread_body(response, error_budget(self.host, self.limits, started))
            return self._status_failure(response, content)
        if not self._is_sse(response, step.body):
            budget = result_budget(self.host, self.limits, step.body, started)
            content = await aread_body(response, budget)
            self._received(step, response)
            return self._complete_answer(response, content)
        reader = self._stream_reader(step)
        budget = stream_budget(self.host, self.limits, step.body, started)
        stream = alines(response, budget, self.limits.sse_line_bytes)
        try:
            async for line in stream:
                if reader.feed(line):
                    break
        finally:
            await stream.aclose()
        self._received(step, response)
        return reader.finish(), _is_synthetic(response)

    async def _download(self, url: str) -> bytes:
        return await adownload(self._http, url, allow_loopback=self._loopback, limits=self.limits)


class _ManyHooks(RunHooks[int]):
    """``generate_many``'s (and a lone request's) side of the runner: each body's outcome,
    in input order, and the caller's callbacks."""

    def __init__(
        self,
        client: AsyncClient,
        history: HistorySink | None,
        bodies: Sequence[dict[str, Any]],
        tags: tuple[str, ...],
        origin: str | None,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        *,
        on_result: OnResult | None = None,
    ) -> None:
        self.client, self.history, self.bodies = client, history, bodies
        self.tags, self.origin = tags, origin
        self.on_partial, self.on_event, self.on_result = on_partial, on_event, on_result
        self._results: dict[int, Generation] = {}

    def request(self, item: int) -> dict[str, Any]:
        return self.bodies[item]

    def refused(self, item: int, error: BudgetError) -> None:
        self.finished(item, not_sent(self.bodies[item], error))

    def event(self, item: int, event: ClientEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def send(self, item: int, on_event: OnEvent, patient: bool) -> Generation:
        body = self.bodies[item]
        history, tags, origin = self.history, self.tags, self.origin
        return await self.client._outcome(
            history, body, self.on_partial, on_event, tags, origin, patient
        )

    def finished(self, item: int, gen: Generation) -> None:
        self._results[item] = gen
        notify(self.on_result, item, gen)

    def results(self) -> list[Generation]:
        return [self._results[i] for i in range(len(self.bodies))]


# --- Client: the engine driven from blocking code -------------------------------------------------

# How long close() waits for the pool to close on the loop thread.
CLOSE_S = 5.0


class Client(_BaseClient):
    """Blocking client: works inside Jupyter's running loop, in scripts and in worker threads.

    Example::

        >>> with Client(api_key="sk-…") as c:  # doctest: +SKIP
        ...     gen = c.generate("a lighthouse at dusk", model="gpt-image-1-mini")
        >>> gen.image.path  # doctest: +SKIP
        PosixPath('cometnb-history/images/20261122-101500-3f2a-0.png')

    ``history`` is a folder path or a ``History`` (default: the active one); ``history=False``
    keeps images in memory instead of the history folder; ``transport`` is an
    httpx transport that is also asynchronous (tests pass ``httpx.MockTransport``); ``sleep``
    replaces the wait between retries; ``retry_billed=True`` allows one retry of failures that
    may have been billed (read timeouts, 5xx other than 503). ``limits`` caps what one reply may
    cost in memory and time (default ``CometImg``'s, see
    :class:`~cometnb._core.byte_limits.ByteLimits`).

    Every request runs on this client's engine, an :class:`AsyncClient` with the same settings
    and one connection pool, on the session's private loop thread; ``on_partial`` and
    ``on_event`` are called on the caller's thread, in order. Ctrl-C while a request runs
    cancels it and records the cancellation before the ``KeyboardInterrupt`` propagates.
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        history: HistoryArg = None,
        retry_billed: bool = False,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        limits: ByteLimits | None = None,
    ) -> None:
        self._engine = AsyncClient(
            api_key,
            base_url,
            timeout,
            max_retries,
            history=history,
            retry_billed=retry_billed,
            transport=async_transport(transport),
            sleep=None if sleep is None else _off_the_loop(sleep),
            rng=rng,
            limits=limits,
        )
        # The engine resolved the arguments and settings: this client reads the same ones.
        self._share_settings(self._engine)
        # A client dropped unclosed: its pool is closed on its loop, never left to the GC.
        self._release = weakref.finalize(self, _release_pool, self._engine._http)
        self._release.atexit = False  # at exit the process's sockets go with it

    @property
    def pacer(self) -> Pacer | None:
        """The engine's pacer (one rate limit per key: what one request learns, all use)."""
        return self._engine.pacer

    @pacer.setter
    def pacer(self, value: Pacer | None) -> None:
        self._engine.pacer = value

    # -- public API ------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        n: int | None = None,
        partial_images: int | None = None,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
        **fields: Any,
    ) -> Generation:
        """Generate image(s) for ``prompt``; raise a :class:`CometError` on failure."""
        request = self.build_request(
            prompt,
            model=model,
            size=size,
            quality=quality,
            n=n,
            partial_images=partial_images,
            **fields,
        )
        return self.run(request, on_partial=on_partial, on_event=on_event, tags=tags, origin=origin)

    def edit(
        self,
        prompt: str,
        image: Any,
        *,
        mask: Any = None,
        model: str | None = None,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
        **fields: Any,
    ) -> Generation:
        """Edit ``image`` (one source or a list: path, ``@-1``, bytes, PIL image, record…).

        ``mask`` is a PNG with alpha the size of the first image (``cometnb.mask`` makes one);
        every other field (``input_fidelity``, ``size``, ``quality``, ``n``, ``partial_images``,
        …) as for :meth:`generate`. Checked before anything is sent; raises on failure.

        Example::

            >>> gen = client.edit("the same scene at night", "@-1")  # doctest: +SKIP
        """
        request = self.build_edit(prompt, image, mask=mask, model=model, **fields)
        return self.run(request, on_partial=on_partial, on_event=on_event, tags=tags, origin=origin)

    def run(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
    ) -> Generation:
        """Send a prepared :class:`ImageRequest` (validated first); raise on failure.

        Refused (:class:`~cometnb.BudgetError`, nothing sent) when its estimate is more than
        ``CometImg.budget`` has left, or its cost is unknown while a budget is set.
        """
        relay = Relay()
        sent = self._engine.run(
            request,
            on_partial=_relayed(on_partial, relay.post),
            on_event=_relayed(on_event, relay.post),
            tags=tags,
            origin=origin,
        )
        return self._loop_thread().run(sent, relay)

    def generate_many(
        self,
        requests: Iterable[RequestLike],
        concurrency: int = 4,
        *,
        tags: Sequence[str] = (),
        on_result: OnResult | None = None,
    ) -> list[Generation]:
        """Run many requests concurrently; results in input order, failures not raised.

        Every request is validated, and the whole estimate checked against
        ``CometImg.budget``, before anything is sent; once what is left cannot cover a request
        not yet sent, it is not sent (its Generation holds a ``BudgetError``).
        ``on_result(index, generation)`` is called (from the private loop thread) as each
        finishes.
        """
        bodies = self._prepare_many(requests)
        stored = self._stored_fields(tags)
        return self._loop_thread().run(self._engine._many(bodies, concurrency, stored, on_result))

    async def agenerate(self, prompt: str, **kwargs: Any) -> Generation:
        """Async :meth:`generate`, awaited on the caller's event loop (run on the engine's)."""
        return await self._arun(self.build_request, prompt, **kwargs)

    async def aedit(self, prompt: str, image: Any, **kwargs: Any) -> Generation:
        """Async :meth:`edit`, awaited on the caller's event loop (run on the engine's)."""
        return await self._arun(self.build_edit, prompt, image, **kwargs)

    async def arun(self, request: ImageRequest, **kwargs: Any) -> Generation:
        """Async :meth:`run`, awaited on the caller's event loop (run on the engine's)."""
        return await self._arun(lambda: request, **kwargs)

    def close(self) -> None:
        """Close the connection pool (on the loop it belongs to) and the in-flight marks."""
        self._release.detach()
        done = self._engine.aclose()
        pool_loop = self._engine._http.loop
        if pool_loop is None or pool_loop.is_closed() or not pool_loop.is_running():
            done.close()  # never used, or its loop is gone (and its connections with it)
            self._engine._close_in_flight()
        elif _running_loop() is pool_loop:
            pool_loop.create_task(done)  # called on the loop thread itself: close after this
        else:
            asyncio.run_coroutine_threadsafe(done, pool_loop).result(CLOSE_S)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the engine ------------------------------------------------------------------

    def _loop_thread(self) -> LoopThread:
        """The session's loop thread, which closes this client's pool if it stops first."""
        thread = loop_thread()
        thread.adopt(self._engine._http)
        return thread

    def _engine_on_loop(self) -> AsyncClient:
        """This client's engine, for code already on the loop thread (a batch run); it stays
        open (``close()`` closes it)."""
        self._loop_thread()  # adopts the pool
        return self._engine

    async def _arun(
        self,
        build: Callable[..., ImageRequest],
        *args: Any,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
        **fields: Any,
    ) -> Generation:
        request = build(*args, **fields)  # reads files for an edit: the caller's loop, as before
        post = asyncio.get_running_loop().call_soon_threadsafe
        sent: Coroutine[Any, Any, Generation] = self._engine.run(
            request,
            on_partial=_relayed(on_partial, post),
            on_event=_relayed(on_event, post),
            tags=tags,
            origin=origin,
        )
        return await self._loop_thread().call(sent)


def _relayed(
    callback: Callable[..., None] | None, post: Callable[[Callable[[], object]], object]
) -> Any:
    """``callback`` as the engine calls it on the loop thread: queued for the caller's thread
    (``post``), where it runs as any callback does (:func:`notify`: errors logged)."""
    if callback is None:
        return None

    def relay(*args: Any) -> None:
        post(functools.partial(notify, callback, *args))

    return relay


def _release_pool(http: AsyncHttp) -> None:
    """Close ``http`` on its loop (a client collected without ``close()``); waits unless
    collected on that loop's own thread."""
    loop = http.loop
    if loop is None or not loop.is_running():
        return
    closing = asyncio.run_coroutine_threadsafe(http.aclose(), loop)
    if _running_loop() is not loop:
        with contextlib.suppress(Exception):
            closing.result(CLOSE_S)


def _off_the_loop(sleep: Callable[[float], None]) -> Callable[[float], Awaitable[None]]:
    """A blocking ``sleep=`` as the engine awaits it: in a worker thread, the loop stays free."""

    async def asleep(seconds: float) -> None:
        await asyncio.to_thread(sleep, seconds)

    return asleep


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
