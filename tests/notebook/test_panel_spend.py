"""The panel's spend line: the estimate beside Generate follows the controls, the session's
spend follows what ran, and the session budget refuses before anything is queued."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from test_widget import WAIT_S, generate, text_of

from cometnb._core import settings as _settings
from cometnb._core.budget import ledger
from cometnb.widget import Panel, panel

if TYPE_CHECKING:
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def p(sim: SimServer, fake_key: str) -> Iterator[Panel]:
    _settings.active().base_url = sim.base_url
    _settings.set_session_key(fake_key)
    made = panel()
    try:
        yield made
    finally:
        made.cancel()


def test_estimate_sits_beside_generate_and_follows_the_controls(p: Panel) -> None:
    assert "cometnb-estimate" in p.spend.widget._dom_classes
    row = next(c for c in p.children if p.generate_button in getattr(c, "children", ()))
    assert p.spend.widget in row.children
    p.prompt.value = "a paper boat on a pond at sunrise"
    p.model.value = "gpt-image-2"
    p.size.value = "1024x1024"
    p.quality.value = "low"
    assert text_of(p.spend.widget).startswith("≈ $0.006")
    p.quality.value = "high"
    assert text_of(p.spend.widget).startswith("≈ $0.21")
    p.n.value = 3
    assert text_of(p.spend.widget).startswith("≈ $0.63")
    p.model.value = "dall-e-3"
    assert text_of(p.spend.widget).startswith("≈ $0.04")
    p.model.value = "qwen-image"
    assert text_of(p.spend.widget).startswith("cost unknown")
    assert "$0.00 this session" in text_of(p.spend.widget)


def test_session_spend_follows_what_ran(p: Panel, sim: SimServer) -> None:
    generate(p, "a paper boat", model="gpt-image-2", size="1024x1024", quality="low")
    assert sim.request_count == 1
    spent = p.generations[-1].cost.usd
    assert spent is not None and ledger().usd == pytest.approx(spent)
    assert "<$0.01 this session" in text_of(p.spend.widget)


def test_session_budget_refuses_before_queueing(p: Panel, sim: SimServer) -> None:
    _settings.active().budget = 0.10
    p.prompt.value = "a paper boat"
    p.model.value = "gpt-image-2"
    p.size.value = "1024x1024"
    p.quality.value = "high"  # ≈ $0.21
    p.spend.refresh()
    # Said before the click: the line is a warning naming the estimate and what is left.
    warning = text_of(p.spend.widget)
    assert warning.startswith("⚠ over budget") and "≈ $0.21" in warning
    assert "$0.100 left of $0.10" in warning
    assert p.submit() is None
    assert p.wait(WAIT_S)
    assert sim.request_count == 0
    message = text_of(p.message)
    assert "would cost ≈ $0.21" in message and "$0.10 left" in message
    p.quality.value = "low"
    assert "over budget" not in text_of(p.spend.widget)
    assert "budget $0.10" in text_of(p.spend.widget)
    assert p.submit() is not None
    assert p.wait(WAIT_S)
    assert sim.request_count == 1
