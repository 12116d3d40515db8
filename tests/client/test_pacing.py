"""The pacer (cometnb._client.runner): headers, AIMD on 429s, the floor, Retry-After: 0.

Driven by a fake clock against a token-bucket server model (the simulator's own bucket), so the
policy is tested without waiting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cometnb._client.exchange import Send, Sleep, request_steps
from cometnb._client.retry import RetryPolicy
from cometnb._client.runner import MAX_STALLS, Pacer, RateLimits, Ticket, parse_duration
from cometnb.sim.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drive(
    pacer: Pacer,
    server: RateLimiter,
    clock: Clock,
    *,
    requests: int,
    concurrency: int,
    latency: float,
    headers: bool,
) -> tuple[int, int, float]:
    """Send ``requests`` (each retried after a 429) through ``pacer`` to ``server``.

    A small discrete-event loop: at most ``concurrency`` in flight; a 429 answers at once and
    is retried after its Retry-After; an admitted request answers after ``latency``. Returns
    (POSTs, 429s, seconds until the last admission).
    """
    todo, in_flight, posts, refused, last_ok = requests, [], 0, 0, clock.now
    retry_at: list[float] = []
    start, step = clock.now, 0.005
    while todo or in_flight or retry_at:
        for done in [f for f in in_flight if f[0] <= clock.now]:
            in_flight.remove(done)
            pacer.settle(done[1], limited=False, limits=done[2])
        ready = [t for t in retry_at if t <= clock.now]
        while (ready or todo) and len(in_flight) + len(retry_at) - len(ready) < concurrency + 1:
            turn = pacer.next_send()
            if turn.wait_s > 0:
                break
            if ready:
                retry_at.remove(ready.pop())
            else:
                todo -= 1
            posts += 1
            answer = server.admit("sk-test", images=1)
            limits = RateLimits.from_headers(answer.headers or {}) if headers else None
            if answer.allowed:
                last_ok = clock.now
                in_flight.append((clock.now + latency, turn.ticket, limits))
            else:
                refused += 1
                pacer.settle(turn.ticket, limited=True, retry_after=1.0, limits=limits)
                retry_at.append(clock.now + float(answer.retry_after_header()))
            if len(in_flight) + len(retry_at) >= concurrency:
                break
        clock.now += step
        assert clock.now - start < 600, "the run did not finish"
    return posts, refused, last_ok - start


@pytest.mark.parametrize("headers", [True, False])
def test_paces_near_the_limit_with_few_429s(headers: bool) -> None:
    clock = Clock()
    server = RateLimiter(rpm=600, burst=10, headers=headers, clock=clock)
    pacer = Pacer(clock=clock)
    posts, refused, seconds = drive(
        pacer, server, clock, requests=100, concurrency=16, latency=0.5, headers=headers
    )
    assert posts == 100 + refused
    assert refused <= 0.1 * posts
    # 100 admissions = the burst of 10 plus 90 at 10 a second: 9 s at best.
    assert (100 - 10) / seconds >= 0.9 * 10


def test_headers_give_the_rate_before_any_429() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    ticket = pacer.next_send().ticket
    pacer.settle(ticket, limited=False, limits=RateLimits(limit=120, remaining=3))
    assert pacer.rate == pytest.approx(2.0 * 0.98)
    waits = [pacer.next_send().wait_s for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 0  # the 3 remaining go at once


def test_a_429_cuts_the_rate_once_per_round_and_never_below_the_floor() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, floor=0.5)
    tickets = [pacer.next_send().ticket for _ in range(20)]
    clock.now += 0.01
    for ticket in tickets[10:]:
        pacer.settle(ticket, limited=True)
    # 10 of 20 accepted in the last second; all 10 refusals were sent before the cut: one cut
    # from the accepted rate, not ten.
    assert pacer.rate == pytest.approx(10 * pacer.decrease)
    for _ in range(30):
        clock.now += 10
        ticket = Ticket(clock.now)
        pacer.settle(ticket, limited=True)
    assert pacer.rate == pytest.approx(0.5)


def test_retry_after_zero_and_explained_429s_do_not_cut() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.settle(pacer.next_send().ticket, limited=True, retry_after=0.0)
    assert pacer.rate is None and pacer.next_send().wait_s == 0.0
    limits = RateLimits(limit=600, remaining=0)
    pacer.settle(pacer.next_send().ticket, limited=True, retry_after=1.0, limits=limits)
    assert pacer.rate == pytest.approx(10 * 0.98)  # the header's rate, not a cut below it


def test_the_retry_after_a_cut_goes_at_once_and_pacing_relaxes_later() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, relax_s=30)
    pacer.settle(pacer.next_send().ticket, limited=True, retry_after=1.0)
    assert pacer.rate is not None
    clock.now += 1.0  # the retry slept its Retry-After
    assert pacer.next_send().wait_s == 0.0
    clock.now += 31
    pacer.next_send()
    assert pacer.rate is None


def test_waiting_counts_requests_held_back() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.settle(pacer.next_send().ticket, limited=False, limits=RateLimits(60, 0))
    assert pacer.next_send().wait_s > 0 and pacer.waiting == 1
    clock.now += 1.1
    assert pacer.next_send(waited=True).wait_s == 0.0 and pacer.waiting == 0


def _steps_until_send(pacer: Pacer, clock: Clock | None) -> tuple[list[float], object]:
    """Drive one request's steps to its first Send; sleeps advance ``clock`` (None: instant)."""
    steps = request_steps({"prompt": "p", "model": "m"}, "sk-x", RetryPolicy(), None, None, pacer)
    step, sleeps = next(steps), []
    while isinstance(step, Sleep):
        sleeps.append(step.seconds)
        if clock is not None:
            clock.now += step.seconds
        step = steps.send(None)
    return sleeps, step


def test_a_request_waits_its_turn_in_real_time_and_an_instant_sleep_cannot_spin() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.settle(pacer.next_send().ticket, limited=False, limits=RateLimits(60, 0))
    sleeps, step = _steps_until_send(pacer, clock)
    assert isinstance(step, Send) and step.ticket is not None
    assert sum(sleeps) == pytest.approx(1 / 0.98, rel=0.01)
    frozen = Pacer(clock=Clock())
    frozen.settle(frozen.next_send().ticket, limited=False, limits=RateLimits(1, 0))
    sleeps, step = _steps_until_send(frozen, None)  # the clock never moves
    assert isinstance(step, Send) and len(sleeps) == MAX_STALLS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25), ("1h2m3.5s", 3723.5), ("17", 17.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1", "1x", "nan"])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


def test_rate_limits_from_headers() -> None:
    headers = {
        "X-RateLimit-Limit-Requests": "600",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "300ms",
    }
    assert RateLimits.from_headers(headers) == RateLimits(600, 7, 0.3)
    assert RateLimits.from_headers({"content-type": "application/json"}) is None


def test_the_cell_says_when_it_waits_on_the_rate_limit() -> None:
    from cometnb._core.generations import ClientEvent
    from cometnb._core.progress import RATE_LIMIT_REASON, describe_event

    event = ClientEvent("waiting", 1, 2.0, RATE_LIMIT_REASON)
    assert describe_event(event) == "waiting on the rate limit (2 s)"


# --- a busy account fails nothing (issue 22, point 3) ----------------------------------------


def test_a_rate_limit_429_is_retried_while_the_runs_patience_lasts() -> None:
    from cometnb._client.retry import Failure
    from cometnb._core.billing import BillingRisk
    from cometnb._core.errors import APIError, RateLimitError

    policy = RetryPolicy(max_retries=2)
    busy = Failure(RateLimitError("busy", status=429), BillingRisk.RATE_LIMITED, "HTTP 429")
    overloaded = Failure(APIError("over", status=503), BillingRisk.RATE_LIMITED, "HTTP 503")
    quota = Failure(RateLimitError("quota", status=429), BillingRisk.REFUSED, "HTTP 429")
    assert policy.decide(busy, 9, 0, patient=True).wait_s is not None  # past max_retries
    assert policy.decide(busy, 2, 0).wait_s is None  # no pacer bounding the storm: as before
    assert policy.decide(overloaded, 2, 0, patient=True).wait_s is None
    assert policy.decide(quota, 0, 0, patient=True).wait_s is None  # a spent quota: never


@pytest.mark.timeout(180)
@pytest.mark.parametrize("headers", [True, False], ids=["headers", "no-headers"])
def test_forty_requests_at_120_rpm_all_succeed(headers: bool, tmp_path: Path) -> None:
    """40 requests, 120 RPM with a burst of 5, concurrency 16: every one succeeds, each prompt
    sent once plus once per 429 it met (a 429 is never billed, so it is retried)."""
    from collections import Counter

    from cometnb._client.client import Client
    from cometnb._core.generations import ImageRequest
    from cometnb.history import History
    from cometnb.sim import SimServer
    from tests.conftest import FAKE_KEY

    prompts = [f"a shelf of ceramic cups, variant {i:02d}" for i in range(40)]
    requests = [ImageRequest(p, model="gpt-image-2", size="816x816") for p in prompts]
    with SimServer(latency=0.2, rpm=120, burst=5, ratelimit_headers=headers) as sim:
        with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=History(tmp_path)) as c:
            gens = c.generate_many(requests, concurrency=16)
        log, refused = sim.log, sim.rate_limited
    assert [g.error for g in gens if not g.ok] == []
    assert len(History(tmp_path).find(status="ok")) == 40
    sent = Counter(body["prompt"] for _, body in log)
    limited = Counter(body["prompt"] for _, body in refused)
    assert all(sent[p] == 1 + limited[p] for p in prompts)  # no resend but after a 429
