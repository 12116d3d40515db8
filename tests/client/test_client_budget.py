"""The session budget (CometImg.budget) outside the magic: Client.generate, AsyncClient,
generate_many and History.rerun refuse before sending, the same way the magic does."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from conftest import FAKE_KEY

from cometnb._client.client import AsyncClient, Client
from cometnb._core import settings as _settings
from cometnb._core.budget import ledger
from cometnb._core.errors import BudgetError
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import estimate

if TYPE_CHECKING:
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

LOW = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"}
PROMPT = "a lighthouse on a cliff at dusk"


def _low_estimate() -> float:
    usd = estimate(ImageRequest(PROMPT, **LOW)).usd
    assert usd is not None
    return usd


def test_generate_over_the_session_budget_is_refused_before_sending(
    client: Client, sim: SimServer
) -> None:
    _settings.active().budget = 0.01
    with pytest.raises(BudgetError) as info:
        client.generate(PROMPT, model="gpt-image-2", size="1024x1024", quality="high")
    err = info.value
    assert sim.request_count == 0
    assert err.estimate_usd == pytest.approx(0.2107, abs=1e-3)  # 7024 image tokens at $30/M
    assert err.left_usd == pytest.approx(0.01)
    text = str(err)
    assert "this request would cost ≈ $0.21" in text and "$0.01 left" in text
    assert "nothing was sent" in text and "CometImg.budget" in text
    assert ledger().requests == 0 and ledger().reserved == 0.0


def test_unknown_cost_model_is_refused_while_a_budget_is_set(
    client: Client, sim: SimServer
) -> None:
    _settings.active().budget = 5.0
    with pytest.raises(BudgetError, match="cost of this request is unknown"):
        client.generate(PROMPT, model="qwen-image")
    assert sim.request_count == 0


def test_generate_within_the_budget_runs_and_counts(client: Client, sim: SimServer) -> None:
    _settings.active().budget = 1.0
    gen = client.generate(PROMPT, **LOW)
    assert gen.ok and sim.request_count == 1
    assert ledger().usd == pytest.approx(gen.cost.usd)
    assert ledger().reserved == 0.0  # the reservation became the actual cost


def test_generate_many_checks_the_whole_estimate_first(client: Client, sim: SimServer) -> None:
    _settings.active().budget = 2.5 * _low_estimate()
    batch = [ImageRequest(PROMPT, **LOW)] * 3
    with pytest.raises(BudgetError) as info:
        client.generate_many(batch)
    assert "3 requests would cost" in str(info.value) and "nothing was sent" in str(info.value)
    assert sim.request_count == 0
    _settings.active().budget = 5.0
    mixed = [ImageRequest(PROMPT, **LOW), ImageRequest(PROMPT, "qwen-image")]
    with pytest.raises(BudgetError, match="cost of 1 of the 2 requests is unknown"):
        client.generate_many(mixed)
    assert sim.request_count == 0


def test_generate_many_stops_sending_once_the_budget_cannot_cover_the_next(
    client: Client, sim: SimServer, hist: History
) -> None:
    each = _low_estimate()
    # The whole estimate fits; the server then bills more than estimated (extra image tokens),
    # so after two requests the third no longer fits what is left.
    _settings.active().budget = 3.2 * each
    sim.extra_output_tokens = 60
    gens = client.generate_many([ImageRequest(PROMPT, **LOW)] * 3, concurrency=1)
    assert [g.ok for g in gens] == [True, True, False]
    assert sim.request_count == 2
    stopped = gens[2]
    assert stopped.budget_stopped and stopped.state == "not sent (budget)"
    assert isinstance(stopped.error, BudgetError) and "not sent" in str(stopped.error)
    assert stopped.cost.usd == 0.0 and stopped.record_id is None
    assert len(hist) == 2  # nothing recorded for the request that was not sent
    assert ledger().reserved == 0.0


def test_async_client_refuses_too(sim: SimServer, hist: History) -> None:
    _settings.active().budget = 0.01

    async def go() -> None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            with pytest.raises(BudgetError, match=r"\$0.01 left"):
                await c.generate(PROMPT, model="gpt-image-2", quality="high", size="1024x1024")
            with pytest.raises(BudgetError, match="3 requests would cost"):
                await c.generate_many([dict(prompt=PROMPT, model="gpt-image-2")] * 3)

    asyncio.run(go())
    assert sim.request_count == 0


def test_history_rerun_is_refused_over_the_budget(
    client: Client, sim: SimServer, hist: History
) -> None:
    first = client.generate(PROMPT, model="gpt-image-2", size="1024x1024", quality="high")
    _settings.active().budget = first.cost.usd  # all spent already
    with pytest.raises(BudgetError, match="nothing was sent"):
        hist.rerun(hist.records()[0], client=client)
    with pytest.raises(BudgetError, match="nothing was sent"):
        hist.rerun(hist.records()[0])  # the default client checks too
    assert sim.request_count == 1
