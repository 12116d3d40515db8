"""The simulator serves GPT Image 2.5 / 2.6 (xhigh, max, complexity) and, when asked, answers a
retired id with 404 ``model_not_found`` in OpenAI's error shape (issue 23)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from cometnb._core.model_registry import SHUTDOWN_DATES, retired_message
from cometnb.sim import SimServer

KEY = "sk-sim-models-2x"


@pytest.fixture
def http(sim: SimServer) -> Iterator[httpx.Client]:
    """A client on the shared simulator; the retired fault is switched off again after."""
    client = httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"})
    with client:
        yield client
    sim.retired_gone = False
    assert not sim.errors


def generate(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/images/generations", json={"prompt": "a lighthouse, from a cliff", **body})


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("gpt-image-2.6-flare", {"quality": "xhigh", "complexity": "low"}),
        ("gpt-image-2.6-sunburst", {"quality": "max", "complexity": "high", "n": 2}),
        ("gpt-image-2.5-flare", {"quality": "xhigh", "size": "1536x1024"}),
        ("gpt-image-2.5-sunburst-2026-09-08", {"quality": "max", "output_format": "webp"}),
    ],
)
def test_new_models_and_qualities_are_served(
    http: httpx.Client, model: str, fields: dict[str, Any]
) -> None:
    answer = generate(http, model=model, **fields)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert len(doc["data"]) == fields.get("n", 1)
    image = Image.open(io.BytesIO(base64.b64decode(doc["data"][0]["b64_json"])))
    assert image.format == str(fields.get("output_format", "png")).upper()
    assert doc["usage"]["output_tokens"] > 0


def test_sim_refuses_what_the_model_does_not_take(http: httpx.Client) -> None:
    answer = generate(http, model="gpt-image-2.5-flare", complexity="low")
    assert answer.status_code == 400 and "complexity" in answer.json()["error"]["message"]
    answer = generate(http, model="gpt-image-2", quality="xhigh")
    assert answer.status_code == 400 and "xhigh" in answer.json()["error"]["message"]


def test_retired_ids_are_served_unless_asked(sim: SimServer, http: httpx.Client) -> None:
    assert generate(http, model="gpt-image-1-mini", quality="low").status_code == 200
    sim.retired_gone = True
    for model in sorted(SHUTDOWN_DATES):
        answer = generate(http, model=model)
        assert answer.status_code == 404, model
        error = answer.json()["error"]
        assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
        assert model in error["message"] and error["param"] is None
        assert retired_message(model) is not None
    # Live ids are unaffected by the fault.
    assert generate(http, model="gpt-image-2.6-flare", quality="low").status_code == 200


def test_retired_gone_is_a_constructor_option() -> None:
    with SimServer(retired_gone=True) as sim:
        assert sim.retired_gone
        with httpx.Client(base_url=sim.base_url, timeout=30) as client:
            answer = client.post(
                "/images/generations",
                json={"model": "dall-e-3", "prompt": "a red fox"},
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"
