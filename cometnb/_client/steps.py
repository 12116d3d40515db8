"""The exchange of one request as I/O steps, without doing any I/O (sans-I/O, as in h11).

:func:`request_steps` is a generator: it yields a :class:`Send` (POST the body once), a
:class:`Download` (GET an image URL) or a :class:`Sleep` (wait before a retry), and receives
the outcome of each step back through ``send()``. The retry loop, the billing-aware retry
decisions and the image downloads exist once, here; :class:`~cometnb._client.sync_client.Client`
performs the steps by blocking and :class:`~cometnb._client.async_client.AsyncClient` by
awaiting. :class:`StreamReader` turns the lines of an SSE answer into a parsed response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from cometnb._client.http import CappedSSEDecoder
from cometnb._client.response import ParsedResponse
from cometnb._client.retry import RATE_LIMITED_REASON, Failure, RetryPolicy
from cometnb._client.runner import (
    IN_A_RUN,
    MAX_STALLS,
    RATE_LIMIT_REASON,
    Pacer,
    RateLimits,
    Ticket,
)
from cometnb._client.sse import SSEEvent, StreamAssembler
from cometnb._core.billing import BillingRisk, final_risk
from cometnb._core.byte_limits import DEFAULT_LIMITS, ByteLimits
from cometnb._core.errors import CometError, NotSent, RateLimitError, ResponseError, redact
from cometnb._core.generations import ApiImage, ApiResult, ClientEvent
from cometnb._core.images import decode_b64_image, inspect_image
from cometnb._core.protocols import OnEvent, OnPartial
from cometnb._core.secret import Secret

__all__ = [
    "Attempt",
    "Download",
    "RequestSteps",
    "Send",
    "Sleep",
    "Step",
    "StreamReader",
    "notify",
    "request_steps",
]

log = logging.getLogger("cometnb")


@dataclass(frozen=True)
class Send:
    """I/O step: POST ``body`` once; the answer is an :data:`Attempt`.

    ``key`` is a :class:`Secret`, so this step's repr (in any traceback) never shows it.
    """

    body: dict[str, Any]
    key: Secret
    on_partial: OnPartial | None
    on_event: OnEvent | None
    ticket: Ticket | None = None  # the pacer's turn; the answer's rate-limit headers go here

    def note_headers(self, headers: Any) -> None:
        """Keep the answer's rate-limit headers for the pacer (the I/O side calls this)."""
        if self.ticket is not None:
            self.ticket.limits = RateLimits.from_headers(headers)


@dataclass(frozen=True)
class Download:
    """I/O step: GET an image URL; the answer is its bytes."""

    url: str


@dataclass(frozen=True)
class Sleep:
    """I/O step: wait before the next attempt; the answer is ``None``."""

    seconds: float


Step = Send | Download | Sleep
# What performing a Send gives back: the parsed answer and whether the simulator made it, or
# the Failure it ended in.
Attempt = tuple[ParsedResponse, bool] | Failure
RequestSteps = Generator[Step, Any, ApiResult]


def notify(
    callback: Callable[..., None] | None,
    *args: Any,
    lets_through: tuple[type[Exception], ...] = (),
) -> None:
    """Call a user callback; a broken display callback must not lose a billed image.

    ``lets_through``: errors the callback may raise on purpose (only the ``"sending"`` event
    lets :class:`NotSent` through: it comes before a byte of the request leaves).
    """
    if callback is None:
        return
    try:
        callback(*args)
    except lets_through:
        raise
    except Exception:
        log.exception("cometnb: a progress callback raised; ignoring it")


def request_steps(
    body: dict[str, Any],
    key: Secret,
    policy: RetryPolicy,
    on_partial: OnPartial | None,
    on_event: OnEvent | None,
    pacer: Pacer | None = None,
) -> RequestSteps:
    """One request from the first attempt to its result, yielding each I/O step to perform.

    Every attempt waits for its turn under ``pacer`` (the server's rate limit) first, and
    tells it how the attempt went. Returns the :class:`ApiResult` (through ``StopIteration``)
    or raises the final error.
    """
    retries = billed = 0
    while True:
        patience = _Patience(pacer, policy.rate_limit_patience_s, billed)
        ticket = None if pacer is None else (yield from _turn(pacer, on_event, patience))
        # Right before the POST, nothing awaited in between: a batch commits "in flight" here.
        try:
            sending = ClientEvent("sending", attempt=retries + 1)
            notify(on_event, sending, lets_through=(NotSent,))
        except NotSent as held:
            if pacer is not None:
                pacer.settle(ticket, limited=False)
            held.billing = final_risk(BillingRisk.NOT_SENT, billed)  # an earlier one may be
            raise
        outcome = yield Send(body, key, on_partial, on_event, ticket)
        if pacer is not None:
            _settle(pacer, ticket, outcome)
        if not isinstance(outcome, Failure):
            parsed, synthetic = outcome
            try:
                _check_count(parsed, body)  # before decoding any of them
                images = yield from _fetch_images(parsed, on_event)
            except CometError as error:
                # Answered, so billed: however its images turned out unusable.
                error.billing = error.billing or BillingRisk.ANSWERED_UNUSABLE
                raise
            # What the server sent is shown live (captions): never with a key it echoed.
            usage, meta = _redacted(parsed.usage), _redacted(dict(parsed.meta))
            return ApiResult(images, parsed.created, usage, meta or {}, synthetic)
        patient = pacer is not None and IN_A_RUN.get()
        wait = _next_wait(policy, outcome, retries, billed, patient=patient)
        retries, billed = retries + 1, billed + outcome.risk.may_be_billed
        _Patience(pacer, policy.rate_limit_patience_s, billed).check(wait)
        why = outcome.reason
        notify(on_event, ClientEvent("waiting", retries + 1, wait, why, may_be_billed=billed > 0))
        yield Sleep(wait)


@dataclass(frozen=True)
class _Patience:
    """How long a request waits through a storm of rate-limit 429s before giving up."""

    pacer: Pacer | None
    limit_s: float
    billed: int

    def check(self, wait: float) -> None:
        """Raise the final :class:`RateLimitError` when waiting ``wait`` more would go past."""
        storm = 0.0 if self.pacer is None else self.pacer.storm_s()
        if storm == 0.0 or storm + wait <= self.limit_s:
            return
        billed = (
            "an earlier attempt of it may have been billed"
            if self.billed
            else "it was never billed (the server refused it before any work)"
        )
        error = RateLimitError(
            f"Gave up: the server has answered only 'rate limited' (HTTP 429) for "
            f"{storm / 60:.0f} min; this request was not sent again.",
            status=429,
            hint=f"Nothing more was sent; {billed}. Wait a few minutes, or lower the "
            "concurrency, and run it again.",
        )
        error.billing = final_risk(BillingRisk.RATE_LIMITED, self.billed)
        raise error


def _turn(
    pacer: Pacer, on_event: OnEvent | None, patience: _Patience
) -> Generator[Step, Any, Ticket]:
    """Wait (as Sleep steps) until the pacer lets this attempt go; say so once."""
    waited, stalls = False, 0
    try:
        while True:
            turn = pacer.next_send(waited=waited, force=stalls >= MAX_STALLS)
            if turn.ticket is not None:
                waited = False
                return turn.ticket
            patience.check(turn.wait_s)
            if not waited:
                notify(on_event, ClientEvent("waiting", 1, turn.wait_s, RATE_LIMIT_REASON))
            waited = True
            before = pacer.now()
            yield Sleep(turn.wait_s)
            stalls += pacer.now() - before < turn.wait_s / 2  # an injected sleep did not wait
    finally:
        pacer.give_up(waited)  # cancelled while waiting: no longer counted as waiting


def _settle(pacer: Pacer, ticket: Ticket | None, outcome: Attempt) -> None:
    """Tell the pacer what the attempt met: a rate-limit 429 (not a spent quota) or not."""
    if isinstance(outcome, Failure):
        limited = outcome.reason == RATE_LIMITED_REASON and outcome.safety == "safe"
        pacer.settle(ticket, limited=limited, retry_after=outcome.retry_after)
    else:
        pacer.settle(ticket, limited=False)


def _next_wait(
    policy: RetryPolicy, failure: Failure, retries: int, billed: int, *, patient: bool
) -> float:
    """The wait before the next attempt, or raise the failure's error (final)."""
    decision = policy.decide(failure, retries, billed, patient=patient)
    if decision.wait_s is None:
        if decision.hint:
            failure.error.hint = decision.hint
        # The one place a request's final risk is set: what the ledger charges, what a batch
        # holds back and what the card says follow the same rule as what is not retried.
        failure.error.billing = final_risk(failure.risk, billed)
        raise failure.error
    log.info("cometnb: %s; retrying in %.1f s", failure.reason, decision.wait_s)
    return decision.wait_s


def _check_count(parsed: ParsedResponse, body: Mapping[str, Any]) -> None:
    """Refuse a reply holding more images than the request asked for (``n``, default 1).

    The API sends ``n`` images; a reply with 40 for ``n=1`` would cost 40 decodes and 80 files
    (a bomb made of images each under the pixel cap). It was answered, so it may be billed.
    """
    asked = body.get("n")
    expected = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else 1
    if len(parsed.items) > expected:
        error = ResponseError(
            f"The server answered with {len(parsed.items)} images for a request of "
            f"n={expected}; a reply may hold at most the images asked for, so none were kept.",
            hint="The generation may have been billed; the server misbehaved, so it was not "
            "retried.",
        )
        raise error


def _redacted(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    clean = redact(text)
    return value if clean == text else dict(json.loads(clean))


def _fetch_images(
    parsed: ParsedResponse, on_event: OnEvent | None
) -> Generator[Step, Any, list[ApiImage]]:
    """Decode base64 results; download URL results at once (they expire)."""
    images = []
    for item in parsed.items:
        if item.b64_json is not None:
            images.append(_api_image(decode_b64_image(item.b64_json), item.revised_prompt))
            continue
        assert item.url is not None
        notify(on_event, ClientEvent("downloading"))
        data = yield Download(item.url)
        images.append(_downloaded_image(data, item.url, item.revised_prompt))
    return images


def _downloaded_image(data: bytes, url: str, revised_prompt: str | None) -> ApiImage:
    """A downloaded image; the error never quotes the body (it came from an arbitrary host)."""
    try:
        return _api_image(data, revised_prompt)
    except ResponseError as exc:
        if "pixels" in exc.message:
            raise
        host = url.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1] or "the image host"
        raise ResponseError(
            f"The image downloaded from {host} is not a usable image ({len(data):,} bytes).",
            hint="The generation was billed; the image host may have failed.",
        ) from None


def _api_image(data: bytes, revised_prompt: str | None) -> ApiImage:
    fmt, width, height = inspect_image(data)
    return ApiImage(data, fmt, width, height, revised_prompt)


class StreamReader:
    """Feeds SSE lines to the assembler and reports partial images as they arrive."""

    def __init__(
        self,
        host: str,
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        limits: ByteLimits = DEFAULT_LIMITS,
    ) -> None:
        self.decoder = CappedSSEDecoder(host, limits.sse_line_bytes)
        self.assembler = StreamAssembler(host)
        self.on_partial, self.on_event = on_partial, on_event

    @property
    def done(self) -> bool:
        """True once the stream said it is over."""
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
        notify(self.on_partial, partial.index, data)
        event_ = ClientEvent("partial", partial_index=partial.index, partial_image=data)
        notify(self.on_event, event_)

    def finish(self) -> ParsedResponse:
        """The parsed response once the stream has ended (the last event may be unterminated)."""
        last = self.decoder.flush()
        if last is not None and not self.done:
            self._handle(last)
        return self.assembler.result()
