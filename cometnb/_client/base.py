"""What :class:`Client` and :class:`AsyncClient` share: everything but I/O.

:class:`_BaseClient` holds the configuration (base URL, timeouts, retry policy), resolves and
checks the key, builds and validates requests, says what each POST carries and maps
answers to results or failures (:mod:`~cometnb._client.exchange`); storing outcomes in the
history is :class:`~cometnb._client.storing._Storing`, which it inherits. The exchange itself —
retries and downloads — is :func:`cometnb._client.exchange.request_steps`, a generator of I/O steps
each client performs its own way (:meth:`_BaseClient._steps` starts it).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import httpx

from cometnb._client import exchange as _exchange
from cometnb._client import http as _http
from cometnb._client.exchange import (
    KEY_HINT,
    Attempt,
    RequestSteps,
    Send,
    StreamReader,
    failure_from_exception,
    failure_from_status,
    notify,
    parse_result,
    request_steps,
)
from cometnb._client.http import drop_library_frames, is_loopback_host
from cometnb._client.retry import Failure, RetryPolicy
from cometnb._client.runner import Pacer
from cometnb._client.storing import _Storing
from cometnb._core import edit_inputs as _sources
from cometnb._core import settings as _settings
from cometnb._core.billing import BillingRisk
from cometnb._core.byte_limits import ByteLimits
from cometnb._core.errors import (
    AuthenticationError,
    CancelledError,
    CometError,
    ValidationError,
    redact,
)
from cometnb._core.generations import ClientEvent, Generation, ImageRequest
from cometnb._core.model_registry import NO_INPUT_IMAGE, get_edit_caps
from cometnb._core.protocols import HistorySink, OnEvent, OnPartial
from cometnb._core.secret import MIN_KEY_CHARS, Secret, mask
from cometnb._core.validation import check_no_key, check_stored
from cometnb._storage.batches import BatchStore
from cometnb._storage.folder import History
from cometnb._storage.folder import history as active_history

__all__ = ["HistoryArg", "OnEvent", "OnPartial", "OnResult", "RequestLike"]

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
        self, body: dict[str, Any], on_partial: OnPartial | None, on_event: OnEvent | None
    ) -> RequestSteps:
        """The I/O steps of one request, from the first attempt to its result."""
        key = self._require_key()
        return request_steps(body, key, self.policy, on_partial, on_event, self.pacer)

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
