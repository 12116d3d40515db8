"""The simulator serves every model the client sends to ``/v1/images/edits`` (API_FACTS §7),
edit-only models on that route alone, with the client's own input rules; its request log
describes each file part by its length and hash, never its bytes."""

from __future__ import annotations

import httpx
import pytest
from _history_helpers import image_bytes
from conftest import FAKE_KEY

from cometnb import Client, ValidationError
from cometnb._core.model_registry import EDIT_CAPABILITIES
from cometnb.history import History
from cometnb.sim import SimServer

_MULTIPART_EDITORS = sorted(
    name for name, caps in EDIT_CAPABILITIES.items() if caps.can_edit and caps.route == "multipart"
)
_HEADERS = {"Authorization": f"Bearer {FAKE_KEY}"}


def _photo(side: int = 128) -> bytes:
    return image_bytes(side, side, "PNG", (40, 140, 90))


@pytest.mark.parametrize("model", _MULTIPART_EDITORS)
def test_every_model_the_client_edits_with_is_served(
    client: Client, sim: SimServer, hist: History, model: str
) -> None:
    gen = client.edit("the same bottle, on marble", _photo(), model=model)
    assert gen.ok, gen.error
    assert sim.requests[-1]["_path"] == "/v1/images/edits"
    assert sim.requests[-1]["model"] == model
    assert hist[-1].kind == "edit" and len(hist[-1].sources) == 1


@pytest.mark.parametrize("model", ["qwen-image-edit", "doubao-seededit-3-0-i2i-250628"])
def test_edit_only_models_are_not_served_as_generations(sim: SimServer, model: str) -> None:
    body = {"model": model, "prompt": "a bottle on marble"}
    reply = httpx.post(f"{sim.base_url}/images/generations", json=body, headers=_HEADERS)
    assert reply.status_code == 404
    assert f"model {model} is not available" in reply.json()["error"]["message"]


def test_seededit_takes_one_image_on_both_sides(
    client: Client, sim: SimServer, hist: History
) -> None:
    model = "doubao-seededit-3-0-i2i-250628"
    with pytest.raises(ValidationError, match=f"{model} takes one input image; got 2"):
        client.edit("x", [_photo(), _photo(64)], model=model)
    assert sim.request_count == 0
    files = [
        ("image[]", ("a.png", _photo(), "image/png")),
        ("image[]", ("b.png", _photo(64), "image/png")),
    ]
    data = {"model": model, "prompt": "x"}
    reply = httpx.post(f"{sim.base_url}/images/edits", data=data, files=files, headers=_HEADERS)
    assert reply.status_code == 400
    assert "takes one input image; got 2" in reply.json()["error"]["message"]


def test_the_request_log_gives_each_part_its_length_not_its_bytes(
    client: Client, sim: SimServer
) -> None:
    photo = _photo()
    assert client.edit("x", photo, model="qwen-image-edit").ok
    (part,) = sim.requests[-1]["_parts"]
    assert set(part) == {"name", "filename", "content_type", "bytes", "sha256"}
    assert part["bytes"] == len(photo) and isinstance(part["bytes"], int)
    assert SimServer.requests.__doc__ is not None and "``bytes``" in SimServer.requests.__doc__
