"""The retry policy is pure: every branch is checked without sleeping."""

from __future__ import annotations

import email.utils
import random

import pytest

from cometnb._client.retry import (
    BILLED_HINT,
    BILLED_RETRIED_HINT,
    Failure,
    RetryPolicy,
    parse_retry_after,
    parse_should_retry,
)
from cometnb._core.billing import BillingRisk, status_safety
from cometnb._core.errors import APIError, RateLimitError


@pytest.mark.parametrize(
    ("status", "safety"),
    [
        (429, "safe"),
        (503, "safe"),
        (408, "billed"),
        (409, "billed"),
        (500, "billed"),
        (502, "billed"),
        (504, "billed"),
        (524, "billed"),
        (599, "billed"),
        (400, "never"),
        (401, "never"),
        (403, "never"),
        (404, "never"),
        (413, "never"),
        (422, "never"),
    ],
)
def test_status_safety(status: int, safety: str) -> None:
    assert status_safety(status) == safety


@pytest.mark.parametrize("n", range(8))
def test_backoff_is_exponential_capped_with_at_most_25_percent_jitter(n: int) -> None:
    policy = RetryPolicy(rng=random.Random(n))
    nominal = min(0.5 * 2**n, 8.0)
    delays = [policy.backoff(n) for _ in range(500)]
    assert all(0.75 * nominal <= d <= nominal for d in delays)
    assert max(delays) - min(delays) > 0.1 * nominal  # jitter really varies the delay


def test_backoff_extremes_of_the_random_source() -> None:
    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    assert RetryPolicy(rng=Fixed(0.0)).backoff(1) == 1.0
    assert RetryPolicy(rng=Fixed(0.999999)).backoff(10) == pytest.approx(6.0, rel=1e-4)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "9", "Retry-After-Ms": "100"}, 0.1),  # ms wins, as in the SDK
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    future = email.utils.formatdate(now + 30, usegmt=True)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"Retry-After": future}, now=now) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0


def test_parse_should_retry() -> None:
    assert parse_should_retry({"X-Should-Retry": "false"}) is False
    assert parse_should_retry({"x-should-retry": "TRUE"}) is True
    assert parse_should_retry({"x-should-retry": "maybe"}) is None
    assert parse_should_retry({}) is None


# One risk of each retry class: what the policy decides from.
_RISK = {
    "safe": BillingRisk.RATE_LIMITED,
    "billed": BillingRisk.SERVER_FAILED,
    "never": BillingRisk.REFUSED,
}


def _failure(safety: str, **kw: object) -> Failure:
    failure = Failure(APIError("boom", status=500), _RISK[safety], "HTTP 500", **kw)  # type: ignore[arg-type]
    assert failure.safety == safety
    return failure


def test_never_is_never_retried() -> None:
    policy = RetryPolicy(max_retries=5, retry_billed=True)
    assert policy.decide(_failure("never"), 0, 0).wait_s is None


def test_safe_failures_retry_until_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, rng=random.Random(1))
    assert policy.decide(_failure("safe"), 0, 0).wait_s is not None
    assert policy.decide(_failure("safe"), 1, 0).wait_s is not None
    assert policy.decide(_failure("safe"), 2, 0).wait_s is None
    assert RetryPolicy(max_retries=0).decide(_failure("safe"), 0, 0).wait_s is None


def test_should_retry_false_vetoes_a_safe_retry() -> None:
    decision = RetryPolicy().decide(_failure("safe", should_retry=False), 0, 0)
    assert decision.wait_s is None


def test_retry_after_wins_over_backoff() -> None:
    decision = RetryPolicy().decide(_failure("safe", retry_after=3.0), 0, 0)
    assert decision.wait_s == 3.0


def test_retry_after_over_120_s_gives_up_saying_when() -> None:
    failure = Failure(
        RateLimitError("slow", status=429), BillingRisk.RATE_LIMITED, "HTTP 429", retry_after=600.0
    )
    decision = RetryPolicy().decide(failure, 0, 0)
    assert decision.wait_s is None
    assert decision.hint is not None
    assert "600 s" in decision.hint and "try again after" in decision.hint


def test_billed_failures_need_opt_in() -> None:
    decision = RetryPolicy(max_retries=5).decide(_failure("billed"), 0, 0)
    assert decision.wait_s is None
    assert decision.hint == BILLED_HINT


def test_billed_opt_in_allows_exactly_one_retry() -> None:
    policy = RetryPolicy(max_retries=5, retry_billed=True, rng=random.Random(0))
    assert policy.decide(_failure("billed"), 0, 0).wait_s is not None
    again = policy.decide(_failure("billed"), 1, 1)
    assert again.wait_s is None
    assert again.hint == BILLED_RETRIED_HINT
    # ...and the opt-in never exceeds max_retries.
    assert (
        RetryPolicy(max_retries=0, retry_billed=True).decide(_failure("billed"), 0, 0).wait_s
        is None
    )
