"""The asyncio CometAPI image client, :class:`AsyncClient`.

It performs the I/O steps of :func:`cometnb._client.exchange.request_steps` by awaiting, and runs
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
    SentWatch,
    _BaseClient,
    _cancelled,
    _is_synthetic,
    storing_failure,
    unexpected,
)
from cometnb._client.exchange import Attempt, Download, Send, Step, notify
from cometnb._client.http import (
    AsyncHttp,
    adownload,
    alines,
    aread_body,
    drop_library_frames,
    error_budget,
    result_budget,
    stream_budget,
)
from cometnb._client.in_flight import InFlight
from cometnb._client.runner import AdaptiveLimit, not_sent, open_gate
from cometnb._core.budget import SpendGuard
from cometnb._core.byte_limits import ByteLimits
from cometnb._core.errors import CometError, ResponseError
from cometnb._core.generations import ApiResult, ClientEvent, Generation, ImageRequest
from cometnb._core.protocols import HistorySink
from cometnb._core.secret import Secret

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
        checked: bool = False,
    ) -> Generation:
        """Send a prepared :class:`ImageRequest` (validated first); raise on failure.

        Refused (:class:`~cometnb.BudgetError`, nothing sent) when its estimate is more than
        ``CometImg.budget`` has left, or its cost is unknown while a budget is set.
        ``checked``: the caller validated the request and checked the history is writable
        (the grid runner for a ``%%cometimg`` cell), so neither is done again.
        """
        body = self._prepare(request, validated=checked)
        stored = self._stored_fields(tags, origin)
        gate = open_gate([body])
        history = self._history() if checked else await self._open_history()
        gen = await self._gated(gate, history, body, on_partial, on_event, stored, origin)
        return gen.raise_for_error()

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
        limit = AdaptiveLimit(concurrency, many=len(bodies) > 1)
        history = await self._open_history()  # once, not once per request

        async def one(index: int, body: dict[str, Any]) -> Generation:
            async with limit.slot() as slot:

                def follow(event: ClientEvent) -> None:
                    # Under a budget the slot is kept until this request's cost is known, so
                    # the next one is admitted against what this one actually cost.
                    if gate is None or event.kind != "received":
                        slot.follow(event)

                gen = await self._gated(gate, history, body, None, follow, tags, None)
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
        """:meth:`_outcome` once the budget admits the request (when a budget is set)."""
        if gate is None:
            return await self._outcome(history, body, on_partial, on_event, tags, origin)
        refused = gate.before_send(body)
        if refused is not None:
            return not_sent(body, refused)
        gen = None
        try:
            gen = await self._outcome(history, body, on_partial, on_event, tags, origin)
            return gen
        finally:  # also on a cancel: the reservation must not outlive the request
            gate.after(body, gen.cost if gen is not None else None)

    async def _outcome(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        marks = InFlight(self._in_flight, history, origin)
        try:
            follow = marks.follow(body, on_event)
            return await self._tracked(history, body, on_partial, follow, tags, origin)
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
    ) -> Generation:
        start = time.monotonic()
        watch = SentWatch(on_event)  # a cancel before the first POST is not billed
        try:
            if history is not None and self._store_failed:
                # A result of this run could not be stored: is there room for this one?
                await asyncio.to_thread(history.check_writable)
            result = await self._obtain(body, on_partial, watch)
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
