"""The simulator's side lookups: the public catalog's documented shape, and the quota endpoint
(API_FACTS §11): the documented shape, the account charged for what it answers, the faults,
and the key (in the query string) kept out of its log."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest import FAKE_KEY, SHARED_FIXTURES

from cometnb._core.generations import ImageRequest
from cometnb._core.prices import estimate
from cometnb.sim import SimServer
from cometnb.sim.lookups import QUOTA_FAULTS, hide_key


def _ask(sim: SimServer, **params: str) -> httpx.Response:
    return httpx.get(sim.quota_url, params={"key": FAKE_KEY, **params}, timeout=10)


def test_the_documented_shape(sim: SimServer) -> None:
    sim.quota.total_usd, sim.quota.key_remaining_usd = 12.5, 3.0
    body = _ask(sim, start_date="2026-12-01", end_date="2026-12-05").json()
    assert set(body) == {
        "username", "total_quota", "total_used_quota", "request_count", "keys", "daily_quota"
    }  # fmt: skip
    assert body["total_quota"] == 12.5 and body["keys"][0]["remain_quota"] == 3.0
    assert list(body["daily_quota"]) == ["2026-12-01"]
    sim.quota.key_remaining_usd = None
    assert _ask(sim).json()["keys"][0]["remain_quota"] == -1  # unlimited
    assert "daily_quota" not in _ask(sim).json()


def test_answered_requests_are_charged_at_their_estimate(sim: SimServer) -> None:
    sim.quota.total_usd = 10.0
    headers = {"Authorization": f"Bearer {FAKE_KEY}"}
    bodies = [
        {"model": "gpt-image-2", "prompt": "a", "size": "1024x1024", "quality": q}
        for q in ("low", "medium", "high")
    ]
    for body in bodies:
        assert httpx.post(f"{sim.base_url}/images/generations", json=body, headers=headers,
                          timeout=30).status_code == 200  # fmt: skip
    refused = {"model": "gpt-image-2", "prompt": "a", "quality": "xhigh"}
    assert httpx.post(f"{sim.base_url}/images/generations", json=refused, headers=headers,
                      timeout=30).status_code == 400  # fmt: skip
    spent = sum(estimate(ImageRequest(**b)).usd or 0.0 for b in bodies)
    answer = _ask(sim).json()
    assert answer["total_quota"] == pytest.approx(10.0 - spent, abs=1e-6)
    assert answer["total_used_quota"] == pytest.approx(spent, abs=1e-6)


@pytest.mark.parametrize("fault", [f for f in QUOTA_FAULTS if f != "slow"])
def test_each_fault(sim: SimServer, fault: str) -> None:
    sim.quota.fault = fault
    reply = _ask(sim)
    expected = {"500": 500, "401": 401, "html": 502, "not_json": 200, "shape": 200}[fault]
    assert reply.status_code == expected
    if fault == "shape":
        assert "total_quota" not in reply.json()


def test_a_missing_or_wrong_key_is_401() -> None:
    with SimServer(api_key=FAKE_KEY) as sim:
        assert httpx.get(sim.quota_url, timeout=10).status_code == 401
        assert _ask(sim).status_code == 200
        wrong = httpx.get(sim.quota_url, params={"key": "sk-nope-0000000000000000"}, timeout=10)
        assert wrong.status_code == 401 and "sk-nope" not in wrong.text


def test_a_verbose_simulator_never_logs_the_key(capsys: Any) -> None:
    assert hide_key(f"GET /user/quota?key={FAKE_KEY}&x=1 HTTP/1.1") == (
        "GET /user/quota?key=***&x=1 HTTP/1.1"
    )
    with SimServer(verbose=True) as sim:
        assert _ask(sim).status_code == 200
    err = capsys.readouterr().err
    assert "/user/quota?key=***" in err and FAKE_KEY not in err


def test_public_catalog_has_the_documented_shape(sim: SimServer) -> None:
    """``GET /api/models`` (no key) answers in the shape of shared/fixtures/api-models.json."""
    root = sim.base_url.removesuffix("/v1")
    answer = httpx.get(f"{root}/api/models", timeout=10)
    assert answer.status_code == 200
    served = answer.json()
    sample = json.loads((SHARED_FIXTURES / "api-models.json").read_text())
    assert set(served) == set(sample) and served["success"] is True
    entry_keys = {k for e in sample["data"] for k in e}
    pricing_keys = {k for e in sample["data"] for k in e["pricing"]}
    by_id = {e["id"]: e for e in served["data"]}
    for entry in served["data"]:
        assert set(entry) == entry_keys and set(entry["pricing"]) == pricing_keys
    assert by_id["gpt-image-2"]["pricing"] == sample["data"][0]["pricing"]
    assert by_id["dall-e-3"]["pricing"]["per_request"] == 0.04
