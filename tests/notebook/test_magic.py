"""``%%cometimg`` and ``%cometimg_key`` driven through a real ``InteractiveShell`` and the sim.

Cells run with ``ip.run_cell`` exactly as a notebook runs them (displayhook, ``_``, errors shown
by IPython). Display messages are captured with IPython's ``CapturingDisplayPublisher`` and the
magic is put in "rich" mode (what it picks inside a kernel), so the live display handle, its
in-place updates and the final view are all visible to the tests.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from conftest import FAKE_KEY, assert_no_key_in_tree, new_magic_shell
from IPython.core.displaypub import CapturingDisplayPublisher

from cometnb._core import settings as _settings
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CancelledError,
    RateLimitError,
    ResponseError,
    ValidationError,
)
from cometnb._core.generations import Generation, Grid

if TYPE_CHECKING:
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

MINI = "gpt-image-1-mini"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \"", re.MULTILINE)
MAX_PREVIEW_BYTES = 150_000


class Recorder(CapturingDisplayPublisher):
    """Captures display messages; checks images are on disk before a result is shown."""

    history_dir: Path | None = None

    def publish(self, data: Any, metadata: Any = None, source: Any = None, **kw: Any) -> None:
        text, html = data.get("text/plain", ""), data.get("text/html", "")
        is_result = text.startswith(("<Generation", "<Grid")) and "data:image" in html
        if self.history_dir is not None and is_result:
            files = [
                p
                for p in self.history_dir.rglob("*")
                if p.suffix in (".png", ".jpeg", ".jpg", ".webp")
            ]
            assert files, "a result was shown before its images were stored"
        super().publish(data, metadata, source, **kw)

    def htmls(self) -> list[str]:
        return [o["data"].get("text/html", "") for o in self.outputs]


@pytest.fixture
def ip(sim: SimServer, history_dir: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The magic's shell with a session key, its displays recorded, shown as in a notebook."""
    shell = new_magic_shell(base_url=sim.base_url, history_dir=str(history_dir))
    _settings.set_session_key(fake_key)
    recorder = Recorder()
    recorder.history_dir = history_dir
    monkeypatch.setattr(shell, "display_pub", recorder)
    shell.magics_manager.registry["CometImg"].engine.rich = True
    return shell


def configure(ip: Any, **traits: Any) -> None:
    for name, value in traits.items():
        ip.run_line_magic("config", f"CometImg.{name} = {value!r}")


def run(ip: Any, capsys: pytest.CaptureFixture[str], source: str) -> tuple[Any, str]:
    """Run a cell as a notebook does; return (ExecutionResult, everything printed)."""
    result = ip.run_cell(source)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def recorder(ip: Any) -> Recorder:
    pub = ip.display_pub
    assert isinstance(pub, Recorder)
    return pub


def data_uris(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/[a-z]+;base64,([^\"']+)", html)]


def assert_short_error(result: Any, out: str, kind: type[Exception], *words: str) -> str:
    """The cell failed with ``kind``, shown as one short line; no traceback, no key."""
    error = result.error_in_exec
    assert isinstance(error, kind), repr(error)
    assert not TRACEBACK.search(out), out
    shown = [line for line in out.splitlines() if line.startswith(type(error).__name__)]
    assert len(shown) == 1, out
    assert len(shown[0]) < 400 and FAKE_KEY not in out
    lowered = shown[0].lower()
    for word in words:
        assert word.lower() in lowered, shown[0]
    return shown[0]


# --- one request -----------------------------------------------------------------------------


def test_one_request_shows_a_live_status_then_the_image_once(
    ip: Any, sim: SimServer, history_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, f"%%cometimg -m {MINI} -s 1024x1024\na kite over dunes")
    assert result.success, result.error_in_exec
    gen = ip.user_ns["_"]
    assert isinstance(gen, Generation) and gen is result.result and gen.ok
    assert gen.image.path is not None and gen.image.path.is_file()
    assert str(history_dir) in str(gen.image.path)
    outputs = recorder(ip).outputs
    display_ids = {o["transient"]["display_id"] for o in outputs}
    assert len(display_ids) == 1, "everything goes through one display handle"
    assert not outputs[0]["update"] and all(o["update"] for o in outputs[1:])
    assert (
        "Working:" in outputs[0]["data"]["text/plain"] and MINI in outputs[0]["data"]["text/plain"]
    )
    final = outputs[-1]["data"]
    assert final["text/plain"] == repr(gen) and "<img" in final["text/html"]
    previews = data_uris(final["text/html"])
    assert previews and all(len(p) < MAX_PREVIEW_BYTES for p in previews)
    # IPython's displayhook did not show the returned object a second time …
    assert "<Generation" not in out
    # … and once the cell is over, displaying it works normally again.
    assert ip.display_formatter.format(gen)[0].get("text/html")
    assert sim.requests == [{"model": MINI, "prompt": "a kite over dunes", "size": "1024x1024"}]


def test_status_line_reports_waiting_after_429(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.fault("429", retry_after=1)
    started = time.monotonic()
    result, _ = run(ip, capsys, f"%%cometimg -m {MINI}\na kite")
    assert result.success and time.monotonic() - started >= 1.0
    texts = [o["data"]["text/plain"] for o in recorder(ip).outputs]
    assert any("waiting 1 s after HTTP 429" in t for t in texts), texts
    assert sim.request_count == 2


def test_partial_previews_update_in_place(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.latency = 0.3
    result, _ = run(ip, capsys, f"%%cometimg -m {MINI} --partial 2\na kite")
    assert result.success, result.error_in_exec
    assert sim.requests[0]["stream"] is True and sim.requests[0]["partial_images"] == 2
    htmls = recorder(ip).htmls()
    partial = [h for h in htmls if "cometnb-partial" in h]
    assert partial, "no partial preview was shown"
    assert all(len(p) < MAX_PREVIEW_BYTES for h in partial for p in data_uris(h))
    assert "cometnb-partial" not in htmls[-1]  # the final view replaced the previews
    assert len({o["transient"]["display_id"] for o in recorder(ip).outputs}) == 1


def test_interpolation_from_the_user_namespace(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns.update(animal="fox", cfg=SimpleNamespace(light="dusk"), where={"k": "snow"})
    result, _ = run(
        ip, capsys, f"%%cometimg -m {MINI}\na {{animal}} at {{cfg.light}} in {{where[k]}} {{{{x}}}}"
    )
    assert result.success
    assert sim.requests[0]["prompt"] == "a fox at dusk in snow {x}"


def test_undefined_name_fails_before_any_request(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    result, out = run(ip, capsys, f"%%cometimg -m {MINI}\na {{nowhere_defined}} fox")
    assert_short_error(result, out, UsageError, "nowhere_defined", "not defined")
    assert sim.request_count == 0


def test_every_option_reaches_the_request_and_the_history(
    ip: Any, sim: SimServer, history_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (
        "%%cometimg -m gpt-image-1 -s 1024x1024 -q low -n 2 -f jpeg --compression 50 "
        "--background opaque --moderation low --param user=ann --param seed=5 "
        "--tag study --tag dusk -o result\na kite"
    )
    result, _ = run(ip, capsys, source)
    assert result.success, result.error_in_exec
    assert sim.requests == [
        {
            "model": "gpt-image-1",
            "prompt": "a kite",
            "size": "1024x1024",
            "quality": "low",
            "n": 2,
            "output_format": "jpeg",
            "output_compression": 50,
            "background": "opaque",
            "moderation": "low",
            "user": "ann",
            "seed": 5,
        }
    ]
    gen = ip.user_ns["result"]
    assert gen is ip.user_ns["_"] and len(gen.images) == 2
    from cometnb.history import History

    (record,) = list(History(history_dir))
    assert list(record.tags) == ["study", "dusk"] and record.origin == "magic"


def test_dalle_options(ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]) -> None:
    source = "%%cometimg -m dall-e-3 -s 1024x1024 --style natural --response-format url\na kite"
    result, _ = run(ip, capsys, source)
    assert result.success, result.error_in_exec
    assert sim.requests[0]["style"] == "natural" and sim.requests[0]["response_format"] == "url"
    assert sim.downloads == 1  # the URL result was fetched at once


def test_no_display_renders_nothing_but_returns_the_result(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, f"%%cometimg -m {MINI} --no-display -o g\na kite")
    assert result.success and isinstance(ip.user_ns["g"], Generation)
    assert ip.user_ns["_"] is ip.user_ns["g"]
    assert recorder(ip).outputs == [] and "<Generation" not in out


def test_config_traits_are_mirrored_into_settings(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(ip, model="dall-e-3", quality="hd", thumbnail_px=256, concurrency=2)
    active = _settings.active()
    assert (active.model, active.quality, active.thumbnail_px) == ("dall-e-3", "hd", 256)
    assert active.concurrency == 2 and active.base_url == sim.base_url
    result, out = run(ip, capsys, "%%cometimg --dry-run\na kite")
    assert result.success and '"model": "dall-e-3"' in out and '"quality": "hd"' in out
    # A default a model cannot take is left out instead of failing the cell.
    result, out = run(ip, capsys, f"%%cometimg --dry-run -m {MINI}\na kite")
    assert '"quality"' not in out
    ip.run_line_magic("config", "CometImg")
    listing = capsys.readouterr().out
    for name in ("model", "size", "quality", "concurrency", "timeout", "max_retries"):
        assert f"CometImg.{name}" in listing
    for name in ("thumbnail_px", "history_dir", "base_url"):
        assert f"CometImg.{name}" in listing
    assert "key" not in re.findall(r"CometImg\.(\w+)", listing)


def test_invalid_trait_values_are_refused(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    magics = ip.magics_manager.registry["CometImg"]
    from traitlets import TraitError

    for name, value in (("concurrency", 0), ("max_retries", -1), ("timeout", 0.0)):
        with pytest.raises(TraitError):
            setattr(magics, name, value)
    assert _settings.active().concurrency >= 1


def test_help_lists_every_option(ip: Any) -> None:
    doc = ip.find_cell_magic("cometimg").__doc__
    for option in (
        "--model",
        "--size",
        "--quality",
        "-n",
        "--format",
        "--compression",
        "--background",
        "--style",
        "--response-format",
        "--moderation",
        "--partial",
        "--param",
        "--each-line",
        "--out",
        "--tag",
        "--dry-run",
        "--no-display",
    ):
        assert option in doc, option
    assert "{{" in doc and "%cometimg_key" in doc
    assert "--key" not in doc and "api_key" not in doc


# --- grids -----------------------------------------------------------------------------------


def test_grid_runs_every_combination_and_shows_one_labelled_view(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"%%cometimg -m {MINI} -s 1024x1024,1536x1024 -q low,high -o g\na kite"
    result, out = run(ip, capsys, source)
    assert result.success, result.error_in_exec
    grid = ip.user_ns["g"]
    assert isinstance(grid, Grid) and grid is ip.user_ns["_"]
    assert grid.axes == {"size": ["1024x1024", "1536x1024"], "quality": ["low", "high"]}
    assert len(grid.generations) == 4 and all(g.ok for g in grid.generations)
    sent = {(r["size"], r["quality"]) for r in sim.requests}
    assert sent == {(s, q) for s in ("1024x1024", "1536x1024") for q in ("low", "high")}
    outputs = recorder(ip).outputs
    assert len({o["transient"]["display_id"] for o in outputs}) == 1
    final = outputs[-1]["data"]["text/html"]
    assert "cometnb-grid" in final
    for label in ("1024x1024", "1536x1024", "low", "high", "size", "quality"):
        assert label in final
    assert len(data_uris(final)) == 4
    assert "<Grid" not in out


def test_a_cell_opens_the_history_once_for_all_its_requests(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once, on the kernel's thread, before anything is sent: a per-request lookup would
    # queue behind the worker threads busy storing the grid's other images.
    import cometnb._storage.folder as history_module

    looked_up: list[object] = []
    real = history_module.history

    def counting(path: Any = None) -> Any:
        looked_up.append(path)
        return real(path)

    monkeypatch.setattr(history_module, "history", counting)
    result, _ = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na\nb\nc\nd")
    assert result.success, result.error_in_exec
    assert len(looked_up) == 1 and len(real()) == 4


def test_each_line_grid(ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na fox\n\nan owl\n")
    assert result.success
    grid = ip.user_ns["_"]
    assert grid.axes == {"prompt": ["a fox", "an owl"]}
    assert sorted(r["prompt"] for r in sim.requests) == ["a fox", "an owl"]


def test_grid_with_one_failed_cell_shows_it_and_does_not_raise(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(ip, concurrency=1)
    sim.fault("500")
    result, _ = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na fox\nan owl")
    assert result.success, result.error_in_exec
    grid = ip.user_ns["_"]
    assert [g.status for g in grid.generations] == ["error", "ok"]
    final = recorder(ip).htmls()[-1]
    assert "500" in final and len(data_uris(final)) == 1
    from cometnb.history import history

    failed = history().get(str(grid.generations[0].record_id))  # the failed cell links to it
    assert failed is not None and failed.status == "error" and failed.prompt == "a fox"


def test_grid_where_every_cell_failed_raises(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.fault("500", times=2)
    result, out = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na fox\nan owl")
    assert_short_error(result, out, APIError, "all 2 requests failed", "500")
    assert "cometnb-grid" in recorder(ip).htmls()[-1]  # the failed cells are still shown


def test_live_grid_status_shows_pending_cells(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.latency = 0.4
    configure(ip, concurrency=1)
    result, _ = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na fox\nan owl")
    assert result.success
    first = recorder(ip).htmls()[0]
    assert "cometnb-grid" in first and "queued" in first


# --- dry run ---------------------------------------------------------------------------------


def test_dry_run_shows_the_json_and_sends_nothing(
    ip: Any, sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"%%cometimg --dry-run -m {MINI},gpt-image-1 -s 1024x1024 -o bodies\na kite"
    result, out = run(ip, capsys, source)
    assert result.success and result.result is None
    assert sim.request_count == 0
    assert f"POST {sim.base_url}/images/generations" in out and "[2/2] model=gpt-image-1" in out
    assert '"prompt": "a kite"' in out
    assert FAKE_KEY not in out and "Bearer" not in out
    assert ip.user_ns["bodies"] == [
        {"model": MINI, "prompt": "a kite", "size": "1024x1024"},
        {"model": "gpt-image-1", "prompt": "a kite", "size": "1024x1024"},
    ]
    assert_no_key_in_tree(tmp_path)


def test_dry_run_still_reports_invalid_requests(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, "%%cometimg --dry-run -m dall-e-3,gpt-image-1 -s 1536x1024\nk")
    assert "# invalid: dall-e-3 accepts size" in out
    assert_short_error(
        result, out, ValidationError, "1 of 2 requests are invalid", "model=dall-e-3"
    )
    assert sim.request_count == 0


# --- short errors ----------------------------------------------------------------------------


def test_validation_error_is_short_and_sends_nothing(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, "%%cometimg -m dall-e-3 -n 2\na kite")
    assert_short_error(result, out, ValidationError, "n=", "nothing was sent")
    assert sim.request_count == 0


def test_invalid_cell_of_a_grid_stops_the_whole_grid(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, f"%%cometimg -m {MINI},dall-e-3 -s 1024x1024,1536x1024\nk")
    assert_short_error(result, out, ValidationError, "[model=dall-e-3, size=1536x1024]")
    assert sim.request_count == 0


def test_no_key_says_what_to_do(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _settings.set_session_key(None)
    result, out = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na\nb")
    assert_short_error(result, out, AuthenticationError, "COMETAPI_KEY", "%cometimg_key")
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("kind", "params", "error", "words"),
    [
        ("429", {"retry_after": 0.02}, RateLimitError, ("429",)),
        ("500", {}, APIError, ("500",)),
        ("502", {}, APIError, ("502",)),
        ("corrupt_b64", {}, ResponseError, ("base64",)),
        ("truncated_json", {}, ResponseError, ()),
    ],
)
def test_server_failures_are_short(
    ip: Any,
    sim: SimServer,
    history_dir: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    params: dict[str, Any],
    error: type[Exception],
    words: tuple[str, ...],
) -> None:
    sim.fault(kind, times=3, **params)
    result, out = run(ip, capsys, f"%%cometimg -m {MINI}\na kite")
    assert_short_error(result, out, error, *words)
    htmls = recorder(ip).htmls()
    assert htmls[-1] == "", "the live status is cleared; the error says what happened"
    from cometnb.history import History

    assert [r.status for r in History(history_dir)] == ["error"]


def test_usage_errors_for_bad_options(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    for source in ("%%cometimg -n lots\nk", "%%cometimg -o 2x\nk", "%%cometimg --param x\nk"):
        result, out = run(ip, capsys, source)
        assert isinstance(result.error_in_exec, UsageError), source
        assert not TRACEBACK.search(out)
    assert sim.request_count == 0


# --- interrupt -------------------------------------------------------------------------------


def test_sigint_cancels_a_hanging_request(
    ip: Any, sim: SimServer, history_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C (SIGINT to the process, as the notebook's stop button sends) during a hang."""
    sim.fault("hang", times=2, seconds=30)
    main = threading.main_thread()
    assert threading.current_thread() is main

    def interrupt_when_sent() -> None:
        deadline = time.monotonic() + 10
        while sim.request_count < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_when_sent, daemon=True)
    thread.start()
    started = time.monotonic()
    result, out = run(ip, capsys, f"%%cometimg -m {MINI} --each-line\na fox\nan owl")
    thread.join(5)
    assert time.monotonic() - started < 25, "the interrupt did not stop the hang"
    assert_short_error(result, out, CancelledError, "interrupted", "2 of 2")
    from cometnb.history import History

    assert [r.status for r in History(history_dir)] == ["cancelled", "cancelled"]


# --- terminal IPython ------------------------------------------------------------------------


def test_terminal_gets_text_instead_of_html(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.magics_manager.registry["CometImg"].engine.rich = False
    result, out = run(ip, capsys, f"%%cometimg -m {MINI}\na kite")
    assert result.success
    assert recorder(ip).outputs == []
    assert "done" in out.splitlines() and "<Generation gpt-image-1-mini 1 image(s)" in out


# --- the key ---------------------------------------------------------------------------------


def test_key_magic_uses_a_masked_prompt(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _settings.set_session_key(None)
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "  sk-typed-at-the-prompt-0001  "

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    result, out = run(ip, capsys, "%cometimg_key")
    assert result.success and prompts == ["CometAPI key: "]
    assert out.strip() == "key set (held in memory for this kernel only)"
    assert _settings.resolve_api_key() == "sk-typed-at-the-prompt-0001"
    result, out = run(ip, capsys, "%cometimg_key --clear")
    assert out.strip() == "key cleared" and _settings.resolve_api_key() is None


def test_key_magic_refuses_a_key_argument_without_echoing_it(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    result, out = run(ip, capsys, "%cometimg_key sk-pasted-into-the-cell-42")
    assert isinstance(result.error_in_exec, UsageError)
    assert "sk-pasted-into-the-cell-42" not in out + str(result.error_in_exec)


def test_key_magic_without_stdin_shows_a_password_widget(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ip, "kernel", SimpleNamespace(_allow_stdin=False), raising=False)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": pytest.fail("getpass was called"))
    result, _ = run(ip, capsys, "%cometimg_key")
    assert result.success
    (shown,) = recorder(ip).outputs
    assert "application/vnd.jupyter.widget-view+json" in shown["data"]


def test_key_magic_falls_back_when_getpass_cannot_ask(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import StdinNotImplementedError

    def no_stdin(prompt: str = "") -> str:
        raise StdinNotImplementedError("no stdin")

    monkeypatch.setattr(getpass, "getpass", no_stdin)
    result, _ = run(ip, capsys, "%cometimg_key")
    assert result.success and len(recorder(ip).outputs) == 1


def test_key_widget_takes_the_key_and_empties_the_box() -> None:
    from cometnb._notebook.key_prompt import KEY_SET, key_widget

    _settings.set_session_key(None)
    box, button, message = key_widget().children
    button.click()
    assert message.value.startswith("no key") and _settings.resolve_api_key() is None
    box.value = "sk-from-the-widget-77"
    button.click()
    assert message.value == KEY_SET and box.value == "" and box.disabled
    assert _settings.resolve_api_key() == "sk-from-the-widget-77"


# --- extension lifecycle ---------------------------------------------------------------------


def test_reload_keeps_exactly_one_configurable(ip: Any) -> None:
    ip.run_line_magic("reload_ext", "cometnb")
    instances = [c for c in ip.configurables if type(c).__name__ == "CometImg"]
    assert len(instances) == 1
    assert ip.magics_manager.registry["CometImg"] is instances[0]
    assert ip.find_cell_magic("cometimg") is not None
    assert ip.find_line_magic("cometimg_key") is not None
    ip.magics_manager.registry["CometImg"].engine.rich = True  # the fixture's teardown


def test_nothing_written_contains_the_key(
    ip: Any, sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.fault("500")
    outs = [run(ip, capsys, f"%%cometimg -m {MINI} {opts}\na kite")[1] for opts in ("", "")]
    outs.append(run(ip, capsys, f"%%cometimg -m {MINI} --partial 1 -s 1024x1024,auto\nk")[1])
    texts = outs + [str(o["data"]) for o in recorder(ip).outputs]
    assert all(FAKE_KEY not in t for t in texts)
    assert_no_key_in_tree(tmp_path)
