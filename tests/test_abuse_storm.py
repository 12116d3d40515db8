"""A storm of 429s without ``Retry-After`` ends in minutes, not an hour (issue 21, point 4).

The pacer slows to its floor (one request a minute) while every answer is a 429, so 20
requests with two retries each took about an hour to give up. Now a request still waiting when
the server has refused everything for :data:`RATE_LIMIT_PATIENCE_S` (five minutes) gives up,
and every request ends with one message saying it was never billed. Time is a fake clock that
the client's sleeps move, so the test takes a second.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from conftest import FAKE_KEY

from cometnb._client.client import AsyncClient, Client
from cometnb._client.retry import RATE_LIMIT_PATIENCE_S
from cometnb._client.runner import Pacer
from cometnb._core.errors import RateLimitError
from cometnb.history import History

pytestmark = pytest.mark.timeout(60)

BASE = "http://api.test/v1"
LIMITED = {"error": {"message": "Rate limit reached for requests", "code": "rate_limit_exceeded"}}


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.posts: list[float] = []

    def clock(self) -> float:
        return self.now

    async def asleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(self.now)
        self.now += 0.5  # the server takes a moment to refuse
        return httpx.Response(429, content=json.dumps(LIMITED).encode())


def test_generate_many_of_20_gives_up_within_the_patience(tmp_path: object) -> None:
    fake = FakeTime()

    async def run() -> list[object]:
        async with AsyncClient(
            FAKE_KEY,
            BASE,
            history=History(f"{tmp_path}/h"),
            transport=httpx.MockTransport(fake.answer),
            sleep=fake.asleep,
        ) as client:
            client.pacer = Pacer(clock=fake.clock)
            requests = [{"prompt": f"harbour {i}", "model": "gpt-image-1-mini"} for i in range(20)]
            return list(await client.generate_many(requests, concurrency=4))

    gens = asyncio.run(run())
    assert fake.now <= RATE_LIMIT_PATIENCE_S + 120, f"gave up after {fake.now:.0f} s"
    assert len(fake.posts) < 60  # 20 requests x 3 attempts each took an hour
    for gen in gens:
        assert isinstance(gen.error, RateLimitError)  # type: ignore[attr-defined]
        text = str(gen.error)  # type: ignore[attr-defined]
        assert "never billed" in text and len(text) < 400
        assert gen.error.may_be_billed is False  # type: ignore[attr-defined]
    assert {r.status for r in History(f"{tmp_path}/h")} == {"error"}
    assert History(f"{tmp_path}/h").spend() == 0  # never billed: nothing charged


def test_one_request_in_a_storm_gives_up_within_the_patience(tmp_path: object) -> None:
    fake = FakeTime()
    with Client(
        FAKE_KEY,
        BASE,
        max_retries=50,  # only the patience can stop it
        history=History(f"{tmp_path}/h"),
        transport=httpx.MockTransport(fake.answer),
        sleep=fake.sleep,
    ) as client:
        client.pacer = Pacer(clock=fake.clock)
        with pytest.raises(RateLimitError) as info:
            client.generate("a lighthouse", model="gpt-image-1-mini")
    assert fake.now <= RATE_LIMIT_PATIENCE_S + 60
    assert "Gave up" in info.value.message and "never billed" in str(info.value)
