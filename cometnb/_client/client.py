"""The CometAPI image client: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

As in httpx, one base class (:class:`_BaseClient`) holds everything that is not I/O — the
configuration (base URL, timeouts, retry policy), the key and its checks, building and
validating requests, what each POST carries, mapping answers to results or failures, storing
outcomes (:class:`~cometnb._client.storing._Storing`) — and the two clients differ only in how
they perform the I/O steps of :func:`cometnb._client.exchange.request_steps`: by blocking or
by awaiting. ``Client.generate_many`` and its ``a*`` methods run on an :class:`AsyncClient`
twin with the same settings.

Flow of one request: validate (nothing is sent for a request the model cannot take) → resolve
the key → POST with billing-aware retries (:mod:`~cometnb._client.exchange`,
:mod:`~cometnb._client.retry`) → parse JSON or SSE → decode base64 / download URLs at once →
store in the history → :class:`~cometnb._core.generations.Generation`. Every failure after
validation is recorded in the history before it is raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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
    Step,
    StreamReader,
    failure_from_exception,
    failure_from_status,
    notify,
    parse_result,
    request_steps,
)
from cometnb._client.http import (
    AsyncHttp,
    Http,
    adownload,
    alines,
    aread_body,
    download,
    drop_library_frames,
    error_budget,
    is_loopback_host,
    lines,
    read_body,
    result_budget,
    stream_budget,
)
from cometnb._client.in_flight import InFlight
from cometnb._client.loop import loop_thread
from cometnb._client.retry import Failure, RetryPolicy
from cometnb._client.runner import Pacer, Run, RunHooks, not_sent, open_gate
from cometnb._client.storing import _Storing
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
        self.max_retries = int(settings.max_retries if max_retries is None else max_retries)
        self.retry_billed = retry_billed
        self.policy = RetryPolicy(
            max_retries=self.max_retries, retry_billed=retry_billed, rng=rng or random.Random()
        )
        self._history_arg = _history_sink(history)
        # Sends at the server's rate limit once one shows (headers or 429s); None: unpaced.
        self.pacer: Pacer | None = Pacer()
        # A result could not be stored: each later request asks the history for room first.
        self._store_failed = False
        # The batch tables requests are marked in while on the wire (one per history folder).
        self._in_flight: dict[Path, BatchStore] = {}

    # -- configuration ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return _settings.generations_url(self.base_url)

    @property
    def _timeouts(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _require_key(self) -> Secret:
        key = _settings.resolve_key(self._api_key)
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

    def _close_in_flight(self) -> None:
        for store in self._in_flight.values():
            store.close()
        self._in_flight.clear()

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

    def _prepare(self, request: ImageRequest, *, validated: bool = False) -> dict[str, Any]:
        body = (request if validated else request.validate()).to_body()
        check_no_key(body, _settings.resolve_key(self._api_key))  # this client's own key too
        return body

    def _stored_fields(self, tags: Iterable[str], origin: str | None = None) -> tuple[str, ...]:
        """The tags and origin the record will hold, refused before sending when unstorable."""
        return check_stored(tags, origin, _settings.resolve_key(self._api_key))

    def _prepare_many(self, requests: Iterable[object]) -> list[dict[str, Any]]:
        """Validate every request before any is sent; the error names the bad one's index."""
        bodies = []
        for index, item in enumerate(requests):
            try:
                bodies.append(self._prepare(self._request_from(item, index)))
            except ValidationError as exc:
                if exc.message.startswith(f"request {index} "):
                    raise
                raise ValidationError(
                    f"request {index}: {exc.message}", field=exc.field, hint=exc.hint
                ) from None
        return bodies

    def _post(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and the :meth:`Http.open <cometnb._client.http.Http.open>` arguments of
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
        model: str | None = None,
        partial_images: int | None = None,
        **fields: Any,
    ) -> ImageRequest:
        """The :class:`ImageRequest` that ``edit`` would send; ``@-1`` looks in this client's
        history. ``image`` is one source or a list (see :mod:`cometnb._core.edit_inputs`)."""
        found = self._history()
        history = cast(_sources.HistoryLookup, found) if hasattr(found, "get") else None
        # Files over the model's limit are refused before a byte of them is read.
        caps = get_edit_caps(model or _settings.active().model)
        most = caps.max_image_bytes if caps is not None else None
        images = _sources.resolve_sources(image, history=history, max_bytes=most)
        if not images:  # else it would go out as a (billed) plain generation
            raise ValidationError(NO_INPUT_IMAGE, field="image")
        mask_input = None
        if mask is not None:
            mask_most = caps.mask_max_bytes if caps is not None else None
            mask_input = _sources.resolve_source(mask, history=history, max_bytes=mask_most)
        request = self.build_request(prompt, model=model, partial_images=partial_images, **fields)
        return request.with_overrides(images=images, mask=mask_input)

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

    # -- the exchange, as I/O steps (performed by the subclass) -------------------------

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


class SentWatch:
    """An ``on_event`` wrapper that notes the ``"sending"`` event (a POST about to leave)."""

    def __init__(self, on_event: OnEvent | None) -> None:
        self.on_event = on_event
        self.sent = False

    def __call__(self, event: ClientEvent) -> None:
        if event.kind == "sending":
            self.sent = True
        if self.on_event is not None:
            self.on_event(event)


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
        body = self._prepare(request)
        stored = self._stored_fields(tags, origin)
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
        marks = InFlight(self._in_flight, history, origin)
        try:
            follow = marks.follow(body, on_event)
            return await self._tracked(history, body, on_partial, follow, tags, origin, patient)
        finally:
            marks.close()  # recorded (or never sent): the request is no longer in flight

    async def _tracked(
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
        watch = SentWatch(on_event)  # a cancel before the first POST is not billed
        try:
            if history is not None and self._store_failed:
                # A result of this run could not be stored: is there room for this one?
                await asyncio.to_thread(history.check_writable)
            result = await self._obtain(body, on_partial, watch, patient)
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
        except asyncio.CancelledError as cancel:
            drop_library_frames(cancel)  # their locals hold the raw header bytes
            elapsed = time.monotonic() - start
            record = asyncio.to_thread(
                self._record_failure,
                history,
                body,
                _cancelled(watch.sent),
                elapsed,
                tags,
                origin,
                "cancelled",
            )
            await asyncio.shield(record)  # a second cancel must not lose the record
            raise
        notify(on_event, ClientEvent("storing"))
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
            answer = await self._perform(step)

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Send):
            return await self._attempt(step)
        if isinstance(step, Download):
            return await self._download(step.url)
        await self._sleep(step.seconds)
        return None

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


# --- Client: the steps performed by blocking ------------------------------------------------------


class Client(_BaseClient):
    """Synchronous client (plain httpx: works inside Jupyter's running loop and in scripts).

    Example::

        >>> with Client(api_key="sk-…") as c:  # doctest: +SKIP
        ...     gen = c.generate("a lighthouse at dusk", model="gpt-image-1-mini")
        >>> gen.image.path  # doctest: +SKIP
        PosixPath('cometnb-history/images/20261122-101500-3f2a-0.png')

    ``history`` is a folder path or a ``History`` (default: the active one); ``history=False``
    keeps images in memory instead of the history folder; ``transport`` is an
    httpx transport (tests pass ``httpx.MockTransport``); ``sleep`` replaces ``time.sleep``
    between retries; ``retry_billed=True`` allows one retry of failures that may have been
    billed (read timeouts, 5xx other than 503). ``limits`` caps what one reply may cost in
    memory and time (default ``CometImg``'s, see :class:`~cometnb._core.byte_limits.ByteLimits`).
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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
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
        self._transport = transport
        self._sleep = sleep or time.sleep
        # Redirects are not followed: a 301 on the POST means a wrong base_url.
        self._http = Http(self._timeouts, transport)

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

    async def aedit(self, prompt: str, image: Any, **kwargs: Any) -> Generation:
        """Async :meth:`edit` on the caller's event loop."""
        async with self._async_twin() as twin:
            return await twin.edit(prompt, image, **kwargs)

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
        body = self._prepare(request)
        stored = self._stored_fields(tags, origin)
        gate = open_gate([body])
        gen = self._gated(gate, body, on_partial, on_event, stored, origin)
        return gen.raise_for_error()

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
        return loop_thread().run(self._many_on_twin(bodies, concurrency, stored, on_result))

    async def agenerate(self, prompt: str, **kwargs: Any) -> Generation:
        """Async :meth:`generate` on the caller's event loop."""
        async with self._async_twin() as twin:
            return await twin.generate(prompt, **kwargs)

    async def arun(self, request: ImageRequest, **kwargs: Any) -> Generation:
        """Async :meth:`run` on the caller's event loop."""
        async with self._async_twin() as twin:
            return await twin.run(request, **kwargs)

    def close(self) -> None:
        self._http.close()
        self._close_in_flight()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- I/O -------------------------------------------------------------------------

    def _async_twin(self) -> AsyncClient:
        """An AsyncClient with this client's settings (httpx async clients are loop-bound)."""
        transport = self._transport
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError("async use needs a transport that is also an AsyncBaseTransport")
        twin = AsyncClient(
            self._api_key,
            self.base_url,
            self.timeout,
            self.max_retries,
            history=self._history_arg,
            retry_billed=self.retry_billed,
            transport=transport,
            rng=self.policy.rng,
            limits=self.limits,
        )
        twin.connect_timeout = self.connect_timeout
        twin.pacer = self.pacer  # one rate limit per key: what one learns, both use
        return twin

    async def _many_on_twin(
        self,
        bodies: list[dict[str, Any]],
        concurrency: int,
        tags: tuple[str, ...],
        on_result: OnResult | None,
    ) -> list[Generation]:
        async with self._async_twin() as twin:
            return await twin._many(bodies, concurrency, tags, on_result)

    def _gated(
        self,
        gate: SpendGuard | None,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        """:meth:`_outcome` once the budget admits the request (when a budget is set)."""
        if gate is None:
            return self._outcome(body, on_partial, on_event, tags, origin)
        refused = gate.before_send(body)
        if refused is not None:
            return not_sent(body, refused)
        gen = None
        try:
            gen = self._outcome(body, on_partial, on_event, tags, origin)
            return gen
        finally:  # also on an interrupt: the reservation must not outlive the request
            gate.after(body, gen.cost if gen is not None else None)

    def _outcome(
        self,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        history = self._writable_history()
        marks = InFlight(self._in_flight, history, origin)
        try:
            return self._tracked(
                history, body, on_partial, marks.follow(body, on_event), tags, origin
            )
        finally:
            marks.close()  # recorded (or never sent): the request is no longer in flight

    def _tracked(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        start = time.monotonic()
        try:
            result = self._obtain(body, on_partial, on_event)
        except CometError as error:
            elapsed = time.monotonic() - start
            return self._record_failure(history, body, error, elapsed, tags, origin)
        except KeyboardInterrupt as interrupt:
            drop_library_frames(interrupt)  # their locals hold the raw header bytes
            elapsed = time.monotonic() - start
            self._record_failure(history, body, _cancelled(), elapsed, tags, origin, "cancelled")
            raise
        except Exception as exc:  # MemoryError, a bug below us: recorded like any failure
            failure = unexpected(exc, "sending")
            elapsed = time.monotonic() - start
            return self._record_failure(history, body, failure, elapsed, tags, origin)
        notify(on_event, ClientEvent("storing"))
        try:
            return self._store(history, body, result, time.monotonic() - start, tags, origin)
        except Exception as exc:  # a full disk, MemoryError: this request's error, recorded
            failure = storing_failure(exc)
            elapsed = time.monotonic() - start
            return self._record_failure(history, body, failure, elapsed, tags, origin)

    def _obtain(
        self, body: dict[str, Any], on_partial: OnPartial | None, on_event: OnEvent | None
    ) -> ApiResult:
        steps = self._steps(body, on_partial, on_event)
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as finished:
                return cast(ApiResult, finished.value)
            answer = self._perform(step)

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Send):
            return self._attempt(step)
        if isinstance(step, Download):
            return self._download(step.url)
        self._sleep(step.seconds)
        return None

    def _attempt(self, step: Send) -> Attempt:
        started = time.monotonic()
        url, content = self._post(step.body)
        try:
            with self._http.open("POST", url, key=step.key, **content) as response:
                return self._answer(step, response, started)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        except ResponseError as exc:  # over a size cap, past the deadline, an odd encoding
            return self._too_much(exc)

    def _answer(self, step: Send, response: httpx.Response, started: float) -> Attempt:
        if not response.is_success:
            content = read_body(response, error_budget(self.host, self.limits, started))
            return self._status_failure(response, content)
        if not self._is_sse(response, step.body):
            budget = result_budget(self.host, self.limits, step.body, started)
            content = read_body(response, budget)
            self._received(step, response)
            return self._complete_answer(response, content)
        reader = self._stream_reader(step)
        budget = stream_budget(self.host, self.limits, step.body, started)
        for line in lines(response, budget, self.limits.sse_line_bytes):
            if reader.feed(line):
                break
        self._received(step, response)
        return reader.finish(), _is_synthetic(response)

    def _download(self, url: str) -> bytes:
        return download(self._http, url, allow_loopback=self._loopback, limits=self.limits)
