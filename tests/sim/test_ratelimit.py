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


def test_the_simulator_answers_429_with_retry_after_and_headers() -> None:
    import httpx

    from cometnb.sim import SimServer

    body = {"model": "gpt-image-2", "prompt": "a fox", "size": "816x816"}
    with SimServer(rpm=60, burst=2, ratelimit_headers=True) as sim:
        answers = [
            httpx.post(
                f"{sim.base_url}/images/generations",
                json=body,
                headers={"Authorization": "Bearer sk-rate-limit-test-000"},
                timeout=30,
            )
            for _ in range(3)
        ]
        other_key = httpx.post(
            f"{sim.base_url}/images/generations",
            json=body,
            headers={"Authorization": "Bearer sk-another-key-00000000"},
            timeout=30,
        )
        refused = sim.rate_limited
    assert [a.status_code for a in answers] == [200, 200, 429] and other_key.status_code == 200
    limited = answers[2]
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.headers["x-ratelimit-limit-requests"] == "60"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "1"
    assert len(refused) == 1 and refused[0][1]["prompt"] == "a fox"


def test_the_command_line_takes_the_limits() -> None:
    from cometnb.sim.cli import _parse_args

    args = _parse_args(["--rpm", "600", "--ipm", "50", "--burst", "10", "--ratelimit-headers"])
    assert (args.rpm, args.ipm, args.burst, args.ratelimit_headers) == (600, 50, 10, True)
    assert _parse_args([]).rpm is None
