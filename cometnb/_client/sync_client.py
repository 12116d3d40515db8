"""The synchronous CometAPI image client, :class:`Client` (blocking).

It performs the I/O steps of :func:`cometnb._client.exchange.request_steps` by blocking; all
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
    storing_failure,
    unexpected,
)
from cometnb._client.exchange import Attempt, Download, Send, Step, notify
from cometnb._client.http import (
    Http,
    download,
    drop_library_frames,
    error_budget,
    lines,
    read_body,
    result_budget,
    stream_budget,
)
from cometnb._client.in_flight import InFlight
from cometnb._client.loop import loop_thread
from cometnb._client.runner import not_sent, open_gate
from cometnb._core.budget import SpendGuard
from cometnb._core.byte_limits import ByteLimits
from cometnb._core.errors import CometError, ResponseError
from cometnb._core.generations import ApiResult, ClientEvent, Generation, ImageRequest
from cometnb._core.protocols import HistorySink
from cometnb._core.secret import Secret

__all__ = ["Client"]


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
