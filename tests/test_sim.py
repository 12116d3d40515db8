"""The offline simulator, driven with plain httpx against its real loopback socket."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from cometnb.sim import SimServer

FIXTURES = Path("/work/shared/fixtures")
KEY = "sk-cometnb-test-7f3a9c2e51d04b86a1e0"


@pytest.fixture
def http(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as client:
        yield client


def generate(http: httpx.Client, **body: Any) -> httpx.Response:
    body.setdefault("prompt", "a lighthouse in a storm")
    body.setdefault("model", "gpt-image-1")
    return http.post("/images/generations", json=body)


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    image.load()
    return image


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- happy paths --------------------------------------------------------------------------


def test_gpt_image_shape_matches_fixture(http: httpx.Client) -> None:
    r = generate(http, model="gpt-image-2", size="1536x1024", quality="low", output_format="jpeg")
    assert r.status_code == 200
    assert r.headers["X-CometNB-Simulator"] == "1"
    body = r.json()
    sample = fixture_json("gpt-image-2.json")
    assert set(sample) <= set(body)
    assert set(sample["usage"]) <= set(body["usage"])
    assert set(body["data"][0]) == {"b64_json"}
    assert (body["size"], body["quality"], body["output_format"]) == ("1536x1024", "low", "jpeg")
    assert body["background"] == "opaque"
    image = decode(body["data"][0]["b64_json"])
    assert (image.format, image.size) == ("JPEG", (1536, 1024))
