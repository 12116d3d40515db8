"""The panel's edit strip: add / remove references, uploads, the mask, fidelity per model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from _history_helpers import api_result, image_bytes

from cometnb._core import settings as _settings
from cometnb._core.edit_inputs import mask
from cometnb._notebook.panel_edit import EditStrip
from cometnb.history import History
from cometnb.history import history as cometnb_history
from cometnb.sim import SimServer
from cometnb.widget import Panel, panel


def _upload(name: str, data: bytes, mime: str = "image/png") -> dict[str, object]:
    # The shape ipywidgets 8 gives a kernel when a browser uploads a file.
    return {
        "name": name,
        "type": mime,
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime(2026, 11, 22, tzinfo=timezone.utc),
    }


def test_add_a_record_then_remove_it(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    rec = h.record_success(
        {"prompt": "a fox", "model": "gpt-image-2"}, api_result(image_bytes(64, 64)), elapsed_s=0
    )
    changes: list[int] = []
    strip = EditStrip(on_change=lambda: changes.append(1))
    assert not strip.active and strip.thumbs.layout.display == "none"
    assert strip.upload.layout.display is None  # an upload can start an edit
    assert strip.request_fields() == {}
    strip.add(rec)
    assert strip.active and strip.thumbs.layout.display is None
    assert strip.request_fields()["images"][0].record_id == rec.id
    assert len(strip.thumbs.children) == 1
    html = strip.thumbs.children[0].children[0].value
    assert "<img src='data:image/" in html and "record" in html
    remove = strip.thumbs.children[0].children[1]
    remove.click()
    assert not strip.active and strip.thumbs.children == () and changes == [1, 1]


def test_uploads_add_files_and_the_mask() -> None:
    strip = EditStrip()
    strip.set_model("gpt-image-2")
    strip.upload.value = (
        _upload("shoe.png", image_bytes(64, 64)),
        _upload("logo.jpg", image_bytes(20, 20, "JPEG"), "image/jpeg"),
    )
    assert [i.label for i in strip.images] == ["shoe.png", "logo.jpg"]
    # The button's "(N)" counts what the strip holds: stand-ins, no image bytes sent back.
    assert [u["name"] for u in strip.upload.value] == ["shoe.png", "logo.jpg"]
    assert all(len(u["content"]) == 0 for u in strip.upload.value)
    strip.mask_upload.value = (_upload("m.png", mask((64, 64), box=(0, 0, 10, 10))),)
    fields = strip.request_fields()
    assert fields["mask"].label == "m.png" and len(fields["images"]) == 2
    assert len(strip.thumbs.children) == 3
    assert [u["name"] for u in strip.mask_upload.value] == ["m.png"]
    strip.thumbs.children[2].children[1].click()  # remove the mask
    assert strip.mask is None and len(strip.images) == 2
    assert strip.mask_upload.value == () and len(strip.upload.value) == 2


def test_a_bad_upload_shows_an_error_and_adds_nothing() -> None:
    strip = EditStrip()
    strip.upload.value = (_upload("notes.png", b"not an image at all"),)
    assert strip.images == []
    assert "notes.png is not a PNG" in strip.error.value
    assert strip.error.layout.display is None


def test_fidelity_only_for_models_that_take_it() -> None:
    strip = EditStrip()
    strip.add(image_bytes(32, 32))
    strip.fidelity.value = "high"
    strip.set_model("gpt-image-2")
    assert strip.fidelity.layout.display == "none"
    assert "input_fidelity" not in strip.request_fields()
    strip.set_model("gpt-image-1")
    assert strip.fidelity.layout.display is None
    assert strip.request_fields()["input_fidelity"] == "high"
    strip.set_model("doubao-seedream-4-0-250828")  # no mask for seedream
    assert strip.mask_upload.layout.display == "none"
    strip.clear()
    assert not strip.active


# --- the strip inside the panel, against the simulator ------------------------------------------


@pytest.fixture
def live_panel(sim: SimServer, fake_key: str) -> Iterator[Panel]:
    _settings.active().base_url = sim.base_url
    _settings.set_session_key(fake_key)
    made = panel()
    try:
        yield made
    finally:
        made.cancel()


def _generate(p: Panel, prompt: str, model: str = "gpt-image-1-mini") -> None:
    p.prompt.value = prompt
    p.model.value = model
    p.generate_button.click()
    assert p.wait(30.0)


def test_edit_a_result_card_then_generate_edits_it(live_panel: Panel, sim: SimServer) -> None:
    p = live_panel
    _generate(p, "a lighthouse at dusk")
    assert p.edit_strip.thumbs.layout.display == "none"
    (card,) = p.gallery.children  # the card carries its own Edit, under its picture
    html, actions = card.children
    assert "cometnb-card" in html.value and "cometnb-result-actions" in actions._dom_classes
    (button,) = actions.children
    assert "cometnb-edit-result" in button._dom_classes and button.description == "Edit"
    button.click()
    assert p.edit_strip.active and p.edit_strip.images[0].record_id == p.generations[0].record_id
    _generate(p, "the same lighthouse at night")
    assert sim.requests[-1]["_path"] == "/v1/images/edits"
    assert [part["name"] for part in sim.requests[-1]["_parts"]] == ["image"]
    edited = p.generations[-1]
    assert (
        edited.ok and cometnb_history().get(edited.record_id).parent == p.generations[0].record_id
    )
    newest_card = p.gallery.value.split('class="cometnb-card"')[1]
    assert "cometnb-sources" in newest_card  # source -> result, beside the edited image
    assert len(p.gallery.edit_buttons) == 2
    p.gallery.edit_buttons[0].click()  # the newest card's Edit adds the edited result
    assert [i.record_id for i in p.edit_strip.images][-1] == edited.record_id


def test_edit_from_a_history_row_and_fidelity_per_model(live_panel: Panel, sim: SimServer) -> None:
    p = live_panel
    _generate(p, "a red fox")
    p.refresh_history()
    row = p.history_browser.rows[0]
    assert row.edit_button.layout.display is None
    row.edit_button.click()
    assert p.edit_strip.active
    p.model.value = "gpt-image-1"
    assert p.edit_strip.fidelity.layout.display is None
    p.edit_strip.fidelity.value = "high"
    _generate(p, "the fox, keep its face", model="gpt-image-1")
    assert sim.requests[-1]["input_fidelity"] == "high"
    p.model.value = "gpt-image-2"
    assert p.edit_strip.fidelity.layout.display == "none"


def test_a_refused_edit_says_why_and_sends_nothing(live_panel: Panel, sim: SimServer) -> None:
    p = live_panel
    p.edit_from(image_bytes(64, 64))
    p.prompt.value = "x"
    p.model.value = "dall-e-3"  # cannot edit
    assert p.submit() is None
    assert "dall-e-3 cannot take input images" in p.message.value
    assert sim.request_count == 0


def test_uploading_a_file_into_the_empty_strip_starts_an_edit(
    live_panel: Panel, sim: SimServer
) -> None:
    p = live_panel
    p.edit_strip.upload.value = (_upload("product.png", image_bytes(96, 96)),)
    _generate(p, "the product on a marble table")
    sent = sim.requests[-1]
    assert sent["_path"] == "/v1/images/edits"
    assert [(x["name"], x["filename"]) for x in sent["_parts"]] == [("image", "product.png")]
    assert cometnb_history()[-1].sources[0].label == "product.png"
