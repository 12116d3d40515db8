"""The ledger end to end through the simulator: Generation.cost, Record.cost stored with the
table's date, h.spend() across a new process, exports, and a price override that changes
estimates but not history."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import FAKE_KEY

from cometnb._core import settings as _settings
from cometnb._core.budget import ledger
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import (
    Cost,
    builtin_table,
    format_spend,
    gpt_image_2_tokens,
    prompt_tokens,
)
from cometnb._storage.spend import SpendTable

if TYPE_CHECKING:
    from cometnb._client.client import Client
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

PROMPTS = (
    "a lighthouse on a cliff at dusk, oil painting",
    "a red fox asleep in fresh snow, morning light",
    "an isometric pixel-art bakery with a striped awning",
)


@pytest.fixture
def sim_client(sim: SimServer, hist: History) -> Iterator[Client]:
    from cometnb._client.client import Client

    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        yield c


def _gpt2(prompt: str, quality: str, size: str = "1024x1024") -> float:
    w, h = (int(x) for x in size.split("x"))
    text = prompt_tokens(prompt, builtin_table())
    return text * 5e-6 + gpt_image_2_tokens(w, h, quality) * 30e-6


def test_simulated_usage_follows_the_real_token_counts(sim_client: Client) -> None:
    for quality, tokens in (("low", 196), ("medium", 1756), ("high", 7024)):
        gen = sim_client.generate(
            PROMPTS[0], model="gpt-image-2", size="1024x1024", quality=quality
        )
        assert gen.usage is not None and gen.usage["output_tokens"] == tokens
    gen = sim_client.generate(PROMPTS[0], model="gpt-image-1", size="1024x1536", quality="medium")
    assert gen.usage is not None and gen.usage["output_tokens"] == 1584


@pytest.mark.parametrize(
    ("model", "size", "quality"),
    [
        ("gpt-image-2", "1024x1024", "low"),
        ("gpt-image-2", "1024x1536", "high"),
        ("gpt-image-2", "2048x1152", "medium"),
        ("gpt-image-1.5", "1536x1024", "medium"),
        ("gpt-image-1", "1024x1024", "high"),
        ("gpt-image-1-mini", "1024x1024", "low"),
        ("dall-e-3", "1792x1024", "hd"),
        ("dall-e-2", "512x512", None),
    ],
)
def test_estimate_equals_actual_in_the_simulator(
    sim_client: Client, model: str, size: str, quality: str | None
) -> None:
    request = ImageRequest(PROMPTS[1], model, size=size, quality=quality)
    before = request.estimate()
    assert before.estimated and before.usd is not None
    gen = sim_client.run(request)
    assert not gen.cost.estimated
    assert gen.cost.usd == pytest.approx(before.usd)


def test_generation_and_record_cost_agree_and_are_stored(sim_client: Client, hist: History) -> None:
    gen = sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="low")
    assert gen.cost.usd == pytest.approx(_gpt2(PROMPTS[0], "low"))
    assert gen.cost.label == "$0.006" and gen.cost.prices == "built-in 2026-12-01"
    rec = hist[-1]
    assert rec.cost == gen.cost
    doc = rec.to_dict()
    assert doc["cost"]["usd"] == pytest.approx(gen.cost.usd)
    assert doc["cost"]["prices"] == "built-in 2026-12-01"


def test_a_refused_request_costs_nothing_and_a_cut_one_its_estimate(
    sim: SimServer, sim_client: Client, hist: History
) -> None:
    from cometnb._core.errors import APIError, CometError

    sim.fault("moderation")
    with pytest.raises(APIError):
        sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="low")
    assert hist[-1].cost == Cost(0.0, False, hist[-1].cost.basis, "built-in 2026-12-01")
    assert "HTTP 400" in hist[-1].cost.basis
    sim.fault("truncated_json")
    with pytest.raises(CometError):
        sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="low")
    cut = hist[-1].cost
    assert cut.estimated and cut.usd == pytest.approx(_gpt2(PROMPTS[0], "low"))


@pytest.mark.parametrize(
    ("status", "billed"),
    [
        *((code, True) for code in (408, 409, 500, 502, 504, 520, 522, 524, 599)),
        *((code, False) for code in (400, 404, 429, 503)),
    ],
)
def test_failure_cost_follows_the_retry_policys_billing_rule(status: int, billed: bool) -> None:
    from cometnb._core.billing import status_safety
    from cometnb._core.prices import failure_cost

    body = {"model": "gpt-image-2", "prompt": PROMPTS[0], "size": "1024x1024", "quality": "low"}
    cost = failure_cost(body, "APIError", status, builtin_table())
    assert (status_safety(status) == "billed") is billed  # the one rule, as the client retries
    if billed:
        assert cost.usd == pytest.approx(_gpt2(PROMPTS[0], "low")) and cost.estimated
        assert "may have been billed" in cost.basis
    else:
        assert cost.usd == 0.0 and "not billed" in cost.basis
    # the client's own finding wins over the status (CometAPI's 400-class "500")
    flagged = failure_cost(body, "APIError", 500, builtin_table(), may_be_billed=False)
    assert flagged.usd == 0.0


@pytest.mark.parametrize("fault", ["500", "502", "500_invalid"])
def test_a_failure_the_client_calls_maybe_billed_is_charged_its_estimate(
    sim: SimServer, sim_client: Client, hist: History, fault: str
) -> None:
    from cometnb._core.errors import APIError

    sim.fault(fault)
    with pytest.raises(APIError) as info:
        sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="low")
    says_billed = "may still have been billed" in str(info.value)
    assert info.value.may_be_billed is says_billed
    cost = hist[-1].cost
    if fault == "500_invalid":
        assert not says_billed and cost.usd == 0.0
    else:
        assert says_billed and cost.usd == pytest.approx(_gpt2(PROMPTS[0], "low"))
        assert "may have been billed" in cost.basis
        assert ledger().usd == pytest.approx(cost.usd)  # the budget counts it at its estimate


def test_session_ledger_counts_every_request(sim_client: Client) -> None:
    start = ledger().usd
    gens = [
        sim_client.generate(p, model="gpt-image-2", size="1024x1024", quality="low")
        for p in PROMPTS
    ]
    assert ledger().usd - start == pytest.approx(sum(g.cost.usd or 0 for g in gens))


SPEND_IN_NEW_PROCESS = """
import json, sys
from cometnb.history import History
h = History(sys.argv[1])
print(json.dumps({
    "total": h.spend(),
    "records": [r.cost.usd for r in h],
    "by_model": dict(h.spend(by="model")),
    "by_tag": dict(h.spend(by="tag")),
    "day": dict(h.spend(by="day")),
}))
"""


def _in_new_process(folder: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SPEND_IN_NEW_PROCESS, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _make_history(sim_client: Client) -> None:
    sim_client.generate(
        PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="medium", tags=["cover"]
    )
    sim_client.generate(PROMPTS[1], model="dall-e-3", size="1792x1024", quality="hd")
    sim_client.generate(
        PROMPTS[2], model="gpt-image-1-mini", size="1024x1024", quality="low", tags=["cover", "v2"]
    )


def test_spend_equals_the_records_costs_across_a_restart(
    sim_client: Client, hist: History, history_dir: Path
) -> None:
    _make_history(sim_client)
    here = hist.spend()
    assert here == pytest.approx(sum(r.cost.usd or 0 for r in hist))
    assert here == pytest.approx(_gpt2(PROMPTS[0], "medium") + 0.12 + hist[-1].cost.usd)
    there = _in_new_process(history_dir)  # what a restarted kernel reads back
    assert there["total"] == pytest.approx(here)
    assert there["records"] == pytest.approx([r.cost.usd for r in hist])
    by_model = hist.spend(by="model")
    assert list(by_model) == ["dall-e-3", "gpt-image-2", "gpt-image-1-mini"]  # largest first
    assert there["by_model"] == pytest.approx(dict(by_model))
    by_tag = hist.spend(by="tag")
    assert set(by_tag) == {"cover", "v2", "(untagged)"}
    assert by_tag["(untagged)"] == pytest.approx(0.12)
    assert there["day"] == pytest.approx({hist[0].created_at.date().isoformat(): here})


def test_spend_since(sim_client: Client, hist: History) -> None:
    _make_history(sim_client)
    later = hist[1].created_at
    assert hist.spend(since=later) == pytest.approx(
        (hist[1].cost.usd or 0) + (hist[2].cost.usd or 0)
    )
    assert hist.spend(since=later.isoformat()) == hist.spend(since=later)
    assert hist.spend(since="2999-01-01") == 0.0
    with pytest.raises(ValueError, match="by must be"):
        hist.spend(by="week")  # type: ignore[arg-type]


def test_spend_by_tag_total_counts_each_record_once(sim_client: Client, hist: History) -> None:
    low = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"}
    sim_client.generate(PROMPTS[0], tags=["cover", "v2"], **low)  # two tags, one record
    sim_client.generate(PROMPTS[1], tags=["cover"], **low)
    sim_client.generate(PROMPTS[2], **low)
    by_tag = hist.spend(by="tag")
    assert isinstance(by_tag, SpendTable)
    assert by_tag.total == pytest.approx(hist.spend())  # not the sum of the overlapping rows
    assert sum(by_tag.values()) > by_tag.total and by_tag.overlaps
    assert by_tag.requests == 3 and by_tag.counts == {"cover": 2, "v2": 1, "(untagged)": 1}
    page = by_tag._repr_html_()
    total_row = page[page.index("<th>total</th>") :]
    assert format_spend(hist.spend()) in total_row and ">3</th>" in total_row
    assert "rows overlap" in total_row
    by_model = hist.spend(by="model")
    assert by_model.total == pytest.approx(hist.spend()) and not by_model.overlaps
    assert "rows overlap" not in by_model._repr_html_()


def test_history_view_cost_column_is_right_aligned_with_three_decimals(
    sim: SimServer, sim_client: Client, hist: History
) -> None:
    import re

    from cometnb._core.errors import CometError
    from cometnb._views.history import history_html

    sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="high")
    sim_client.generate(PROMPTS[1], model="dall-e-3", size="1792x1024", quality="hd")
    sim.fault("504")
    with pytest.raises(CometError):
        sim_client.generate(PROMPTS[2], model="gpt-image-2", size="1024x1024", quality="low")
    page = history_html(list(hist))
    cells = re.findall(
        r'<td style="[^"]*text-align:right;">(<span class="cometnb-cost".*?)</td>', page
    )
    shown = [re.sub(r"<[^>]+>", "", c) for c in cells]
    assert len(shown) == 3
    assert all(re.fullmatch(r"(≈ )?\$\d+\.\d{3}", t) for t in shown), shown
    assert "≈ $0.006" in shown and "$0.120" in shown  # not "≈ $0.01" beside "$0.120"
    assert '<th style="' in page and 'text-align:right;">cost</th>' in page


def test_price_override_changes_estimates_not_recorded_costs(
    sim_client: Client, hist: History, history_dir: Path, tmp_path: Path
) -> None:
    _make_history(sim_client)
    recorded = [r.cost for r in hist]
    total = hist.spend()
    request = ImageRequest(PROMPTS[0], "gpt-image-2", size="1024x1024", quality="medium")
    before = request.estimate()
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "date": "2027-01-01",
                "source": "a price rise",
                "models": {"gpt-image-2": {"image_out": 60}, "dall-e-3": {"per_image": 1.0}},
            }
        )
    )
    _settings.active().prices_file = str(override)
    after = request.estimate()
    assert after.usd is not None and before.usd is not None and after.usd > before.usd * 1.9
    assert after.prices == "prices.json 2027-01-01"
    assert [r.cost for r in hist] == recorded  # history is not rewritten
    assert hist.spend() == pytest.approx(total)
    assert _in_new_process(history_dir)["total"] == pytest.approx(total)
    # a new request is priced with the table in force when it runs
    gen = sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="medium")
    assert gen.cost.usd == pytest.approx(after.usd)
    assert hist[-1].cost.prices == "prices.json 2027-01-01"


def test_old_records_without_a_cost_are_priced_now_and_marked(
    sim_client: Client, hist: History, history_dir: Path
) -> None:
    import sqlite3

    sim_client.generate(PROMPTS[0], model="gpt-image-2", size="1024x1024", quality="low")
    rid = hist[-1].id
    # A record written before costs were kept: drop "cost" from its stored document.
    db = next(history_dir.glob("*.sqlite*"))
    with sqlite3.connect(db) as conn:
        (doc_text,) = conn.execute("SELECT doc FROM records WHERE id = ?", (rid,)).fetchone()
        doc = json.loads(doc_text)
        doc.pop("cost")
        conn.execute("UPDATE records SET doc = ? WHERE id = ?", (json.dumps(doc), rid))
    from cometnb.history import History

    old = History(history_dir).get(rid)
    assert old is not None
    assert old.cost.estimated and "record kept no cost" in old.cost.basis
    assert old.cost.usd == pytest.approx(_gpt2(PROMPTS[0], "low"))


def test_dataframe_and_exports_carry_cost_usd(
    sim_client: Client, hist: History, tmp_path: Path
) -> None:
    pytest.importorskip("pandas")
    _make_history(sim_client)
    df = hist.to_dataframe()
    assert list(df["cost_usd"]) == pytest.approx([r.cost.usd for r in hist])
    lines = hist.export(tmp_path / "h.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    costs = [row["cost"]["usd"] for row in rows if "cost" in row]
    assert costs == pytest.approx([r.cost.usd for r in hist])
    page = hist.export(tmp_path / "h.html").read_text()
    assert "$0.120" in page


def test_refresh_prices_from_the_simulated_catalog(sim: SimServer, isolated_env: Path) -> None:
    import cometnb

    request = ImageRequest(PROMPTS[0], "gpt-image-2", size="1024x1024", quality="medium")
    before = request.estimate()
    table = cometnb.refresh_prices(sim.base_url)
    assert table.problems == ()
    assert table.get("gpt-image-2").image_out == 24.0  # type: ignore[union-attr]
    assert table.get("qwen-image") is not None  # priced per request by the catalog
    after = request.estimate()
    assert after.usd == pytest.approx((before.usd or 0) * 0.8)
    assert after.prices is not None and after.prices.startswith("catalog ")
    assert cometnb.prices() == table
    kept = list((isolated_env / "prices").glob("catalog-*.json"))
    assert len(kept) == 1 and "api/models" in json.loads(kept[0].read_text())["source"]
