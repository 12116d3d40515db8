"""Gaps a hostile review of the issue-13 hardening found, one regression test (or a few) each:
text that cannot be stored in tags, input-image paths outside the history, absurd Retry-After
values, DNS rebinding past the download guard, replies with more images than asked for, and the
key echoed by a ``-o`` error."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import FAKE_KEY

from cometnb._core.errors import ValidationError
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(90)

MODEL = "gpt-image-1-mini"


def _client(sim: SimServer, hist: History, **kwargs: Any) -> Any:
    from cometnb._client.clients import Client

    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, **kwargs)


# --- B. tags that could not be stored are refused before sending -------------------------------


@pytest.mark.parametrize("bad", ["\udcff", "ok\ud800"])
def test_unstorable_tag_is_refused_before_sending(sim: SimServer, hist: History, bad: str) -> None:
    with _client(sim, hist) as c:
        with pytest.raises(ValidationError, match=r"tags\[1\].*position") as info:
            c.generate("a fox", model=MODEL, tags=["fine", bad])
        assert info.value.field == "tags"
        with pytest.raises(ValidationError, match=r"tags\[0\]"):
            c.generate_many([{"prompt": "a fox", "model": MODEL}], tags=[bad])
        with pytest.raises(ValidationError, match="tags"):
            c.generate("a fox", model=MODEL, tags=[f"key {FAKE_KEY}"])
    assert sim.request_count == 0
    assert not list(hist.path.rglob("*.png"))  # nothing billed, nothing stored unlisted


def test_async_client_refuses_an_unstorable_tag(sim: SimServer, hist: History) -> None:
    import asyncio

    from cometnb._client.clients import AsyncClient

    async def main() -> None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            with pytest.raises(ValidationError, match=r"tags\[0\]"):
                await c.generate("a fox", model=MODEL, tags=["\ud800"])
            with pytest.raises(ValidationError, match=r"tags\[0\]"):
                await c.generate_many([{"prompt": "a fox", "model": MODEL}], tags=["\ud800"])

    asyncio.run(main())
    assert sim.request_count == 0


def test_magic_refuses_an_unstorable_tag(magic_shell: Any, sim: SimServer) -> None:
    result = magic_shell.run_cell(
        f"%%cometimg -m {MODEL} --tag bad\udcff\na cat", store_history=False
    )
    assert isinstance(result.error_in_exec, ValidationError)
    assert "tags[0]" in str(result.error_in_exec)
    assert sim.request_count == 0
