"""What :class:`Client` and :class:`AsyncClient` share: everything but I/O.

:class:`_BaseClient` holds the configuration (base URL, timeouts, retry policy), resolves and
checks the key, builds and validates requests, builds the httpx requests and headers, maps
answers to results or failures (:mod:`~cometnb._client.response`) and stores outcomes in the
history. The exchange itself — retries and downloads — is
:func:`cometnb._client.steps.request_steps`, a generator of I/O steps each client performs its
own way (:meth:`_BaseClient._steps` starts it).
"""

from __future__ import annotations

import functools
import logging
import random
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import httpx

from cometnb._client import logsafe as _logsafe
from cometnb._client.pacing import Pacer
from cometnb._client.response import (
    KEY_HINT,
    failure_from_exception,
    failure_from_status,
    parse_result,
)
from cometnb._client.retry import Failure, RetryPolicy
from cometnb._client.steps import Attempt, RequestSteps, Send, StreamReader, notify, request_steps
from cometnb._core import settings as _settings
from cometnb._core.errors import (
    AuthenticationError,
    CancelledError,
    CometError,
    ResponseError,
    ValidationError,
    register_secret,
)
from cometnb._core.models import ApiResult, ClientEvent, GeneratedImage, Generation, ImageRequest
from cometnb._core.protocols import HistorySink, OnEvent, OnPartial
from cometnb._storage.folder import history as active_history
from cometnb._version import __version__

__all__ = ["HistoryArg", "OnEvent", "OnPartial", "OnResult", "RequestLike", "shared_ssl_context"]

log = logging.getLogger("cometnb")

OnResult = Callable[[int, Generation], None]
RequestLike = ImageRequest | Mapping[str, Any]
HistoryArg = HistorySink | Literal[False] | None

SIMULATOR_HEADER = "x-cometnb-simulator"
USER_AGENT = f"cometnb/{__version__}"
# Printable ASCII without spaces: what a bearer token in a header may hold.
_HEADER_SAFE_KEY = re.compile(r"[\x21-\x7e]+")
CANCELLED_MESSAGE = "Cancelled before the result arrived (a request already sent may be billed)."


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every client in the process.

    Building one loads the CA bundle (~25 ms), and the magic makes a client per cell; an
    ``SSLContext`` may be shared by many connections and threads.
    """
    return httpx.create_ssl_context()


def _mask(key: str | None) -> str | None:
    """``sk-cometnb-…a1e0`` → ``sk-…e0``: enough to tell keys apart, useless to an attacker."""
    if not key:
        return None
    return f"{key[:3]}…{key[-2:]}" if len(key) >= 12 else "…"


class _BaseClient:
    """Request building, policy, parsing and storage shared by both clients (no I/O)."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float | None,
        max_retries: int | None,
        *,
        history: HistoryArg,
        retry_billed: bool,
        rng: random.Random | None,
    ) -> None:
        settings = _settings.active()
        register_secret(api_key)
        _logsafe.install()
        self._api_key = api_key or None
        self.base_url = _settings.resolve_base_url(base_url)
        url = httpx.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValidationError(
                f"base_url must be an http(s) URL such as {_settings.DEFAULT_BASE_URL}; "
                f"got {self.base_url!r}",
                field="base_url",
            )
        self.host = url.host
        self.timeout = float(settings.timeout if timeout is None else timeout)
        self.connect_timeout = float(min(settings.connect_timeout, self.timeout))
        self.max_retries = int(settings.max_retries if max_retries is None else max_retries)
        self.retry_billed = retry_billed
        self.policy = RetryPolicy(
            max_retries=self.max_retries, retry_billed=retry_billed, rng=rng or random.Random()
        )
        self._history_arg = history
        # Sends at the server's rate limit once one shows (headers or 429s); None: unpaced.
        self.pacer: Pacer | None = Pacer()

    # -- configuration ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return _settings.generations_url(self.base_url)

    @property
    def _timeouts(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _require_key(self) -> str:
        key = (_settings.resolve_api_key(self._api_key) or "").strip()
        if not key:
            raise AuthenticationError("No CometAPI key is configured.", hint=KEY_HINT)
        register_secret(key)
        if not _HEADER_SAFE_KEY.fullmatch(key):
            # httpx would fail while writing the header and quote the key in its error text.
            raise AuthenticationError(
                "The API key contains a space, line break or non-ASCII character, which an "
                "HTTP header cannot carry; nothing was sent.",
                hint="Copy the key again (only the key) and " + KEY_HINT[0].lower() + KEY_HINT[1:],
            )
        return key

    def _headers(self, key: str, stream: bool) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {key}",
            "User-Agent": USER_AGENT,
            "Accept": "text/event-stream, application/json" if stream else "application/json",
        }

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
        key = _mask(_settings.resolve_api_key(self._api_key))
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key!r})"

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

    def _prepare(self, request: ImageRequest) -> dict[str, Any]:
        return request.validate().to_body()

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

    def _http_request(
        self, client: httpx.Client | httpx.AsyncClient, body: dict[str, Any], key: str
    ) -> httpx.Request:
        log.debug("cometnb: POST %s", self.endpoint)
        stream = bool(body.get("stream"))
        return client.build_request(
            "POST",
            self.endpoint,
            json=body,
            headers=self._headers(key, stream),
            timeout=self._timeouts,
        )

    # -- responses -------------------------------------------------------------------

    def _status_failure(self, response: httpx.Response) -> Failure:
        return failure_from_status(
            response.status_code, response.headers, response.content, self.host
        )

    def _transport_failure(self, exc: httpx.RequestError) -> Failure:
        return failure_from_exception(exc, self.host, self.timeout)

    @staticmethod
    def _is_sse(response: httpx.Response, body: dict[str, Any]) -> bool:
        ctype = response.headers.get("content-type", "").lower()
        # A server that ignores stream=true answers plain JSON: parse that as a normal result.
        return "event-stream" in ctype or (bool(body.get("stream")) and not ctype)

    def _download_error(self, url: str, why: str) -> ResponseError:
        host = httpx.URL(url).host or "the image host"
        return ResponseError(
            f"Could not download the generated image from {host}: {why}.",
            hint="Image URLs expire (about 60 minutes); the generation was billed, so run it "
            "again only if you need the image.",
        )

    def _check_download(self, url: str) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ResponseError(
                f"The server returned an image URL that is not http(s) or has no host: {url!r}"
            )

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

    def _complete_answer(self, response: httpx.Response) -> Attempt:
        """A fully read, non-streamed answer: the parsed result or the failure it means."""
        if not response.is_success:
            return self._status_failure(response)
        return parse_result(response.content, self.host), _is_synthetic(response)

    def _stream_reader(self, step: Send) -> StreamReader:
        return StreamReader(self.host, step.on_partial, step.on_event)

    def _download_request(
        self, client: httpx.Client | httpx.AsyncClient, url: str
    ) -> httpx.Request:
        # The URL is on another host: sent without the Authorization header.
        self._check_download(url)
        return client.build_request("GET", url, headers={"User-Agent": USER_AGENT})

    def _downloaded(self, url: str, response: httpx.Response) -> bytes:
        if not response.is_success:
            raise self._download_error(url, f"HTTP {response.status_code}")
        return response.content

    # -- storage (blocking: the async client runs these in a worker thread) ------------

    def _store(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        result: ApiResult,
        elapsed_s: float,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        images: list[GeneratedImage]
        record_id = None
        if history is None:
            images = [
                GeneratedImage(None, i.format, i.width, i.height, i.revised_prompt, data=i.data)
                for i in result.images
            ]
        else:
            record = history.record_success(
                body, result, elapsed_s=elapsed_s, tags=tags, origin=origin
            )
            images, record_id = list(record.images), record.id
        return Generation(
            request=body,
            images=images,
            usage=result.usage,
            created=result.created,
            elapsed_s=elapsed_s,
            record_id=record_id,
            meta=dict(result.meta),
            synthetic=result.synthetic,
        )

    def _record_failure(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        error: CometError,
        elapsed_s: float,
        tags: tuple[str, ...],
        origin: str | None,
        status: Literal["error", "cancelled"] = "error",
    ) -> Generation:
        record_id = None
        if history is not None:
            try:
                record = history.record_failure(
                    body, error, elapsed_s=elapsed_s, tags=tags, origin=origin, status=status
                )
                record_id = error.record_id = record.id
            except Exception:  # the original error matters more than its record
                log.exception("cometnb: could not record a failed request in the history")
        return Generation(
            request=body, elapsed_s=elapsed_s, record_id=record_id, error=error, status=status
        )


def _is_synthetic(response: httpx.Response) -> bool:
    return bool(response.headers.get(SIMULATOR_HEADER) == "1")


def _cancelled() -> CancelledError:
    return CancelledError(CANCELLED_MESSAGE)
