"""``cometnb.refresh_prices()`` also refreshes the registry (issue 23, point 5): a later
``gpt-image-2.N-*`` id the catalog or ``GET /v1/models`` reports becomes an ``assumed`` row, kept
dated in the history folder beside the prices, and shown as ``assumed`` wherever it appears:
``cometnb.models()``, its view, the panel's model list and hint, a cell, the "not served" list."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cometnb
from cometnb._client.lookups import refresh_prices
from cometnb._core import settings as _settings
from cometnb._core.model_registry import KNOWN_MODELS, MODELS, model_gone_message
from cometnb._core.prices import active_table, builtin_table
from cometnb._notebook.panel_form import LiveValidation, RequestForm
from cometnb._views.model_table import models_html
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

LATER = "gpt-image-2.7-flare"


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


@pytest.fixture
def keyed(sim: SimServer, isolated_env: Path, fake_key: str) -> SimServer:
    _settings.set_session_key(fake_key)
    return sim


def test_the_simulator_lists_a_later_id_in_both_lists(sim: SimServer, fake_key: str) -> None:
    with httpx.Client() as http:
        listed = http.get(f"{sim.base_url}/models", headers={"Authorization": f"Bearer {fake_key}"})
        catalog = http.get(sim.base_url.removesuffix("/v1") + "/api/models")
    assert LATER in {m["id"] for m in listed.json()["data"]}
    entry = next(e for e in catalog.json()["data"] if e["id"] == LATER)
    assert entry["pricing"] == {
        "input": 4.0,
        "output": 24.0,
        "per_request": None,
        "currency": "USD / M Tokens",
        "per_second": None,
    }


def test_refresh_learns_the_later_id_from_the_catalog_and_the_model_list(
    keyed: SimServer, isolated_env: Path
) -> None:
    assert LATER not in active_table().learned and LATER not in cometnb.models()
    table = cometnb.refresh_prices(keyed.base_url)
    where = f"CometAPI catalog and GET /v1/models, {_today()}"
    assert dict(table.learned) == {LATER: where}
    assert table.problems == ()
    # kept dated in the history folder, in the same file as the prices
    kept = json.loads(next((isolated_env / "prices").glob("catalog-*.json")).read_text())
    assert kept["learned"] == {LATER: where}
    # priced from the catalog (0.8x) with its family's token formula and cached rates
    price = table.get(LATER)
    assert price is not None and price.output_tokens == "gpt-image-2-formula"
    assert (price.image_out, price.text_in_cached) == (24.0, 1.0)
    # the models() table: one assumed row, dated, naming where it was learned
    rows = cometnb.models()
    assert rows.status(LATER) == "assumed" and len(rows) == len(KNOWN_MODELS) + 1
    data = rows.row(LATER)
    assert data["learned"] == where and data["as_of"] == _today()
    assert rows.prices_by_quality(LATER)["high"].usd == pytest.approx(7024 * 24 / 1e6)
    assert f"learned from {where}" in rows.source_text(LATER)
    assert rows.row("gpt-image-2")["as_of"] == "2026-12-05"
    page = models_html(rows)
    assumed = next(r for r in page.split("<tr>") if f"<b>{LATER}</b>" in r)
    assert ">assumed<" in assumed and f"learned from {where}" in assumed
    # in force from the kept file (what a new session reads)
    assert LATER in active_table().learned


def test_the_panel_offers_a_learned_id_after_live_ones_and_says_it_is_assumed(
    keyed: SimServer, isolated_env: Path
) -> None:
    refresh_prices(keyed.base_url)
    form = RequestForm()
    live = LiveValidation(form, on_state=lambda _ok: None)
    options = list(form.model.options)
    statuses = [MODELS[m].status if m in MODELS else "assumed" for m in options]
    assert statuses.index("assumed") == options.index(LATER)
    assert all(s == "live" for s in statuses[: options.index(LATER)])
    assert all(s == "retired" for s in statuses[options.index(LATER) + 1 :])
    form.model.value = LATER
    assert live.valid
    hint = form.error_for("model")
    assert f"{LATER} is assumed" in hint and "gpt-image-2.6-flare's rules" in hint


def test_a_cell_on_an_assumed_id_says_so_and_is_sent(
    magic_shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = magic_shell.run_cell(
        f"%%cometimg -m {LATER} -q xhigh --complexity low --no-display\nx"
    )
    assert result.success, result.error_in_exec
    err = capsys.readouterr().err
    assert f"{LATER} is assumed" in err and "Did you mean" not in err
    assert sim.requests[-1]["model"] == LATER and sim.requests[-1]["complexity"] == "low"


def test_not_served_lists_mark_assumed_ids() -> None:
    text = model_gone_message("gpt-image-9", ["gpt-image-2", LATER], KNOWN_MODELS)
    assert f"gpt-image-2, {LATER} (assumed)." in text


def _transport(catalog: list[str], listed: list[str] | None) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/models":
            data = [{"id": m, "pricing": {"input": 4, "output": 24}} for m in catalog]
            return httpx.Response(200, json={"success": True, "data": data})
        if listed is None:
            return httpx.Response(500, json={"error": {"message": "upstream down"}})
        assert request.headers["authorization"].startswith("Bearer ")
        return httpx.Response(200, json={"data": [{"id": m} for m in listed]})

    return httpx.MockTransport(answer)


BASE = "http://127.0.0.1:9/v1"


def test_where_each_id_was_learned(isolated_env: Path, fake_key: str) -> None:
    _settings.set_session_key(fake_key)
    catalog = ["gpt-image-2", "gpt-image-2.7-flare", "gpt-image-2.8-sunburst-2027-03-01"]
    listed = ["gpt-image-2", "gpt-image-2.7-flare", "gpt-image-2.9-flare", "gpt-4o", "dall-e-3"]
    table = refresh_prices(BASE, transport=_transport(catalog, listed))
    day = _today()
    assert dict(table.learned) == {
        "gpt-image-2.7-flare": f"CometAPI catalog and GET /v1/models, {day}",
        "gpt-image-2.8-sunburst-2027-03-01": f"CometAPI catalog, {day}",
        "gpt-image-2.9-flare": f"GET /v1/models, {day}",
    }
    # priced: from the catalog where it lists the id, else like its family (built-in rates)
    assert table.get("gpt-image-2.9-flare") == builtin_table().get("gpt-image-2.6-flare")
    assert {m.id for m in cometnb.models()} >= set(table.learned)


def test_without_a_key_only_the_catalog_teaches(isolated_env: Path) -> None:
    seen: list[str] = []
    inner = _transport(["gpt-image-2.7-flare"], ["gpt-image-2.9-flare"])

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return inner.handle_request(request)

    table = refresh_prices(BASE, transport=httpx.MockTransport(answer))
    assert seen == ["/api/models"]  # the model list needs the key: not asked for
    assert list(table.learned) == ["gpt-image-2.7-flare"] and table.problems == ()


def test_an_unreadable_model_list_is_a_problem_not_a_failure(
    isolated_env: Path, fake_key: str
) -> None:
    _settings.set_session_key(fake_key)
    table = refresh_prices(BASE, transport=_transport(["gpt-image-2.7-flare"], None))
    assert list(table.learned) == ["gpt-image-2.7-flare"]
    assert any("GET /v1/models could not be read" in p for p in table.problems)


def test_a_hand_edited_learned_section_of_the_wrong_kind_is_refused_with_its_shape(
    tmp_path: Path,
) -> None:
    from cometnb._core.errors import ValidationError
    from cometnb._core.prices import PriceTable

    with pytest.raises(ValidationError, match='"learned" must be a JSON object such as'):
        PriceTable.from_dict({"models": {}, "learned": ["gpt-image-2.7-flare"]})
