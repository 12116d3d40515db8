"""The budget in batches: the items about to be sent are checked together before the first
request, items the budget stops mid-run stay pending (not failed), and the progress bar
shows what the run spent. Run against the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cometnb._client.batch_run import batch, run_batch
from cometnb._core import settings as _settings
from cometnb._core.budget import BudgetLimits, SpendGuard, ledger
from cometnb._core.errors import BudgetError
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import Cost, estimate
from cometnb._storage.batches import BatchStore
from tests.client.test_batch import client_for, sent_prompts

if TYPE_CHECKING:
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

FIELDS = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"}
CATALOGUE = [
    "a ceramic mug with a fox glaze, studio light",
    "a linen tote bag printed with ferns, on a wooden table",
    "a brass desk lamp with a green shade, evening light",
    "a pair of wool socks with a mountain pattern, flat lay",
    "a walnut chopping board with olive oil, top view",
    "a glass teapot with jasmine tea, window light",
]


def _each() -> float:
    usd = estimate(ImageRequest(CATALOGUE[0], **FIELDS)).usd  # type: ignore[arg-type]
    assert usd is not None
    return usd


_client, _prompts = client_for, sent_prompts


def test_a_batch_over_the_session_budget_is_refused_before_anything_is_sent(
    sim: SimServer, hist: History
) -> None:
    _settings.active().budget = 2.5 * _each()
    with pytest.raises(BudgetError) as info:
        batch(CATALOGUE[:4], name="shop", client=_client(sim, hist), progress=False, **FIELDS)
    text = str(info.value)
    assert sim.request_count == 0
    assert "4 requests would cost" in text and "nothing was sent" in text
    assert "CometImg.budget" in text
    each = [estimate(ImageRequest(p, **FIELDS)).usd for p in CATALOGUE[:4]]  # type: ignore[arg-type]
    assert info.value.estimate_usd == pytest.approx(sum(u or 0.0 for u in each))
    assert ledger().reserved == 0.0 and ledger().requests == 0
    states = BatchStore(hist.path).states("shop")
    assert all(s.state == "pending" for s in states.values())  # nothing marked as sent


def test_a_resumed_batch_is_checked_on_what_it_will_send_not_on_what_is_done(
    sim: SimServer, hist: History
) -> None:
    client = _client(sim, hist)
    first = batch(CATALOGUE[:4], name="shop", client=client, progress=False, **FIELDS)
    assert first.counts()["done"] == 4
    spent = ledger().usd
    # Enough for the two new items, far from enough for all six.
    _settings.active().budget = spent + 2.5 * _each()
    mark = sim.request_count
    b = batch(CATALOGUE, name="shop", client=client, progress=False, **FIELDS)
    assert sorted(_prompts(sim, mark)) == sorted(CATALOGUE[4:])
    assert b.counts() == {"done": 6, "failed": 0, "uncertain": 0, "pending": 0}
    assert b.notes == []


def test_items_the_budget_stops_midway_stay_pending_and_are_sent_next_time(
    sim: SimServer, hist: History
) -> None:
    client = _client(sim, hist)
    # A guard whose cap covers two items (as when actual costs run above the estimates, or
    # another cell spends meanwhile): the check before sending is passed, the run stops.
    guards: list[SpendGuard] = []

    def tight(requests: object) -> SpendGuard:
        guards.append(SpendGuard(BudgetLimits(cell_budget=2.5 * _each()), ledger=ledger()))
        return guards[-1]

    b = run_batch(
        CATALOGUE[:4],
        name="shop",
        client=client,
        progress=False,
        check=tight,
        concurrency=1,
        defaults=FIELDS,
    )
    assert _prompts(sim) == CATALOGUE[:2]
    assert b.counts() == {"done": 2, "failed": 0, "uncertain": 0, "pending": 2}
    assert [i.request.prompt for i in b.pending] == CATALOGUE[2:4]
    assert b.failed == []  # stopped by the budget is not a failure
    assert len(b.notes) == 1 and b.notes[0].startswith("Budget reached: 2 of 4 items")
    assert "run the batch again" in b.notes[0]
    mark = sim.request_count
    again = batch(CATALOGUE[:4], name="shop", client=client, progress=False, **FIELDS)
    assert sorted(_prompts(sim, mark)) == sorted(CATALOGUE[2:4])
    assert again.counts()["done"] == 4


def test_the_progress_bar_shows_what_the_run_spent(
    sim: SimServer, hist: History, capsys: pytest.CaptureFixture[str]
) -> None:
    b = batch(CATALOGUE[:3], name="bar", client=_client(sim, hist), concurrency=1, **FIELDS)
    err = capsys.readouterr().err
    assert isinstance(b.cost, Cost) and b.cost.usd is not None and b.cost.usd > 0
    assert "3/3" in err and "spend=$" in err
    shown = err.rsplit("spend=$", 1)[1].split()[0].rstrip("]")
    assert float(shown.strip(",")) == pytest.approx(b.cost.usd, abs=0.006)
