"""The simulator's rate limiter (cometnb.sim.ratelimit): buckets, Retry-After and headers."""

from __future__ import annotations

import pytest

from cometnb.sim.ratelimit import RateLimiter, format_reset


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=600, burst=10, clock=clock)
    answers = [limiter.admit("sk-a").allowed for _ in range(12)]
    assert answers == [True] * 10 + [False] * 2
    clock.now = 0.1  # 600 a minute: one token every 0.1 s
    assert limiter.admit("sk-a").allowed
    assert not limiter.admit("sk-a").allowed


def test_refusal_says_when_to_retry_in_whole_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=6, burst=1, clock=clock)
    assert limiter.admit("sk-a").allowed
    refused = limiter.admit("sk-a")
    assert not refused.allowed and refused.limited_by == "requests"
    assert refused.retry_after == pytest.approx(10.0)
    assert refused.retry_after_header() == "10"
    clock.now = 9.95
    assert limiter.admit("sk-a").retry_after_header() == "1"  # never "0"


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(rpm=60, burst=1, clock=lambda: 0.0)
    assert limiter.admit("sk-a").allowed and limiter.admit("sk-b").allowed
    assert not limiter.admit("sk-a").allowed
    limiter.reset()
    assert limiter.admit("sk-a").allowed


def test_images_per_minute_count_n() -> None:
    clock = Clock()
    limiter = RateLimiter(ipm=60, image_burst=4, clock=clock)
    assert limiter.admit("sk-a", images=3).allowed
    refused = limiter.admit("sk-a", images=2)
    assert not refused.allowed and refused.limited_by == "images"
    assert refused.retry_after == pytest.approx(1.0)
    assert limiter.admit("sk-a", images=1).allowed
    assert not limiter.admit("sk-a", images=5).allowed  # more than the burst: never


def test_headers_only_when_enabled() -> None:
    clock = Clock()
    plain = RateLimiter(rpm=600, burst=10, clock=clock)
    assert plain.admit("sk-a").headers is None
    limiter = RateLimiter(rpm=600, burst=10, headers=True, clock=clock)
    first = limiter.admit("sk-a").headers
    assert first == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "100ms",
    }
    for _ in range(9):
        limiter.admit("sk-a")
    refused = limiter.admit("sk-a")
    assert refused.headers is not None
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1s"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rpm must be a positive number"):
        RateLimiter(rpm=0)
    assert not RateLimiter().active and RateLimiter(ipm=5).active


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0ms"), (0.25, "250ms"), (1.5, "1.5s"), (360, "6m0s"), (3723.5, "1h2m3.5s")],
)
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
