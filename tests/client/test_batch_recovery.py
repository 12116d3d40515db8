"""Batch recovery reads a failure's BillingRisk, never its wording (issue 22, point 1).

A failure is classified once where it is met; the error carries the risk, the record's error
document and the batch row store it, and a re-run holds back exactly the items that may have
been billed, whatever the messages say. Records from before the risk was stored go through
:func:`legacy_may_be_billed`, the one fallback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cometnb._client import exchange as _exchange
from cometnb._client.batch import legacy_may_be_billed, may_be_billed
from cometnb._client.batch_run import batch
from cometnb._client.client import Client
from cometnb._core.billing import BillingRisk, final_risk, status_risk
from cometnb._core.errors import APIError, CancelledError, CometError, ResponseError
from cometnb._storage.batches import BatchStore
from cometnb._storage.records import error_document
from cometnb.history import History
from cometnb.sim import SimServer
from tests.client.test_batch import sent_prompts
from tests.conftest import FAKE_KEY

pytestmark = pytest.mark.timeout(120)

FIELDS = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"}
UNPRICED = {"model": "qwen-image"}  # no built-in price: a failure's cost is unknown
ITEMS = [
    {"id": "mug", "prompt": "a ceramic mug with a fox glaze, studio light"},
    {"id": "tote", "prompt": "a linen tote bag printed with ferns, on a wooden table"},
    {"id": "lamp", "prompt": "a brass desk lamp with a green shade, evening light"},
    {"id": "socks", "prompt": "a pair of wool socks with a mountain pattern, flat lay"},
    {"id": "kettle", "prompt": "an enamel kettle on a camp stove, morning fog"},
    {"id": "scarf", "prompt": "a knitted scarf in ochre and teal, folded"},
]
# One fault per item in input order (concurrency 1): a read timeout, a refusal, a gateway
# timeout, a success, an answer that is not an image, a success.
FAULTS = [("hang", {"seconds": 3.0}), ("moderation", {}), ("504", {}), None]
FAULTS += [("non_image", {}), None]
HELD_BACK = {"mug", "lamp", "kettle"}  # the read timeout, the 504, the unusable answer
REWORDED = "The server at {host} stayed silent for {timeout:g} s; we stopped listening."


def _run(
    sim: SimServer, folder: str, name: str, fields: dict[str, str] = FIELDS
) -> tuple[set[str], dict[str, BillingRisk | None]]:
    for fault in FAULTS:
        if fault is None:
            sim.fault("latency", seconds=0.0)
        else:
            sim.fault(fault[0], **fault[1])
    hist = History(folder)
    client = Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, timeout=0.8)
    try:
        run = batch(ITEMS, name=name, client=client, progress=False, concurrency=1, **fields)
        held = {item.key for item in run.uncertain}
        failed = {record.origin for record in run.failed}
        assert len(failed) == 4  # the refusal and the three that may have been billed
    finally:
        client.close()
    rows = BatchStore(hist.path).states(name)
    return held, {key: row.billing for key, row in rows.items()}


def test_rewording_a_message_holds_back_the_same_items(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, risks = _run(sim, str(tmp_path / "plain"), "shop")
    assert held == HELD_BACK
    assert risks["mug"] is BillingRisk.SENT_NO_ANSWER
    assert risks["tote"] is BillingRisk.REFUSED
    assert risks["lamp"] is BillingRisk.SERVER_FAILED
    assert risks["kettle"] is BillingRisk.ANSWERED_UNUSABLE
    assert risks["socks"] is None and risks["scarf"] is None  # done: no failure

    monkeypatch.setattr(_exchange, "READ_TIMEOUT", REWORDED)
    reworded_held, reworded_risks = _run(sim, str(tmp_path / "reworded"), "shop")
    assert reworded_held == held
    assert reworded_risks == risks
    # The wording did change, and the old text match would have resent the timed-out item.
    hist = History(str(tmp_path / "reworded"))
    mug = next(r for r in hist.find(tag="batch:shop") if r.origin == "batch:shop/mug")
    error = mug.to_generation().error
    assert error is not None and "stayed silent" in error.message
    assert error.billing is BillingRisk.SENT_NO_ANSWER and may_be_billed(error)
    assert not legacy_may_be_billed(error)

    # A plain re-run sends only the refused item again; nothing that may have been billed.
    mark = sim.request_count
    hist2 = History(str(tmp_path / "reworded"))
    client = Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist2)
    try:
        again = batch(ITEMS, name="shop", client=client, progress=False, **FIELDS)
    finally:
        client.close()
    assert sent_prompts(sim, mark) == [ITEMS[1]["prompt"]]
    assert {item.key for item in again.uncertain} == HELD_BACK


def test_a_kill_after_the_record_landed_is_settled_from_the_stored_risk(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record of each failure landed, then the process died before the batch row said
    so: the next run settles the items from the records' stored risk, not their text. The
    model has no price, so no cost above $0 hints either (the old guess would resend)."""
    monkeypatch.setattr(_exchange, "READ_TIMEOUT", REWORDED)
    folder = str(tmp_path / "killed")
    _run(sim, folder, "shop", UNPRICED)
    mug = next(r for r in History(folder).find(tag="batch:shop") if r.origin.endswith("/mug"))
    assert not legacy_may_be_billed(mug.to_generation().error, mug.cost.usd)
    store = BatchStore(History(folder).path)
    try:
        for item in ITEMS:  # as a run killed between the record and the mark leaves them
            with store._write() as conn:
                conn.execute(
                    "UPDATE batch_items SET state = 'sending', record_id = NULL, error = NULL, "
                    "billing = NULL WHERE batch = 'shop' AND key = ?",
                    (item["id"],),
                )
    finally:
        store.close()
    mark = sim.request_count
    client = Client(api_key=FAKE_KEY, base_url=sim.base_url, history=History(folder))
    try:
        again = batch(ITEMS, name="shop", client=client, progress=False, **FIELDS)
    finally:
        client.close()
    assert {item.key for item in again.uncertain} == HELD_BACK
    assert sent_prompts(sim, mark) == [ITEMS[1]["prompt"]]  # the refusal, certainly unbilled


def test_records_from_before_the_risk_was_stored_use_the_legacy_guess() -> None:
    """An error document without ``billing`` (written before issue 22): the old rule, in one
    function: the class, the status, the English wording, or a cost kept above $0."""
    timeout = APIError("No response from h within 5 s (read timeout).")
    doc = error_document(timeout)
    assert "billing" not in doc  # nothing classified it: the old shape
    assert legacy_may_be_billed(timeout) and may_be_billed(timeout)
    assert legacy_may_be_billed(APIError("The connection to h dropped after the request was"))
    assert not legacy_may_be_billed(APIError("Could not connect to h: connection refused."))
    assert legacy_may_be_billed(APIError("gateway", status=504))
    assert not legacy_may_be_billed(APIError("overloaded", status=503))
    assert legacy_may_be_billed(ResponseError("cut off"))
    assert not legacy_may_be_billed(CometError("odd"))
    assert legacy_may_be_billed(CometError("odd"), cost_usd=0.006)  # the ledger charged it
    assert not legacy_may_be_billed(None, cost_usd=0.0)
    # Once classified, the stored risk wins over every guess, both ways.
    timeout.billing = BillingRisk.NOT_SENT
    assert not may_be_billed(timeout)
    assert error_document(timeout)["billing"] == "not_sent"


@pytest.mark.parametrize("risk", list(BillingRisk))
def test_every_risk_round_trips_through_the_error_document(risk: BillingRisk) -> None:
    from cometnb._storage.records import _error_from_info

    error = CancelledError("cancelled")
    error.billing = risk
    back = _error_from_info(error_document(error))
    assert back.billing is risk and back.may_be_billed is risk.may_be_billed
    assert BillingRisk.parse(risk.value) is risk


def test_the_risk_rules() -> None:
    free = {BillingRisk.NOT_SENT, BillingRisk.REFUSED, BillingRisk.RATE_LIMITED}
    assert {r for r in BillingRisk if not r.may_be_billed} == free
    assert status_risk(429) is status_risk(503) is BillingRisk.RATE_LIMITED
    assert status_risk(524) is status_risk(599) is BillingRisk.SERVER_FAILED
    assert status_risk(400) is status_risk(413) is BillingRisk.REFUSED
    # A free last attempt after one that may have been billed still counts as maybe billed.
    assert final_risk(BillingRisk.RATE_LIMITED, 1) is BillingRisk.EARLIER_ATTEMPT
    assert final_risk(BillingRisk.RATE_LIMITED, 0) is BillingRisk.RATE_LIMITED
    assert final_risk(BillingRisk.SERVER_FAILED, 1) is BillingRisk.SERVER_FAILED
    assert BillingRisk.parse("from a newer version") is None and BillingRisk.parse(None) is None
    assert CometError("plain").may_be_billed is None  # not classified: not known
