"""The widget panel, driven like a user would: set values, click buttons, read what it shows.

Outside a kernel the panel runs generations on cometnb's private loop thread; ``panel.wait()``
blocks until the queue is empty. Every test talks to the loopback simulator.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pytest

from cometnb._core import settings as _settings
from cometnb._core.errors import short_message
from cometnb._notebook.panel_form import START_QUALITY, PromptArea, RequestForm
from cometnb._notebook.panel_run import PanelTask, TaskQueue
from cometnb.widget import Panel, panel

if TYPE_CHECKING:
    from cometnb.sim import SimServer

WAIT_S = 30.0


def visible(form: RequestForm) -> set[str]:
    return {name for name, f in form.fields.items() if f.visible}


def text_of(widget: W.HTML) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", str(widget.value)))


def wait_until(cond: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def descendants(widget: W.Widget) -> Iterator[W.Widget]:
    """The widget and everything displayed inside it (children, recursively)."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from descendants(child)


def record_values(widget: W.Widget, name: str = "value") -> list[Any]:
    """Every value a widget trait takes from now on (the panel updates from the loop thread)."""
    seen: list[Any] = []
    widget.observe(lambda change: seen.append(change["new"]), names=name)
    return seen


@pytest.fixture
def live(sim: SimServer, fake_key: str) -> SimServer:
    """Point the process settings at the simulator with a session key, as a user would."""
    _settings.active().base_url = sim.base_url
    _settings.set_session_key(fake_key)
    return sim


@pytest.fixture
def form() -> RequestForm:
    return RequestForm()


@pytest.fixture
def p(live: SimServer) -> Iterator[Panel]:
    made = panel()
    try:
        yield made
    finally:
        made.cancel()
        made.wait(WAIT_S)
        made.close()


def generate(p: Panel, prompt: str, model: str = "gpt-image-1-mini", **values: Any) -> None:
    p.prompt.value = prompt
    p.model.value = model
    for name, value in values.items():
        getattr(p, name).value = value
    p.generate_button.click()
    assert p.wait(WAIT_S)


# --- structure and model-dependent controls ---------------------------------------------------


def test_panel_is_a_vbox_with_stable_css_classes(p: Panel) -> None:
    assert isinstance(p, W.VBox)
    assert "cometnb-panel" in p._dom_classes
    for widget, css in [
        (p.generate_button, "cometnb-generate"),
        (p.prompt, "cometnb-prompt"),
        (p.model, "cometnb-model"),
        (p.gallery, "cometnb-gallery"),
        (p.history_browser.box, "cometnb-history"),
        (p.history_browser.compare_view, "cometnb-compare"),
    ]:
        assert css in widget._dom_classes
    assert isinstance(p.prompt, PromptArea)
    assert p.prompt.placeholder.startswith("Describe the image")
    assert isinstance(p.key, W.Password)


def test_model_choices_list_known_models_and_allow_free_entry(form: RequestForm) -> None:
    from cometnb._core.model_registry import KNOWN_MODELS, offered_models

    assert tuple(form.model.options) == offered_models()
    assert sorted(form.model.options) == sorted(KNOWN_MODELS)
    assert form.model.value == _settings.active().model
    assert form.model.ensure_option is False


def test_switching_model_swaps_controls(form: RequestForm) -> None:
    form.model.value = "gpt-image-2"
    assert {"size", "quality", "output_format", "background", "moderation"} <= visible(form)
    assert {"partial_images", "n"} <= visible(form)
    assert "style" not in visible(form)
    assert "3840x2160" in form.size.options

    form.model.value = "dall-e-3"
    assert "style" in visible(form)
    assert not {"output_format", "background", "moderation", "partial_images"} & visible(form)
    assert tuple(form.size.options) == ("1024x1024", "1792x1024", "1024x1792")
    assert [v for _label, v in form.quality.options] == ["", "standard", "hd"]

    form.model.value = "some-new-model"  # unknown: generic controls only
    assert visible(form) >= {"prompt", "model", "size", "quality", "n"}
    assert not {"style", "output_format", "background", "partial_images"} & visible(form)


def test_switching_model_keeps_values_that_still_apply(form: RequestForm) -> None:
    form.model.value = "gpt-image-1"
    form.quality.value, form.size.value, form.n.value = "high", "1536x1024", 3
    form.model.value = "gpt-image-1.5"
    assert (form.quality.value, form.size.value, form.n.value) == ("high", "1536x1024", 3)
    form.model.value = "dall-e-3"  # high, 1536x1024 and n=3 do not apply
    assert (form.quality.value, form.size.value, form.n.value) == ("", "", 1)
    form.quality.value = "hd"
    form.model.value = "dall-e-2"
    assert form.quality.value == ""


def test_compression_shows_only_for_lossy_formats(form: RequestForm) -> None:
    form.model.value = "gpt-image-1"
    assert "output_compression" not in visible(form)
    form.output_format.value = "webp"
    assert "output_compression" in visible(form)
    form.output_compression.value = 70
    assert form.values()["output_compression"] == 70
    form.output_format.value = "png"
    assert "output_compression" not in form.values()


def test_partial_previews_turn_on_streaming(form: RequestForm) -> None:
    form.model.value = "gpt-image-1"
    form.partial_images.value = 2
    assert form.values() == {"quality": START_QUALITY, "stream": True, "partial_images": 2}
    form.model.value = "dall-e-2"  # no streaming: control hidden and reset
    assert "partial_images" not in visible(form)
    assert "stream" not in form.values()


# --- the API key field ------------------------------------------------------------------------


def test_key_field_only_when_no_key_and_it_sets_the_session_key(sim: SimServer) -> None:
    form = RequestForm()
    assert "key" in visible(form)
    form.key.value = "  sk-typed-in-the-panel-123  "
    assert _settings.resolve_api_key() == "sk-typed-in-the-panel-123"
    assert form.key.value == ""  # not kept in widget state (a saved notebook would hold it)
    assert "key" not in visible(form)
    assert "session" in text_of(form.key_note)
    assert "key" not in visible(RequestForm())


def test_no_key_refuses_before_sending(sim: SimServer) -> None:
    _settings.active().base_url = sim.base_url
    made = panel()
    made.prompt.value = "a cat"
    made.generate_button.click()
    assert "key" in made.form.error_for("key").lower()
    assert not made.tasks.busy
    assert sim.request_count == 0


def test_key_never_reaches_widget_state(p: Panel, fake_key: str) -> None:
    generate(p, "a key-safe kettle")
    p.history_browser.refresh()
    states = [repr(w.get_state()) for w in descendants(p)]
    assert len(states) > 50
    assert not [s for s in states if fake_key in s]


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"prompt": "   "}, "prompt", "Type a prompt first."),
        ({"model": "gpt-image-2", "size": "1000x1000"}, "size", "multiples of 16"),
        ({"model": "dall-e-2", "size": "640x480"}, "size", "256x256"),
        ({"model": "  "}, "model", "model"),
    ],
)
def test_validation_error_shows_next_to_the_field_and_sends_nothing(
    p: Panel, live: SimServer, values: dict[str, Any], field: str, words: str
) -> None:
    p.prompt.value = "a lighthouse"
    for name, value in values.items():
        getattr(p, name).value = value
    p.generate_button.click()
    assert words in p.form.error_for(field)
    others = [n for n in p.form.fields if n != field]
    assert all(p.form.error_for(n) == "" for n in others)
    assert not p.tasks.busy
    assert live.request_count == 0
    p.prompt.value = "a lighthouse"
    p.model.value = "gpt-image-1-mini"
    p.size.value = ""
    p.n.value = 1
    generate(p, "a lighthouse")  # a valid request clears the error
    assert p.form.error_for(field) == ""


def test_n_offers_only_what_the_model_takes(p: Panel) -> None:
    p.model.value = "gpt-image-1"
    p.n.value = 4
    for model in ("dall-e-3", "qwen-image"):
        p.model.value = model
        assert (p.n.max, p.n.value) == (1, 1)
        p.n.value = 3  # the control clamps it: never an error after the fact
        assert p.n.value == 1
    p.model.value = "gpt-image-1"
    assert p.n.max == 10


def test_errors_follow_the_controls_before_any_click(p: Panel, live: SimServer) -> None:
    p.prompt.value = "a lighthouse"
    p.model.value = "gpt-image-2"
    p.size.value = "800x600"
    assert "800x600" in p.form.error_for("size") and p.generate_button.disabled
    assert p.form.fields["size"].box.layout.width == "auto"  # widens to hold the message
    p.size.value = "1024x1024"
    assert p.form.error_for("size") == "" and not p.generate_button.disabled
    assert p.form.fields["size"].box.layout.width == "150px"
    p.size.value = "1536x1024"
    p.model.value = "dall-e-3"  # a fixed list without that size: back to the default
    assert p.size.value == "" and p.form.error_for("size") == ""
    assert not p.generate_button.disabled
    assert live.request_count == 0


def test_a_typo_hint_widens_its_field_like_an_error(p: Panel) -> None:
    p.model.value = "gpt-imgae-2"
    assert "Did you mean gpt-image-2?" in p.form.error_for("model")
    assert not p.generate_button.disabled  # a hint, not an error
    box = p.form.fields["model"].box.layout
    # The same rule as an error's: grow from its own width up to a few words a line.
    assert (box.width, box.min_width, box.max_width) == ("auto", "190px", "420px")
    p.model.value = "gpt-image-2"
    assert p.form.error_for("model") == ""
    assert (box.width, box.min_width, box.max_width) == ("190px", None, None)


def test_models_offered_live_first_and_a_retired_one_says_so(p: Panel, live: SimServer) -> None:
    from cometnb._core.model_registry import MODELS, SHUTDOWN_DATES, retired_message

    options = list(p.model.options)
    statuses = [MODELS[m].status for m in options]
    first_gone = statuses.index("retired")
    assert all(s == "live" for s in statuses[:first_gone])
    assert all(s != "live" for s in statuses[first_gone:])
    assert options[:3] == ["gpt-image-2", "gpt-image-2.6-flare", "gpt-image-2.6-sunburst"]
    for model in sorted(SHUTDOWN_DATES.keys() & set(options)):
        p.model.value = model
        assert (retired_message(model) or "?") in p.form.error_for("model")
        assert not p.generate_button.disabled  # still sent: a hint, not a refusal
    p.model.value = "gpt-image-2.6-flare"
    assert p.form.error_for("model") == ""
    assert live.request_count == 0


def test_cross_field_rule_is_shown_on_the_triggering_control(p: Panel, live: SimServer) -> None:
    p.prompt.value = "a logo"
    p.model.value = "gpt-image-1"
    p.background.value = "transparent"
    p.output_format.value = "jpeg"
    p.generate_button.click()
    assert "output_format" in p.form.error_for("background")
    assert live.request_count == 0


# --- generating -------------------------------------------------------------------------------


def test_shift_enter_in_the_prompt_presses_generate(p: Panel, live: SimServer) -> None:
    p.prompt.value = "a lighthouse at dusk"
    p.model.value = "gpt-image-1-mini"
    # What the front end sends on Shift+Enter (after syncing the text typed).
    p.prompt._handle_custom_msg({"event": "submit"}, [])
    assert p.wait(WAIT_S)
    assert live.request_count == 1 and live.requests[-1]["prompt"] == "a lighthouse at dusk"
    assert p.generations[-1].ok and "<img" in p.gallery.value


def test_shift_enter_goes_the_buttons_way_and_refuses_the_same(p: Panel, live: SimServer) -> None:
    p.prompt.value = ""
    p.prompt._handle_custom_msg({"event": "submit"}, [])  # an empty prompt: told, not sent
    assert "prompt" in p.form.error_for("prompt").lower() and not p.tasks.busy
    p.prompt.value = "a lighthouse"
    p.model.value = "gpt-image-2"
    p.size.value = "800x600"  # invalid: Generate is disabled, so Shift+Enter does nothing
    assert p.generate_button.disabled
    p.prompt._handle_custom_msg({"event": "submit"}, [])
    p.prompt._handle_custom_msg({"event": "other"}, [])  # other messages are ignored
    assert not p.tasks.busy and live.request_count == 0
    assert "800x600" in p.form.error_for("size")


def test_generate_shows_the_image_and_records_it(p: Panel, live: SimServer) -> None:
    labels = record_values(p.generate_button, "description")
    generate(p, "a <b>bold</b> red fox", tags="fox, demo", size="1024x1024")
    assert live.request_count == 1
    assert live.requests[-1]["size"] == "1024x1024"
    assert "<img" in p.gallery.value
    assert "<b>bold</b>" not in p.gallery.value  # user text is escaped
    assert "image(s)" in text_of(p.message)
    gen = p.generations[-1]
    assert gen.ok and gen.images[0].path is not None and gen.images[0].path.exists()
    from cometnb.history import history

    rec = history()[-1]
    assert rec.prompt == "a <b>bold</b> red fox"
    assert set(rec.tags) == {"fox", "demo"}
    assert "Queue another" in labels  # relabelled while running ...
    assert p.generate_button.description == "Generate"  # ... and restored after
    assert p.cancel_button.layout.display == "none"
    assert p.progress.value == ""


def test_progress_shows_elapsed_time_and_retries(p: Panel, live: SimServer) -> None:
    live.fault("429", retry_after=1)
    progress = record_values(p.progress)
    started = time.monotonic()
    generate(p, "a patient snail")
    assert time.monotonic() - started >= 1.0
    lines = [re.sub(r"<[^>]+>", "", v) for v in progress]
    assert any(re.search(r"Generating with gpt-image-1-mini · \d+\.\d s", x) for x in lines)
    assert any("waiting 1 s after HTTP 429" in x for x in lines)
    assert p.generations[-1].ok


def test_partial_previews_appear_while_streaming(p: Panel, live: SimServer) -> None:
    previews = record_values(p.preview)
    generate(p, "a streaming river", model="gpt-image-1", partial_images=2)
    assert live.requests[-1]["stream"] is True
    assert any("<img" in v for v in previews)
    assert p.preview.value == ""  # cleared once the final image is in the gallery
    assert "<img" in p.gallery.value


def test_generations_queue_behind_the_running_one(p: Panel, live: SimServer) -> None:
    live.fault("latency", times=1, seconds=1.0)
    p.prompt.value = "first"
    p.model.value = "gpt-image-1-mini"
    p.generate_button.click()
    wait_until(lambda: live.request_count >= 1 or p.tasks.current is not None)
    p.prompt.value = "second"
    p.generate_button.click()
    assert p.tasks.queued == 1
    assert "1 queued" in text_of(p.progress)
    assert p.wait(WAIT_S)
    assert [g.prompt for g in p.generations] == ["first", "second"]
    assert p.gallery.value.index("second") < p.gallery.value.index("first")  # newest first


def test_inside_a_running_loop_generation_is_a_task_on_that_loop(p: Panel, live: SimServer) -> None:
    """What a kernel does: the click handler runs on the loop and returns at once."""
    live.fault("latency", seconds=0.5)

    async def kernel_like() -> None:
        p.prompt.value = "a non-blocking click"
        p.generate_button.click()
        # The handler returned before the task could even start: it is a task on this loop.
        assert p.generations == [] and p.tasks.current is None
        assert p.tasks.busy
        assert p.tasks._loop is asyncio.get_running_loop()
        with pytest.raises(RuntimeError, match="block the loop"):
            p.wait(1)
        while p.tasks.busy:  # the loop stays free: other coroutines keep running
            await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(kernel_like(), WAIT_S))
    assert p.generations[-1].ok


def test_cancel_stops_the_running_generation(p: Panel, live: SimServer) -> None:
    live.fault("hang", seconds=5)
    p.prompt.value = "a request that never answers"
    p.generate_button.click()
    wait_until(lambda: live.request_count >= 1)
    assert p.cancel_button.layout.display != "none"
    p.cancel_button.click()
    assert p.wait(WAIT_S)
    assert "Cancelled" in text_of(p.message)
    assert p.tasks.done[-1].state == "cancelled"
    from cometnb.history import history

    assert history()[-1].status == "cancelled"
    assert p.generations == []
    assert p.generate_button.description == "Generate"


def test_api_error_is_one_short_line_and_the_panel_keeps_working(p: Panel, live: SimServer) -> None:
    live.fault("moderation")
    generate(p, "something the moderator dislikes")
    shown = text_of(p.message)
    assert shown and "\n" not in shown and "Traceback" not in shown and len(shown) <= 300
    assert p.generations == []
    generate(p, "a harmless teapot")
    assert p.generations[-1].ok and "<img" in p.gallery.value


def test_unexpected_exception_is_shown_short(p: Panel, monkeypatch: pytest.MonkeyPatch) -> None:
    import cometnb._notebook.panel as widget_mod

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(widget_mod, "_run_request", broken)
    generate(p, "anything")
    assert text_of(p.message) == "Unexpected error (RuntimeError): boom"
    assert p.generate_button.description == "Generate"


def test_callback_errors_never_escape(p: Panel, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: Any) -> None:
        raise KeyError("nope")

    monkeypatch.setattr(p.form, "build_request", explode)
    p.generate_button.click()
    assert text_of(p.message) == "Unexpected error (KeyError): 'nope'"
    p.message.value = ""
    monkeypatch.setattr(p.history_browser, "refresh", explode)
    p.history_browser.refresh_button.click()
    assert "KeyError" in text_of(p.message)
    p.message.value = ""
    p.history_section.selected_index = None
    p.history_section.selected_index = 0  # opening refreshes: guarded too
    assert "KeyError" in text_of(p.message)


# --- the history browser ----------------------------------------------------------------------


@pytest.fixture
def filled(p: Panel) -> Panel:
    generate(p, "a red fox in snow", model="gpt-image-1-mini", tags="fox")
    generate(p, "a blue whale", model="dall-e-2", size="256x256", tags="sea")
    generate(p, "a red panda", model="gpt-image-1", quality="low", tags="fox, cute")
    return p


def entry_prompts(p: Panel) -> list[str]:
    return [row.record.prompt for row in p.history_browser.rows]


def test_history_lists_newest_first_with_thumbnails(filled: Panel) -> None:
    browser = filled.history_browser
    assert entry_prompts(filled) == ["a red panda", "a blue whale", "a red fox in snow"]
    for row in browser.rows:
        assert "data:image/" in row.info.value
        assert row.record.model in row.info.value
        src = re.search(r"src='data:image/\w+;base64,([^']+)'", row.info.value)
        assert src is not None and len(src.group(1)) < 20_000  # a thumbnail, not an original
    assert "3 of 3" in text_of(browser.status)


def test_history_shows_what_the_magic_or_api_made(p: Panel, live: SimServer) -> None:
    from cometnb import Client

    c = Client()  # another front end writing to the same active history
    try:
        c.generate("made elsewhere", model="gpt-image-1-mini", tags=("magic",))
    finally:
        c.close()
    p.history_section.selected_index = None
    p.history_section.selected_index = 0  # re-opening refreshes
    assert entry_prompts(p)[0] == "made elsewhere"


def test_history_filters(filled: Panel) -> None:
    b = filled.history_browser
    b.filter_text.value = "red"
    assert entry_prompts(filled) == ["a red panda", "a red fox in snow"]
    b.filter_model.value = "gpt-image-1"
    assert entry_prompts(filled) == ["a red panda"]
    b.filter_text.value = ""
    b.filter_model.value = ""
    b.filter_tag.value = "sea"
    assert entry_prompts(filled) == ["a blue whale"]
    assert {v for _label, v in b.filter_tag.options} == {"", "fox", "sea", "cute"}


def test_history_compare_needs_two_and_shows_both(filled: Panel) -> None:
    b = filled.history_browser
    assert b.compare_button.disabled
    b.rows[0].select.value = True
    assert b.compare_button.disabled
    b.rows[1].select.value = True
    assert not b.compare_button.disabled
    b.compare_button.click()
    from cometnb._views.history import compare_html

    chosen = [b.rows[0].record, b.rows[1].record]
    assert b.compare_view.value == compare_html(chosen)
    assert "a red panda" in b.compare_view.value and "a blue whale" in b.compare_view.value


def test_load_settings_puts_a_record_back_into_the_controls(filled: Panel) -> None:
    row = next(r for r in filled.history_browser.rows if r.record.prompt == "a blue whale")
    filled.prompt.value = "something else"
    filled.model.value = "gpt-image-2"
    row.load_button.click()
    assert filled.prompt.value == "a blue whale"
    assert filled.model.value == "dall-e-2"
    assert filled.size.value == "256x256"
    assert filled.tags.value == "sea"
    assert filled.form.build_request().to_body() == {
        "model": "dall-e-2",
        "prompt": "a blue whale",
        "size": "256x256",
    }


@pytest.mark.parametrize("suffix", [".html", ".zip"])
def test_export_writes_into_the_history_exports_folder(
    filled: Panel, isolated_env: Path, fake_key: str, suffix: str
) -> None:
    from conftest import assert_no_key_in_tree

    button = {".html": "export_html_button", ".zip": "export_zip_button"}[suffix]
    getattr(filled.history_browser, button).click()
    written = list((isolated_env / "exports").glob(f"*{suffix}"))
    assert len(written) == 1 and written[0].stat().st_size > 0
    status = filled.history_browser.status.value
    assert f"download='{written[0].name}'" in status  # a link the browser downloads
    assert text_of(filled.history_browser.status).startswith("Exported 3 records: Download")
    assert_no_key_in_tree(isolated_env, fake_key)


def test_export_takes_the_selection_or_else_what_the_filter_shows(
    filled: Panel, isolated_env: Path
) -> None:
    import json
    import zipfile

    b = filled.history_browser
    b.filter_text.value = "red"
    path = b.export(".jsonl")
    assert len(path.read_text().splitlines()) == 2
    assert "2 records matching the filter" in text_of(b.status)
    b.rows[1].select.value = True
    path = b.export(".zip")
    with zipfile.ZipFile(path) as zf:
        lines = zf.read("records.jsonl").decode().splitlines()
    assert [json.loads(line)["prompt"] for line in lines] == ["a red fox in snow"]
    assert "1 selected record:" in text_of(b.status)


# --- a long history ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_1000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 realistic records, built once (a few seconds) and copied for each test."""
    import _seed_history

    return _seed_history.seeded_folder(tmp_path_factory, 1000)


@pytest.fixture
def long_history(p: Panel, isolated_env: Path, seeded_1000: Path) -> Panel:
    import _seed_history

    _seed_history.use_folder(seeded_1000, isolated_env)
    p.history_browser.refresh()
    return p


def test_a_thousand_records_build_one_page_of_rows(long_history: Panel) -> None:
    b = long_history.history_browser
    assert len(b.found) == 1000 and len(b.rows) == 20
    assert len(b.entries.children) == 20
    assert b.pager.label.value == "1–20 of 1,000"
    assert b.rows[0].record.prompt.endswith("(take 1000)")  # newest first
    assert all(row.box.layout.flex == "0 0 auto" for row in b.rows)  # rows never shrink
    b.pager.older_button.click()
    assert b.rows[0].record.prompt.endswith("(take 980)")
    assert b.pager.label.value == "21–40 of 1,000"


def test_selection_survives_paging_and_a_filter_starts_at_the_newest(
    long_history: Panel,
) -> None:
    b = long_history.history_browser
    first = b.rows[0].record
    b.rows[0].select.value = True
    b.pager.older_button.click()
    b.rows[3].select.value = True
    assert [r.id for r in b.selected()] == [first.id, b.rows[3].record.id]
    assert not b.compare_button.disabled
    b.pager.newer_button.click()
    assert b.rows[0].select.value
    b.filter_text.value = "ramen"
    assert b.pager.page == 0 and all("ramen" in r.record.prompt for r in b.rows)
    ramen = sum("ramen" in r.prompt for r in b.history())  # edits renamed some takes
    assert ramen > 20 and len(b.found) == ramen and f"{ramen} of 1000" in text_of(b.status)


def test_long_prompts_wrap_in_their_row_with_the_full_text_as_a_tooltip(
    long_history: Panel,
) -> None:
    row = next(r for r in long_history.history_browser.rows if len(r.record.prompt) > 150)
    assert "cometnb-history-prompt" in row.info.value
    assert f"title='{row.record.prompt}" in row.info.value


def test_load_settings_is_confirmed_beside_the_row(filled: Panel) -> None:
    rows = filled.history_browser.rows
    rows[1].load_button.click()
    assert rows[1].note.value == "Loaded into the form." and rows[0].note.value == ""


# --- the queue on its own ---------------------------------------------------------------------


def test_task_queue_runs_in_order_and_reports_errors() -> None:
    from cometnb._core.generations import ImageRequest

    order: list[str] = []

    async def work(task: PanelTask) -> None:
        order.append(task.request.prompt)
        if task.request.prompt == "bad":
            raise ValueError("bad job")

    q = TaskQueue(work, on_change=lambda: None)
    for prompt in ("one", "bad", "three"):
        q.submit(PanelTask(ImageRequest(prompt)))
    assert q.wait(WAIT_S)
    assert order == ["one", "bad", "three"]
    assert [j.state for j in q.done] == ["ok", "error", "ok"]
    assert short_message(q.done[1].error or Exception()) == "Unexpected error (ValueError): bad job"
    assert not q.cancel()  # nothing running
