"""``usage`` is data from outside (issue 21, point 3).

A billed image is always stored, whatever its ``usage`` says: ``NaN`` and ``Infinity`` (which
SQLite's JSON functions reject: the record was lost, and ``repair()`` then raised) are kept as
text; a count that is missing, zero, negative or prices the image far below the least it can
cost is not believed: the cost is the estimate, labelled, and the session budget is charged
the estimate, so the next request cannot slip past it.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FAKE_KEY
from PIL import Image

from cometnb._client.client import Client
from cometnb._core import settings as _settings
from cometnb._core.errors import BudgetError
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import estimate, usage_problem
from cometnb.history import History

pytestmark = pytest.mark.timeout(60)

BASE = "http://api.test/v1"
MODEL, SIZE, QUALITY = "gpt-image-1", "1024x1024", "high"
NAN, INF = float("nan"), float("inf")

BAD_USAGE: dict[str, dict[str, Any]] = {
    "nan-output": {"input_tokens": 50, "output_tokens": NAN},
    "infinite-input": {"input_tokens": INF, "output_tokens": 4160},
    "nan-detail": {
        "input_tokens": 50,
        "output_tokens": 4160,
        "output_tokens_details": {"image_tokens": NAN, "text_tokens": 0},
    },
    "missing-output": {"input_tokens": 50},
    "zero": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
    "negative": {"input_tokens": 50, "output_tokens": -4160},
    "under-reported": {"input_tokens": 50, "output_tokens": 3},
    "a-word": {"input_tokens": 50, "output_tokens": "lots"},
}


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 90, 160)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _client(hist: History, usage: dict[str, Any]) -> Client:
    png = _png()

    def answer(request: httpx.Request) -> httpx.Response:
        payload = {"created": 1, "data": [{"b64_json": png}], "usage": usage}
        # json.dumps writes NaN / Infinity as bare words, as a misbehaving server would.
        return httpx.Response(200, content=json.dumps(payload).encode())

    return Client(FAKE_KEY, BASE, history=hist, transport=httpx.MockTransport(answer))


def _estimate() -> float:
    usd = estimate(ImageRequest("a lighthouse", MODEL, size=SIZE, quality=QUALITY)).usd
    assert usd is not None and usd > 0.1
    return usd


@pytest.mark.parametrize("name", sorted(BAD_USAGE))
def test_bad_usage_keeps_the_image_and_charges_the_estimate(tmp_path: Path, name: str) -> None:
    usage = BAD_USAGE[name]
    hist = History(tmp_path / "h")
    with _client(hist, usage) as client:
        gen = client.generate("a lighthouse", model=MODEL, size=SIZE, quality=QUALITY)
    assert gen.ok and gen.images[0].path.is_file()
    assert gen.cost.usd == pytest.approx(_estimate()) and gen.cost.estimated
    assert "usage implausible" in gen.cost.basis
    reopened = History(tmp_path / "h")
    assert [r.status for r in reopened] == ["ok"], "the billed image was not recorded"
    record = reopened[-1]
    assert record.cost.usd == pytest.approx(_estimate())
    stored = record.usage or {}
    for key, value in usage.items():  # the raw values are kept, non-finite ones as text
        if isinstance(value, float) and not math.isfinite(value):
            assert stored[key] == ("NaN" if math.isnan(value) else "Infinity")
        elif not isinstance(value, dict):
            assert stored[key] == value
    assert reopened.spend() == pytest.approx(_estimate())
    report = reopened.repair()  # raised "malformed JSON" on these records before
    assert report is not None and len(History(tmp_path / "h")) == 1


def test_a_rebuilt_index_keeps_a_record_with_nan_usage(tmp_path: Path) -> None:
    hist = History(tmp_path / "h")
    with _client(hist, BAD_USAGE["nan-output"]) as client:
        gen = client.generate("a lighthouse", model=MODEL, size=SIZE, quality=QUALITY)
    hist.close()
    (tmp_path / "h" / "index.sqlite3").write_bytes(b"not a database")
    History(tmp_path / "h").repair()
    assert [r.id for r in History(tmp_path / "h")] == [gen.record_id]


def test_under_reported_usage_does_not_let_the_next_request_past_the_budget(
    tmp_path: Path,
) -> None:
    _settings.active().budget = _estimate() * 1.5  # room for one request, not two
    hist = History(tmp_path / "h")
    with _client(hist, BAD_USAGE["under-reported"]) as client:
        first = client.generate("a lighthouse", model=MODEL, size=SIZE, quality=QUALITY)
        assert first.ok
        with pytest.raises(BudgetError):
            client.generate("a second lighthouse", model=MODEL, size=SIZE, quality=QUALITY)
    assert len(History(tmp_path / "h")) == 1


def test_plausible_usage_is_still_believed(tmp_path: Path) -> None:
    hist = History(tmp_path / "h")
    usage = {"input_tokens": 50, "output_tokens": 4160}
    assert usage_problem(usage) is None
    with _client(hist, usage) as client:
        gen = client.generate("a lighthouse", model=MODEL, size=SIZE, quality=QUALITY)
    assert not gen.cost.estimated and gen.cost.basis.startswith("usage:")
    assert gen.cost.usd == pytest.approx(_estimate(), rel=0.05)
