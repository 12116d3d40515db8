"""The synchronous CometAPI image client, :class:`Client` (plain httpx, blocking).

It performs the I/O steps of :func:`cometnb._client.steps.request_steps` by blocking; all
else is shared with :class:`~cometnb._client.async_client.AsyncClient` through
:class:`~cometnb._client.base._BaseClient`. ``generate_many`` and the ``a*`` methods run on an
:class:`AsyncClient` twin with the same settings.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, cast

import httpx

from cometnb._client.async_client import AsyncClient
from cometnb._client.base import (
    HistoryArg,
    OnEvent,
    OnPartial,
    OnResult,
    RequestLike,
    _BaseClient,
    _cancelled,
    _is_synthetic,
    shared_ssl_context,
)
from cometnb._client.loop import loop_thread
from cometnb._client.steps import Attempt, Download, Send, Step, notify
from cometnb._core.errors import CometError
from cometnb._core.models import ApiResult, ClientEvent, Generation, ImageRequest

__all__ = ["Client"]


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
        self._http = httpx.Client(
            transport=transport, timeout=self._timeouts, verify=shared_ssl_context()
        )

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

    def _outcome(
        self,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        history = self._writable_history()
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
        notify(on_event, ClientEvent("storing"))
        return self._store(history, body, result, time.monotonic() - start, tags, origin)

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
        try:
            request = self._http_request(self._http, step.body, step.key)
            response = self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        try:
            if not response.is_success or not self._is_sse(response, step.body):
                response.read()
                self._received(step, response)
                return self._complete_answer(response)
            reader = self._stream_reader(step)
            for line in response.iter_lines():
                if reader.feed(line):
                    break
            self._received(step, response)
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
