"""The panel at real sizes (issue 26): Edit carries the source's settings, failed rows say why
and retry, the static summary beside the widget, a denser history (size, quality, cost), the
model filter, search as you type, upload counts and mask checks, estimates that say what
"default" means, Cancel that drops the queue and charges nothing unsent, and a history that
sees other processes' records without Refresh. Against the loopback simulator and a seeded
200-record history (failures, edits with lineage, long prompts, six models, a typo'd model).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _history_helpers import image_bytes
from test_widget import WAIT_S, generate, text_of, wait_until
from test_widget import live as live  # the fixture: the simulator and a session key

from cometnb._core import settings as _settings
from cometnb._core.budget import ledger
from cometnb._core.edit_inputs import mask
from cometnb._notebook.panel_form import START_QUALITY
from cometnb._notebook.panel_history import ERROR_EXCERPT, FAILED_ONLY, HistoryBrowser
from cometnb.history import history
from cometnb.widget import Panel, panel

if TYPE_CHECKING:
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(120)
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seeded_200(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import _seed_history

    return _seed_history.seeded_folder(tmp_path_factory, 200)


@pytest.fixture
def p(live: SimServer, isolated_env: Path, seeded_200: Path) -> Iterator[Panel]:
    """A fresh panel on a copy of the 200-record history (copied before the panel opens)."""
    import _seed_history

    _seed_history.use_folder(seeded_200, isolated_env)
    made = panel()
    yield made
    made.cancel()  # what the other panel fixtures do: stop, wait, close
    made.wait(WAIT_S)
    made.close()


def count_refreshes(b: HistoryBrowser) -> list[int]:
    """Each call of ``b.refresh`` from now on appends one item."""
    calls: list[int] = []
    real = b.refresh

    def counting() -> None:
        calls.append(1)
        real()

    b.refresh = counting  # type: ignore[method-assign]
    return calls


def _row_of(p: Panel, record_id: str):  # type: ignore[no-untyped-def]
    b = p.history_browser
    index = next(i for i, r in enumerate(b.found) if r.id == record_id)
    b.pager.page = index // b.pager.page_size
    b.refresh()
    return next(r for r in b.rows if r.record.id == record_id)


# --- 1. Edit carries the source's settings ---------------------------------------------------


def test_edit_from_a_row_carries_model_size_quality_and_says_what_changed(p: Panel) -> None:
    source = next(r for r in reversed(history().records()) if r.model == "gpt-image-1-mini")
    assert source.ok and source.request["quality"] in ("low", "medium", "high")
    p.model.value, p.size.value, p.quality.value = "gpt-image-2", "1024x1024", "medium"
    was = p.spend.estimate()
    row = _row_of(p, source.id)
    row.edit_button.click()
    assert p.model.value == "gpt-image-1-mini"
    assert p.size.value == source.request["size"]
    assert p.quality.value == source.request["quality"]
    shown = text_of(p.message)
    assert f"Settings from record {source.id}" in shown
    assert f"was gpt-image-2 · 1024x1024 · medium ({was.label})" in shown  # type: ignore[union-attr]
    now = p.spend.estimate()
    assert now is not None and f"({now.label})" in shown
    assert f"now gpt-image-1-mini · {source.request['size']} · {source.request['quality']}" in shown
    # What Generate sends is what the form now says, edit input included.
    p.prompt.value = "the same, in winter"
    task = p.submit()
    assert task is not None and p.wait(WAIT_S)
    sent = history()[-1]
    assert sent.model == "gpt-image-1-mini" and sent.parent == source.id
    assert sent.request["quality"] == source.request["quality"]


def test_edit_says_nothing_extra_when_the_form_already_matches(p: Panel) -> None:
    source = next(r for r in reversed(history().records()) if r.model == "gpt-image-2" and r.ok)
    p.form.load_settings(source.request)
    p.edit_from(source)
    assert text_of(p.message) == f"Editing record {source.id}: Type what to change, then Generate."


def test_edit_of_a_model_that_cannot_edit_keeps_the_form_model(p: Panel) -> None:
    source = next(r for r in reversed(history().records()) if r.model == "dall-e-3" and r.ok)
    p.model.value = "gpt-image-1"
    p.edit_from(source)
    assert p.model.value == "gpt-image-1"
    assert "dall-e-3 cannot edit images: kept gpt-image-1" in text_of(p.message)


# --- 2. Failed rows: the reason, and Retry ---------------------------------------------------


def test_failed_rows_show_their_reason_with_the_full_text_one_click_away(p: Panel) -> None:
    b = p.history_browser
    failed = [r for r in b.rows if r.record.status != "ok"]
    assert failed, "the newest page holds failures"
    for row in failed:
        assert row.retry_button.layout.display is None
        assert row.edit_button.layout.display == "none"
        assert "cometnb-row-error" in row.info.value
    long_one = next(r for r in history() if len(r.error or "") > ERROR_EXCERPT)
    row = _row_of(p, long_one.id)
    assert "<details class='cometnb-row-error'>" in row.info.value  # one click opens it
    assert "(more)</summary>" in row.info.value
    assert long_one.error is not None and long_one.error.split()[-1] in row.info.value
    ok_row = next(r for r in b.rows if r.record.ok)
    assert ok_row.retry_button.layout.display == "none"
    assert "cometnb-row-error" not in ok_row.info.value


def test_retry_resends_the_same_request_through_the_normal_path(p: Panel, sim: SimServer) -> None:
    failed = next(
        r for r in reversed(history().records()) if r.status == "error" and r.model == "gpt-image-2"
    )
    before = len(history())
    _row_of(p, failed.id).retry_button.click()
    assert p.wait(WAIT_S)
    assert sim.request_count == 1
    again = history()[-1]
    assert len(history()) == before + 1 and again.ok
    assert again.prompt == failed.prompt and again.params == failed.params
    assert f"Retrying record {failed.id}" in text_of(p.message) or p.generations


def test_retry_is_refused_by_the_budget_like_generate(p: Panel, sim: SimServer) -> None:
    failed = next(r for r in reversed(history().records()) if r.status == "error"
                  and r.model == "gpt-image-2")  # fmt: skip
    _settings.active().budget = 0.001
    assert p.retry(failed) is None
    assert "refused" in text_of(p.message) and sim.request_count == 0


def test_retry_of_a_typo_model_is_refused_with_the_api_answer_not_a_crash(
    p: Panel, sim: SimServer
) -> None:
    import _seed_history

    typo = next(r for r in history() if r.model == _seed_history.TYPO_MODEL)
    task = p.retry(typo)
    assert task is not None and p.wait(WAIT_S)  # sent: CometAPI adds models, so never refused
    assert task.state == "error" and "gpt-imag-2" in text_of(p.message)


# --- 3. The static summary beside the widget -------------------------------------------------


def test_the_panel_carries_a_static_summary_with_settings_and_result_images(
    p: Panel, sim: SimServer
) -> None:
    generate(p, "a lighthouse at dusk", model="gpt-image-1-mini", quality="low")
    page = p.static_html()
    assert "cometnb-static" in page and "Panel(children=" not in page
    assert "gpt-image-1-mini · default size · low" in page
    assert "a lighthouse at dusk" in page
    assert page.count("<img src='data:image/") == 1
    bundle = p._repr_mimebundle_()
    assert bundle is not None and "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("cometnb panel (interactive")
    assert "Panel(children" not in bundle["text/plain"]


def test_displaying_makes_two_outputs_and_the_summary_follows_results(
    p: Panel, sim: SimServer
) -> None:
    shown: list[tuple[dict[str, object], str | None, bool]] = []

    def fake_display(data: dict[str, object], raw: bool = False, display_id: str | None = None,
                     update: bool = False) -> None:  # fmt: skip
        shown.append((data, display_id, update))

    import IPython.display as ipd

    mp = pytest.MonkeyPatch()
    mp.setattr(ipd, "display", fake_display)
    mp.setattr(
        ipd, "update_display", lambda d, raw, display_id: fake_display(d, raw, display_id, True)
    )
    try:
        p._ipython_display_()
        assert "application/vnd.jupyter.widget-view+json" in shown[0][0]
        assert shown[1][1] and "text/html" in shown[1][0] and not shown[1][2]
        generate(p, "a red fox in snow", model="gpt-image-1-mini")
        update = shown[-1]
        assert update[2] and update[1] == shown[1][1]
        assert "a red fox in snow" in str(update[0]["text/html"])
    finally:
        mp.undo()


# --- 4. A denser history: size, quality, cost; the model filter -------------------------------


def test_rows_show_size_quality_and_cost_rounded_to_the_cent(p: Panel) -> None:
    for row in p.history_browser.rows:
        rec = row.record
        meta = row.info.value
        assert str(rec.params.get("size")) in meta
        if rec.params.get("quality"):
            assert f" · {rec.params['quality']} · " in meta
        cost = rec.cost
        if cost.usd is None:
            assert "cost unknown" in meta
        elif cost.usd >= 0.01:
            assert f"${cost.usd:,.2f}" in meta


def test_the_model_filter_offers_only_models_that_made_an_image(p: Panel) -> None:
    import _seed_history

    options = list(p.history_browser.filter_model.options)
    plain = [v for label, v in options if v and not label.endswith(FAILED_ONLY)]
    failed_only = [label for label, v in options if label.endswith(FAILED_ONLY)]
    assert _seed_history.TYPO_MODEL not in plain
    assert failed_only == [_seed_history.TYPO_MODEL + FAILED_ONLY]
    assert len(plain) >= 5 and set(plain) <= set(_seed_history.MODELS)
    assert options[-1][1] == _seed_history.TYPO_MODEL  # listed last, apart from the others


def test_the_list_scales_with_the_page() -> None:
    from cometnb._notebook.panel_history import LIST_HEIGHT

    assert LIST_HEIGHT.startswith("min(70vh")


# --- 5. Search as you type --------------------------------------------------------------------


def test_search_waits_for_a_pause_in_typing_inside_a_loop(p: Panel) -> None:
    b = p.history_browser
    assert "as you type" in b.filter_text.placeholder
    total = len(b.found)
    refreshes = count_refreshes(b)

    async def typing() -> None:
        for text in ("r", "ra", "ram", "rame", "ramen"):
            b.filter_text.value = text
            await asyncio.sleep(0.02)
        assert refreshes == []  # nothing ran while typing
        while not refreshes:
            await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(typing(), WAIT_S))
    assert len(refreshes) == 1 and 0 < len(b.found) < total
    assert all("ramen" in r.prompt for r in b.found)


# --- 6. Upload counts, mask checks -------------------------------------------------------------


def _upload(name: str, data: bytes) -> dict[str, object]:
    from datetime import datetime, timezone

    return {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
            "last_modified": datetime(2026, 11, 22, tzinfo=timezone.utc)}  # fmt: skip


def test_a_wrong_size_or_alpha_less_mask_is_refused_on_upload(p: Panel) -> None:
    strip = p.edit_strip
    strip.set_model("gpt-image-1")
    strip.upload.value = (_upload("photo.png", image_bytes(64, 64)),)
    assert len(strip.upload.value) == 1 and strip.upload.value[0]["name"] == "photo.png"
    strip.mask_upload.value = (_upload("small.png", mask((32, 32), box=(0, 0, 4, 4))),)
    assert strip.mask is None and strip.mask_upload.value == ()
    assert "same size as the first image (64x64)" in strip.error.value
    strip.mask_upload.value = (_upload("opaque.png", image_bytes(64, 64)),)
    assert strip.mask is None and "alpha channel" in strip.error.value
    strip.mask_upload.value = (_upload("good.png", mask((64, 64), box=(0, 0, 8, 8))),)
    assert strip.mask is not None and strip.error.value == ""
    assert len(strip.mask_upload.value) == 1


def test_a_fully_transparent_mask_still_shows_and_says_it_edits_everywhere(p: Panel) -> None:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(out, "PNG")
    strip = p.edit_strip
    strip.set_model("gpt-image-1")
    strip.add(image_bytes(64, 64), label="photo.png")
    strip.set_mask(out.getvalue(), label="clear.png")
    card = strip.thumbs.children[-1].children[0].value
    assert "fully transparent: edits everywhere" in card
    assert "linear-gradient(45deg" in card and "<img src='data:image/" in card


# --- 7. What "default" means ------------------------------------------------------------------


def test_a_fresh_panel_asks_for_medium_and_default_quality_is_explained(p: Panel) -> None:
    assert p.quality.value == START_QUALITY == "medium"
    p.prompt.value = "a paper boat"
    p.model.value, p.size.value = "gpt-image-2", "1024x1024"
    assert text_of(p.spend.widget).startswith("≈ $0.05")
    p.quality.value = ""  # "default": the API chooses, may be high
    line = text_of(p.spend.widget)
    assert line.startswith("≈ $0.21")
    assert "quality left to the API: priced at the most it may choose" in line


# --- 9. Cancel -------------------------------------------------------------------------------


def test_cancel_drops_the_queue_and_charges_nothing_unsent(p: Panel, sim: SimServer) -> None:
    sim.fault("hang", seconds=5)
    spent = ledger().usd
    p.prompt.value, p.model.value = "a request that never answers", "gpt-image-1-mini"
    p.generate_button.click()
    wait_until(lambda: sim.request_count >= 1)
    p.prompt.value = "queued one"
    p.generate_button.click()
    p.prompt.value = "queued two"
    p.generate_button.click()
    assert p.tasks.queued == 2
    p.cancel_button.click()
    assert p.wait(WAIT_S)
    message = text_of(p.message)
    assert "may have been billed" in message and "Dropped 2 queued requests." in message
    assert sim.request_count == 1  # the queued ones never started
    assert [t.state for t in p.tasks.done[-3:]] == ["cancelled"] * 3
    sent = history()[-1]
    assert sent.status == "cancelled" and sent.cost.usd and sent.cost.usd > 0
    assert ledger().usd == pytest.approx(spent + sent.cost.usd)  # it may have been billed


def test_a_cancel_before_the_post_is_not_charged(p: Panel, sim: SimServer) -> None:
    """Cancelled while waiting for its turn (as on a rate limit): never sent, so $0."""
    import cometnb._client.client as base
    from cometnb._client.exchange import Sleep

    spent = ledger().usd
    real = base.request_steps

    waiting = threading.Event()

    def waits_first(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        waiting.set()
        yield Sleep(30)  # what the pacer yields while the rate limit holds a request back
        return (yield from real(*args, **kwargs))  # type: ignore[arg-type]

    mp = pytest.MonkeyPatch()
    mp.setattr(base, "request_steps", waits_first)
    try:
        p.prompt.value, p.model.value = "never leaves", "gpt-image-1-mini"
        task = p.submit()
        assert task is not None
        assert waiting.wait(WAIT_S)  # inside the exchange, before any POST
        p.cancel()
        assert p.wait(WAIT_S)
    finally:
        mp.undo()
    assert text_of(p.message) == "Cancelled before the request was sent: not charged."
    rec = history()[-1]
    assert rec.status == "cancelled" and rec.prompt == "never leaves"
    assert rec.cost.usd == 0 and "cancelled before sending" in rec.cost.basis
    assert ledger().usd == pytest.approx(spent) and sim.request_count == 0


# --- 10. Other processes' records, without Refresh --------------------------------------------


def test_revision_changes_only_when_the_index_does(tmp_path: Path) -> None:
    from cometnb._storage.folder import History

    h = History(tmp_path / "h")
    assert h.revision() == (0,)
    import _seed_history

    _seed_history.seed(tmp_path / "h", 3)
    first = h.revision()
    assert first != (0,) and h.revision() == first  # reading changes nothing
    _seed_history.seed(tmp_path / "h", 1)  # another History object: another connection
    assert h.revision() != first


def test_a_displayed_panel_sees_another_process_write_without_refresh(
    p: Panel, isolated_env: Path
) -> None:
    b = p.history_browser
    before = len(b.found)
    refreshes = count_refreshes(b)

    async def displayed() -> None:
        assert p.watch_history(every_s=0.1)
        await asyncio.sleep(0.5)
        assert refreshes == []  # nothing changed: polls did not re-read the list
        code = f"import _seed_history; _seed_history.seed({str(isolated_env)!r}, 2)"
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=TESTS)
        assert await asyncio.wait_for(proc.wait(), WAIT_S) == 0
        deadline = time.monotonic() + WAIT_S
        while len(b.found) < before + 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert p._watcher is not None
        p._watcher.cancel()

    asyncio.run(asyncio.wait_for(displayed(), WAIT_S * 2))
    assert len(b.found) == before + 2 and len(refreshes) >= 1


def test_a_budget_set_after_display_turns_the_line_into_a_warning_without_a_click(
    p: Panel,
) -> None:
    p.prompt.value, p.model.value, p.size.value = "a paper boat", "gpt-image-2", "1024x1024"
    assert "over budget" not in text_of(p.spend.widget)

    async def displayed() -> None:
        assert p.watch_history(every_s=0.05)
        _settings.active().budget = 0.01  # what %config CometImg.budget = 0.01 does
        while "over budget" not in text_of(p.spend.widget):
            await asyncio.sleep(0.02)
        assert p._watcher is not None
        p._watcher.cancel()

    asyncio.run(asyncio.wait_for(displayed(), WAIT_S))
    assert "$0.010 left of $0.01" in text_of(p.spend.widget)
    assert p.submit() is None and "refused" in text_of(p.message)
