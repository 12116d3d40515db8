"""The asyncio CometAPI image client, :class:`AsyncClient`.

It performs the I/O steps of :func:`cometnb._client.steps.request_steps` by awaiting, and runs
the blocking history writes in a worker thread; all else is shared with
:class:`~cometnb._client.sync_client.Client` through :class:`~cometnb._client.base._BaseClient`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, cast

import httpx

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
from cometnb._client.limiter import AdaptiveLimit
from cometnb._client.steps import Attempt, Download, Send, Step, notify
from cometnb._core.errors import CometError
from cometnb._core.models import ApiResult, ClientEvent, Generation, ImageRequest
from cometnb._core.protocols import HistorySink

__all__ = ["AsyncClient"]


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
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self._timeouts, verify=shared_ssl_context()
        )

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
        history = await self._open_history()
        gen = await self._outcome(history, body, on_partial, on_event, tuple(tags), origin)
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
        history = await self._open_history()  # once, not once per request

        async def one(index: int, body: dict[str, Any]) -> Generation:
            async with limit.slot() as slot:
                gen = await self._outcome(history, body, None, slot.follow, tags, None)
            notify(on_result, index, gen)
            return gen

        return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))

    async def _open_history(self) -> HistorySink | None:
        """The history results go to, opened before anything is sent."""
        if self._history_arg is None:
            # The active history: opening a folder the first time touches the disk.
            return await asyncio.to_thread(self._writable_history)
        # Given (or False): a stat call, no thread, whose queue may be busy storing.
        return self._writable_history()

    async def _outcome(
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
        notify(on_event, ClientEvent("storing"))
        elapsed = time.monotonic() - start
        return await asyncio.to_thread(self._store, history, body, result, elapsed, tags, origin)

    async def _obtain(
        self, body: dict[str, Any], on_partial: OnPartial | None, on_event: OnEvent | None
    ) -> ApiResult:
        steps = self._steps(body, on_partial, on_event)
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
        try:
            request = self._http_request(self._http, step.body, step.key)
            response = await self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            return self._transport_failure(exc)
        try:
            if not response.is_success or not self._is_sse(response, step.body):
                await response.aread()
                self._received(step, response)
                return self._complete_answer(response)
            reader = self._stream_reader(step)
            async for line in response.aiter_lines():
                if reader.feed(line):
                    break
            self._received(step, response)
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
