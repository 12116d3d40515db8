"""The CometAPI image client: :class:`Client` (sync) and :class:`AsyncClient` (asyncio).

As in httpx, one base class holds everything that is not I/O — request building, headers, the
retry policy, error mapping, response and stream parsing, storage — and the two clients differ
only in how they send, read, sleep and run the blocking history writes.

Flow of one request: validate (nothing is sent for a request the model cannot take) → resolve
the key → POST with billing-aware retries (``_retry``) → parse JSON or SSE (``_response``,
``_sse``) → decode base64 / download URLs at once → store in the history → :class:`Generation`.
Every failure after validation is recorded in the history before it is raised.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, cast

import httpx

from . import _logsafe, _settings
from ._decode import decode_b64_image, inspect_image
from ._errors import (
    AuthenticationError,
    CancelledError,
    CometError,
    ResponseError,
    ValidationError,
    register_secret,
)
from ._limiter import AdaptiveLimit
from ._loop import loop_thread
from ._models import ApiImage, ApiResult, ClientEvent, GeneratedImage, Generation, ImageRequest
from ._response import (
    KEY_HINT,
    ParsedResponse,
    failure_from_exception,
    failure_from_status,
    parse_result,
)
from ._retry import Failure, RetryPolicy
from ._sse import SSEDecoder, SSEEvent, StreamAssembler
from ._version import __version__

__all__ = ["AsyncClient", "Client", "OnEvent", "OnPartial", "OnResult"]

log = logging.getLogger("cometnb")

OnPartial = Callable[[int, bytes], None]
OnEvent = Callable[[ClientEvent], None]
OnResult = Callable[[int, Generation], None]
RequestLike = ImageRequest | Mapping[str, Any]

SIMULATOR_HEADER = "x-cometnb-simulator"
USER_AGENT = f"cometnb/{__version__}"
# Printable ASCII without spaces: what a bearer token in a header may hold.
_HEADER_SAFE_KEY = re.compile(r"[\x21-\x7e]+")
CANCELLED_MESSAGE = "Cancelled before the result arrived (a request already sent may be billed)."


class _RecordLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def images(self) -> list[GeneratedImage]: ...


class _HistoryLike(Protocol):
    """What the client needs from ``cometnb.history.History``."""

    def record_success(
        self,
        request: dict[str, Any],
        result: ApiResult,
        *,
        elapsed_s: float,
        tags: tuple[str, ...] = ...,
        origin: str | None = ...,
    ) -> _RecordLike: ...

    def record_failure(
        self,
        request: dict[str, Any],
        error: CometError,
        *,
        elapsed_s: float,
        tags: tuple[str, ...] = ...,
        origin: str | None = ...,
        status: Literal["error", "cancelled"] = ...,
    ) -> _RecordLike: ...


HistoryArg = _HistoryLike | Literal[False] | None


@dataclass(frozen=True)
class _Send:
    """I/O step: POST ``body`` once; the answer is ``(ParsedResponse, synthetic)`` or a Failure."""

    body: dict[str, Any]
    key: str
    on_partial: OnPartial | None
    on_event: OnEvent | None


@dataclass(frozen=True)
class _Download:
    """I/O step: GET an image URL; the answer is its bytes."""

    url: str


@dataclass(frozen=True)
class _Sleep:
    """I/O step: wait before the next attempt."""

    seconds: float


_Step = _Send | _Download | _Sleep
_Attempt = tuple[ParsedResponse, bool] | Failure
_Plan = Generator[_Step, Any, ApiResult]


def _mask(key: str | None) -> str | None:
    """``sk-cometnb-…a1e0`` → ``sk-…e0``: enough to tell keys apart, useless to an attacker."""
    if not key:
        return None
    return f"{key[:3]}…{key[-2:]}" if len(key) >= 12 else "…"


def _notify(callback: Callable[..., None] | None, *args: Any) -> None:
    """Call a user callback; a broken display callback must not lose a billed image."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        log.exception("cometnb: a progress callback raised; ignoring it")


class _StreamReader:
    """Feeds SSE lines to the assembler and reports partial images as they arrive."""

    def __init__(self, host: str, on_partial: OnPartial | None, on_event: OnEvent | None) -> None:
        self.decoder = SSEDecoder()
        self.assembler = StreamAssembler(host)
        self.on_partial, self.on_event = on_partial, on_event

    @property
    def done(self) -> bool:
        return self.assembler.done

    def feed(self, line: str) -> bool:
        """Consume one line; True once the stream said it is over (``[DONE]``)."""
        event = self.decoder.feed(line)
        if event is not None:
            self._handle(event)
        return self.done

    def _handle(self, event: SSEEvent) -> None:
        partial = self.assembler.handle(event)
        if partial is None or (self.on_partial is None and self.on_event is None):
            return
        try:
            data = decode_b64_image(partial.b64_json)
        except ResponseError:
            return  # a broken preview is not worth failing the generation for
        _notify(self.on_partial, partial.index, data)
        event_ = ClientEvent("partial", partial_index=partial.index, partial_image=data)
        _notify(self.on_event, event_)

    def finish(self) -> ParsedResponse:
        last = self.decoder.flush()
        if last is not None and not self.done:
            self._handle(last)
        return self.assembler.result()


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

    # -- configuration ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/images/generations"

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

    def _history(self) -> _HistoryLike | None:
        if self._history_arg is False:
            return None
        if self._history_arg is None:
            module = importlib.import_module("cometnb.history")
            return cast(_HistoryLike, module.history())
        return self._history_arg

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
        request = ImageRequest(prompt, model or _settings.active().model, n=n, **fields)
        explicit = {"size": size, "quality": quality}
        request = request.with_overrides(**{k: v for k, v in explicit.items() if v is not None})
        return self._with_setting_defaults(request)

    def _with_setting_defaults(self, request: ImageRequest) -> ImageRequest:
        """Add ``%config`` size/quality defaults the request lacks, when its model takes them.

        A configured default the chosen model rejects (say a gpt-image size with dall-e-3) is
        skipped rather than blamed on the user, who did not ask for it in this call.
        """
        settings = _settings.active()
        for name in ("size", "quality"):
            default = getattr(settings, name)
            if default is None or name in request.fields:
                continue
            candidate = request.with_overrides(**{name: default})
            try:
                candidate.validate()
            except ValidationError as exc:
                if exc.field == name:
                    # Visible to anyone debugging "why was my %config size not sent?".
                    log.info(
                        "cometnb: CometImg.%s=%r does not apply to %s; not sent",
                        name,
                        default,
                        request.model,
                    )
                    continue
            request = candidate
        return request

    def _request_from(self, item: object, index: int) -> ImageRequest:
        if isinstance(item, ImageRequest):
            return item
        if isinstance(item, Mapping):
            data = dict(item)
            data["model"] = data.get("model") or _settings.active().model
            return self._with_setting_defaults(ImageRequest.from_dict(data))
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

    def _next_wait(self, failure: Failure, retries: int, billed: int) -> float:
        """The wait before the next attempt, or raise the failure's error (final)."""
        decision = self.policy.decide(failure, retries, billed)
        if decision.wait_s is None:
            if decision.hint:
                failure.error.hint = decision.hint
            raise failure.error
        log.info("cometnb: %s; retrying in %.1f s", failure.reason, decision.wait_s)
        return decision.wait_s

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

    # -- the exchange, as I/O steps --------------------------------------------------

    def _plan(
        self, body: dict[str, Any], on_partial: OnPartial | None, on_event: OnEvent | None
    ) -> _Plan:
        """One request from key to result, yielding each I/O step for the client to perform.

        The retry loop and the downloads exist once, here; :class:`Client` performs the steps
        by blocking and :class:`AsyncClient` by awaiting (a sans-I/O generator, as in h11).
        """
        key = self._require_key()
        retries = billed = 0
        while True:
            _notify(on_event, ClientEvent("sending", attempt=retries + 1))
            outcome = yield _Send(body, key, on_partial, on_event)
            if not isinstance(outcome, Failure):
                parsed, synthetic = outcome
                images = yield from self._fetch_images(parsed, on_event)
                return _result(parsed, images, synthetic)
            wait = self._next_wait(outcome, retries, billed)
            retries, billed = retries + 1, billed + (outcome.safety == "billed")
            _notify(on_event, ClientEvent("waiting", retries + 1, wait, outcome.reason))
            yield _Sleep(wait)

    def _fetch_images(
        self, parsed: ParsedResponse, on_event: OnEvent | None
    ) -> Generator[_Step, Any, list[ApiImage]]:
        """Decode base64 results; download URL results at once (they expire)."""
        images = []
        for item in parsed.items:
            if item.b64_json is not None:
                images.append(_api_image(decode_b64_image(item.b64_json), item.revised_prompt))
                continue
            assert item.url is not None
            _notify(on_event, ClientEvent("downloading"))
            data = yield _Download(item.url)
            images.append(_api_image(data, item.revised_prompt))
        return images

    def _complete_answer(self, response: httpx.Response) -> _Attempt:
        """A fully read, non-streamed answer: the parsed result or the failure it means."""
        if not response.is_success:
            return self._status_failure(response)
        return parse_result(response.content, self.host), _is_synthetic(response)

    def _stream_reader(self, step: _Send) -> _StreamReader:
        return _StreamReader(self.host, step.on_partial, step.on_event)

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
        history: _HistoryLike | None,
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
        history: _HistoryLike | None,
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
                record_id = record.id
            except Exception:  # the original error matters more than its record
                log.exception("cometnb: could not record a failed request in the history")
        return Generation(
            request=body, elapsed_s=elapsed_s, record_id=record_id, error=error, status=status
        )


def _api_image(data: bytes, revised_prompt: str | None) -> ApiImage:
    fmt, width, height = inspect_image(data)
    return ApiImage(data, fmt, width, height, revised_prompt)


def _result(parsed: ParsedResponse, images: list[ApiImage], synthetic: bool) -> ApiResult:
    return ApiResult(images, parsed.created, parsed.usage, dict(parsed.meta), synthetic)


def _is_synthetic(response: httpx.Response) -> bool:
    return bool(response.headers.get(SIMULATOR_HEADER) == "1")


def _cancelled() -> CancelledError:
    return CancelledError(CANCELLED_MESSAGE)


class Client(_BaseClient):
    """Synchronous client (plain httpx: works inside Jupyter's running loop and in scripts).

    Example::

        >>> with Client(api_key="sk-…") as c:  # doctest: +SKIP
        ...     gen = c.generate("a lighthouse at dusk", model="gpt-image-1-mini")
        >>> gen.image.path  # doctest: +SKIP
        PosixPath('cometnb-history/images/20261122-101500-3f2a-0.png')

    ``history=False`` keeps images in memory instead of the history folder; ``transport`` is an
    httpx transport (tests pass ``httpx.MockTransport``); ``sleep`` replaces ``time.sleep``
    between retries; ``retry_billed=True`` allows one retry of failures that may have been
    billed (read timeouts, 5xx other than 503).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        history: HistoryArg = None,
        retry_billed: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout,
            max_retries,
            history=history,
            retry_billed=retry_billed,
            rng=rng,
        )
        self._transport = transport
        self._sleep = sleep or time.sleep
        # Redirects are not followed: a 301 on the POST means a wrong base_url.
        self._http = httpx.Client(transport=transport, timeout=self._timeouts)

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

    def run(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
    ) -> Generation:
        """Send a prepared :class:`ImageRequest` (validated first); raise on failure."""
        gen = self._outcome(self._prepare(request), on_partial, on_event, tuple(tags), origin)
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

        Every request is validated before anything is sent. ``on_result(index, generation)``
        is called (from the private loop thread) as each finishes.
        """
        bodies = self._prepare_many(requests)
        return loop_thread().run(self._many_on_twin(bodies, concurrency, tuple(tags), on_result))

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
        )
        twin.connect_timeout = self.connect_timeout
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

    def _outcome(
        self,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        history = self._history()
        start = time.monotonic()
        try:
            result = self._obtain(body, on_partial, on_event)
        except CometError as error:
            elapsed = time.monotonic() - start
            return self._record_failure(history, body, error, elapsed, tags, origin)
        except KeyboardInterrupt:
            elapsed = time.monotonic() - start
            self._record_failure(history, body, _cancelled(), elapsed, tags, origin, "cancelled")
            raise
        _notify(on_event, ClientEvent("storing"))
        return self._store(history, body, result, time.monotonic() - start, tags, origin)

    def _obtain(
        self, body: dict[str, Any], on_partial: OnPartial | None, on_event: OnEvent | None
    ) -> ApiResult:
        plan = self._plan(body, on_partial, on_event)
        answer: Any = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as finished:
                return cast(ApiResult, finished.value)
            answer = self._perform(step)

    def _perform(self, step: _Step) -> Any:
        if isinstance(step, _Send):
            return self._attempt(step)
        if isinstance(step, _Download):
            return self._download(step.url)
        self._sleep(step.seconds)
        return None

    def _attempt(self, step: _Send) -> _Attempt:
        try:
            request = self._http_request(self._http, step.body, step.key)
            response = self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        try:
            if not response.is_success or not self._is_sse(response, step.body):
                response.read()
                return self._complete_answer(response)
            reader = self._stream_reader(step)
            for line in response.iter_lines():
                if reader.feed(line):
                    break
            return reader.finish(), _is_synthetic(response)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        finally:
            response.close()

    def _download(self, url: str) -> bytes:
        request = self._download_request(self._http, url)
        try:
            response = self._http.send(request, follow_redirects=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._download_error(url, type(exc).__name__) from None
        return self._downloaded(url, response)


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
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        history: HistoryArg = None,
        retry_billed: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout,
            max_retries,
            history=history,
            retry_billed=retry_billed,
            rng=rng,
        )
        self._sleep = sleep or asyncio.sleep
        self._http = httpx.AsyncClient(transport=transport, timeout=self._timeouts)

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

    async def run(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = None,
        on_event: OnEvent | None = None,
        tags: Sequence[str] = (),
        origin: str | None = None,
    ) -> Generation:
        """Send a prepared :class:`ImageRequest` (validated first); raise on failure."""
        body = self._prepare(request)
        gen = await self._outcome(body, on_partial, on_event, tuple(tags), origin)
        return gen.raise_for_error()

    agenerate = generate
    arun = run

    async def generate_many(
        self,
        requests: Iterable[RequestLike],
        concurrency: int = 4,
        *,
        tags: Sequence[str] = (),
        on_result: OnResult | None = None,
    ) -> list[Generation]:
        """Run many requests concurrently; results in input order, failures not raised."""
        bodies = self._prepare_many(requests)
        return await self._many(bodies, concurrency, tuple(tags), on_result)

    async def aclose(self) -> None:
        await self._http.aclose()

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
        limit = AdaptiveLimit(concurrency)

        def on_event(event: ClientEvent) -> None:
            if event.kind == "waiting" and event.reason == "HTTP 429":
                limit.throttle()  # the server is saturated: start fewer requests for a while

        async def one(index: int, body: dict[str, Any]) -> Generation:
            async with limit:
                gen = await self._outcome(body, None, on_event, tags, None)
            _notify(on_result, index, gen)
            return gen

        return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))

    async def _outcome(
        self,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        history = await asyncio.to_thread(self._history)
        start = time.monotonic()
        try:
            result = await self._obtain(body, on_partial, on_event)
        except CometError as error:
            elapsed = time.monotonic() - start
            return await asyncio.to_thread(
                self._record_failure, history, body, error, elapsed, tags, origin
            )
        except asyncio.CancelledError:
            elapsed = time.monotonic() - start
            record = asyncio.to_thread(
                self._record_failure,
                history,
                body,
                _cancelled(),
                elapsed,
                tags,
                origin,
                "cancelled",
            )
            await asyncio.shield(record)  # a second cancel must not lose the record
            raise
        _notify(on_event, ClientEvent("storing"))
        elapsed = time.monotonic() - start
        return await asyncio.to_thread(self._store, history, body, result, elapsed, tags, origin)

    async def _obtain(
        self, body: dict[str, Any], on_partial: OnPartial | None, on_event: OnEvent | None
    ) -> ApiResult:
        plan = self._plan(body, on_partial, on_event)
        answer: Any = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as finished:
                return cast(ApiResult, finished.value)
            answer = await self._perform(step)

    async def _perform(self, step: _Step) -> Any:
        if isinstance(step, _Send):
            return await self._attempt(step)
        if isinstance(step, _Download):
            return await self._download(step.url)
        await self._sleep(step.seconds)
        return None

    async def _attempt(self, step: _Send) -> _Attempt:
        try:
            request = self._http_request(self._http, step.body, step.key)
            response = await self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        try:
            if not response.is_success or not self._is_sse(response, step.body):
                await response.aread()
                return self._complete_answer(response)
            reader = self._stream_reader(step)
            async for line in response.aiter_lines():
                if reader.feed(line):
                    break
            return reader.finish(), _is_synthetic(response)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        finally:
            await response.aclose()

    async def _download(self, url: str) -> bytes:
        request = self._download_request(self._http, url)
        try:
            response = await self._http.send(request, follow_redirects=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._download_error(url, type(exc).__name__) from None
        return self._downloaded(url, response)
