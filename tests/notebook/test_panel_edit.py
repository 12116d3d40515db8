"""The panel's edit strip: add / remove references, uploads, the mask, fidelity per model."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from _history_helpers import api_result, image_bytes

from cometnb._core.masks import mask
from cometnb._notebook.panel_edit import EditStrip
from cometnb.history import History


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
    assert not strip.active and strip.box.layout.display == "none"
    assert strip.request_fields() == {}
    strip.add(rec)
    assert strip.active and strip.box.layout.display is None
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
    assert strip.upload.value == ()  # reset so the same file can be chosen again
    strip.mask_upload.value = (_upload("m.png", mask((64, 64), box=(0, 0, 10, 10))),)
    fields = strip.request_fields()
    assert fields["mask"].label == "m.png" and len(fields["images"]) == 2
    assert len(strip.thumbs.children) == 3
    strip.thumbs.children[2].children[1].click()  # remove the mask
    assert strip.mask is None and len(strip.images) == 2


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
