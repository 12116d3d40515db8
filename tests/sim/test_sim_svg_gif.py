"""The simulator's SVG and GIF answers (gpt-image-2.6): a plain or a hostile SVG, selected like
its other variants, and an animated GIF of ``frame_count`` frames (issue 23 point 7)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from cometnb._core.images import inspect_image
from cometnb.sim import SimServer
from cometnb.sim.cli import _parse_args

KEY = "sk-sim-svg-gif-answers"


@pytest.fixture
def http(sim: SimServer) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"})
    with client:
        yield client
    sim.svg = "clean"
    assert not sim.errors


def answer(http: httpx.Client, **body: Any) -> tuple[dict[str, Any], bytes]:
    body = {"prompt": "a lighthouse logo", "model": "gpt-image-2.6-flare", **body}
    r = http.post("/images/generations", json=body, timeout=60)
    assert r.status_code == 200, r.text
    doc = r.json()
    return doc, base64.b64decode(doc["data"][0]["b64_json"])


def test_svg_clean_by_default_hostile_when_asked(sim: SimServer, http: httpx.Client) -> None:
    doc, clean = answer(http, output_format="svg", quality="low")
    assert doc["output_format"] == "svg" and doc["usage"]["output_tokens"] > 0
    assert clean.startswith(b"<?xml") and b"SIMULATED" in clean
    assert b"<script" not in clean and b"onload" not in clean
    assert inspect_image(clean) == ("svg", 1024, 1024)
    sim.svg = "hostile"
    _doc, hostile = answer(http, output_format="svg", quality="low")
    assert b"<script>" in hostile and b"onload=" in hostile and b'href="/etc/' in hostile
    assert inspect_image(hostile) == ("svg", 1024, 1024)  # still a well-formed SVG
    with pytest.raises(ValueError, match="'clean' or 'hostile'"):
        sim.svg = "evil"
    with SimServer(svg="hostile") as other:
        assert other.svg == "hostile"
    assert _parse_args(["--svg", "hostile"]).svg == "hostile"
    assert _parse_args([]).svg == "clean"


def test_the_prompt_is_escaped_in_the_drawing(http: httpx.Client) -> None:
    _doc, data = answer(http, output_format="svg", prompt="</text><script>x</script> & more")
    assert b"<script>" not in data and b"&lt;/text&gt;" in data


@pytest.mark.parametrize(
    ("frames", "ms", "side"),
    [(2, 20, 1024), (5, 60, 1024), (9, 200, 960), (12, 100, 816), (16, 30, 720)],
)
def test_a_gif_has_frame_count_frames_within_the_shared_pixel_budget(
    http: httpx.Client, frames: int, ms: int, side: int
) -> None:
    _doc, data = answer(
        http, output_format="gif", frame_count=frames, frame_duration_ms=ms, size="1024x1024"
    )
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "GIF" and img.n_frames == frames
        assert max(img.size) <= side and img.n_frames * img.width * img.height <= 8_294_400
        durations = []
        for k in range(img.n_frames):
            img.seek(k)
            durations.append(img.info["duration"])
    assert durations == [ms] * frames


def test_gif_defaults_follow_the_api(http: httpx.Client) -> None:
    _doc, data = answer(http, output_format="gif", size="1024x1024")
    with Image.open(io.BytesIO(data)) as img:
        assert img.n_frames == 9 and img.info["duration"] == 200


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("gpt-image-2", {"output_format": "svg"}, "output_format"),
        ("gpt-image-2.5-flare", {"output_format": "gif"}, "output_format"),
        ("gpt-image-2.6-flare", {"output_format": "svg", "n": 2}, "output_format"),
        ("gpt-image-2.6-flare", {"output_format": "gif", "frame_count": 20}, "frame_count"),
        ("gpt-image-2.6-flare", {"frame_count": 4}, "frame_count"),
    ],
)
def test_what_the_api_refuses_is_a_400(
    http: httpx.Client, model: str, fields: dict[str, Any], param: str
) -> None:
    r = http.post("/images/generations", json={"prompt": "a logo", "model": model, **fields})
    assert r.status_code == 400 and r.json()["error"]["param"] == param
