"""The panel's account parts: the markup upload beside the mask (2.6 only, never with a mask)
and the balance line beside the session's spend (read at opening and after each run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from _history_helpers import image_bytes
from _markup import markup_png
from conftest import FAKE_KEY
from test_widget import WAIT_S, text_of, wait_until

from cometnb._core import settings as _settings
from cometnb._core.budget import account
from cometnb._core.edit_inputs import mask
from cometnb._notebook.panel_edit import EditStrip
from cometnb.history import history as cometnb_history
from cometnb.sim import SimServer
from cometnb.widget import Panel, panel

pytestmark = pytest.mark.timeout(90)


def _upload(name: str, data: bytes) -> dict[str, object]:
    return {
        "name": name,
        "type": "image/png",
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime(2026, 12, 5, tzinfo=timezone.utc),
    }


@pytest.fixture
def p(sim: SimServer) -> Iterator[Panel]:
    """A panel against the simulator, its quota endpoint configured as the balance URL."""
    _settings.active().base_url = sim.base_url
    _settings.active().balance_url = sim.quota_url
    _settings.set_session_key(FAKE_KEY)
    made = panel()
    try:
        yield made
    finally:
        made.cancel()


# --- markup -----------------------------------------------------------------------------------


def test_the_markup_upload_shows_only_for_models_that_take_it() -> None:
    strip = EditStrip()
    strip.set_model("gpt-image-2.6-flare")
    assert strip.markup_upload.layout.display == "none"  # nothing to annotate yet
    strip.upload.value = (_upload("desk.png", image_bytes(128, 128)),)
    assert strip.markup_upload.layout.display is None
    assert strip.mask_upload.layout.display is None  # beside the mask
    for model in (
        "gpt-image-2",
        "gpt-image-2.5-flare",
        "gpt-image-1.5",
        "doubao-seedream-4-0-250828",
    ):
        strip.set_model(model)
        assert strip.markup_upload.layout.display == "none", model
    strip.set_model("gpt-image-2.6-sunburst")
    assert strip.markup_upload.layout.display is None


def test_a_markup_upload_is_checked_counted_and_sent() -> None:
    strip = EditStrip()
    strip.set_model("gpt-image-2.6-flare")
    strip.upload.value = (_upload("desk.png", image_bytes(128, 128)),)
    strip.markup_upload.value = (_upload("small.png", markup_png(64)),)
    assert strip.markup is None and "Markup not used" in strip.error.value
    assert "same size as the first image (128x128)" in strip.error.value
    strip.markup_upload.value = (_upload("arrows.png", markup_png(128)),)
    assert strip.markup is not None and strip.markup.label == "arrows.png"
    assert [u["name"] for u in strip.markup_upload.value] == ["arrows.png"]
    fields = strip.request_fields()
    assert fields["markup"] is strip.markup and fields["mask"] is None
    thumbs = [c.children[0].value for c in strip.thumbs.children]
    assert len(thumbs) == 2 and "markup: arrows.png" in thumbs[1]
    # A mask now would make both: refused, the markup kept.
    strip.mask_upload.value = (_upload("m.png", mask((128, 128), box=(0, 0, 20, 20))),)
    assert strip.mask is None and "markup cannot be combined with a mask" in strip.error.value
    remove = strip.thumbs.children[1].children[1]
    assert "cometnb-edit-remove-markup" in remove._dom_classes
    remove.click()
    assert strip.markup is None and strip.markup_upload.value == ()
    strip.mask_upload.value = (_upload("m.png", mask((128, 128), box=(0, 0, 20, 20))),)
    assert strip.mask is not None
    strip.markup_upload.value = (_upload("arrows.png", markup_png(128)),)
    assert strip.markup is None and "cannot be combined" in strip.error.value
    strip.clear()
    assert strip.request_fields() == {} and strip.mask is None and strip.markup is None


def test_generate_sends_the_markup_and_the_card_shows_it(p: Panel, sim: SimServer) -> None:
    p.model.value = "gpt-image-2.6-flare"
    p.edit_strip.upload.value = (_upload("desk.png", image_bytes(256, 256)),)
    p.edit_strip.markup_upload.value = (_upload("arrows.png", markup_png(256)),)
    p.prompt.value = "make the circled cup red"
    p.generate_button.click()
    assert p.wait(WAIT_S)
    assert [part["name"] for part in sim.requests[-1]["_parts"]] == ["image", "markup"]
    edited = p.generations[-1]
    assert edited.ok
    rec = cometnb_history().get(edited.record_id)
    assert [s.role for s in rec.sources] == ["image", "markup"]
    # The record's card shows its inputs: the markup captioned as such, over a checkerboard.
    assert "markup arrows.png" in rec._repr_html_()


# --- the balance ------------------------------------------------------------------------------


def test_the_balance_sits_beside_the_spend_and_follows_each_run(p: Panel, sim: SimServer) -> None:
    row = next(c for c in p.children if p.generate_button in getattr(c, "children", ()))
    children = list(row.children)
    assert children.index(p.balance.widget) == children.index(p.spend.widget) + 1
    assert text_of(p.balance.widget) == "· balance $50.00" and sim.quota.asked == 1
    # Typing does not read it again.
    for text in ("a", "a paper", "a paper boat"):
        p.prompt.value = text
    p.quality.value = "low"
    assert sim.quota.asked == 1
    sim.quota.total_usd = 41.27  # the account spent elsewhere meanwhile
    p.model.value = "gpt-image-2"
    p.generate_button.click()
    assert p.wait(WAIT_S)
    wait_until(lambda: sim.quota.asked == 2)
    wait_until(lambda: "41.2" in text_of(p.balance.widget))
    assert "left on the account" in str(p.balance.widget.value)  # the tooltip: the whole answer


def test_a_failing_balance_says_unavailable_and_generate_still_works(
    p: Panel, sim: SimServer, capfd: pytest.CaptureFixture[str]
) -> None:
    sim.quota.fault = "500"
    p.balance.refresh()
    assert text_of(p.balance.widget) == "· balance unavailable"
    assert "HTTP 500" in str(p.balance.widget.value)
    p.prompt.value, p.model.value, p.quality.value = "a kite", "gpt-image-2", "low"
    p.generate_button.click()
    assert p.wait(WAIT_S) and p.generations[-1].ok
    err = capfd.readouterr().err
    assert err.count("could not be read") == 1 and FAKE_KEY not in err


def test_a_balance_below_the_estimate_refuses_generate(p: Panel, sim: SimServer) -> None:
    sim.quota.total_usd = 0.05
    p.balance.refresh()
    assert account().last is not None and text_of(p.balance.widget) == "· balance $0.05"
    p.prompt.value, p.model.value = "a lighthouse", "gpt-image-2"
    p.size.value, p.quality.value = "1024x1024", "high"  # ≈ $0.21
    assert p.submit() is None
    assert "more than the account's balance of $0.05" in text_of(p.message)
    assert sim.request_count == 0


def test_no_balance_line_for_another_server(sim: SimServer) -> None:
    _settings.active().base_url = sim.base_url  # no balance_url: not CometAPI's account
    _settings.set_session_key(FAKE_KEY)
    made = panel()
    try:
        assert made.balance.widget.value == "" and sim.quota.asked == 0
    finally:
        made.cancel()
