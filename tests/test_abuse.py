"""Hostile and unusual input through the Python API, the magic and the panel.

HTML/JS in prompts is escaped in every view; over-long prompts are refused before sending;
unicode, emoji, newlines and braces survive or fail clearly; ``../`` never writes outside the
history or the export; a read-only or full history folder gives one clear error and loses
nothing already saved. The key is searched for in every file written and every text shown.
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _faults import assert_clean, assert_short_error
from conftest import FAKE_KEY

if TYPE_CHECKING:
    from cometnb._client.client import Client
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

HOSTILE = '<script>alert("pwn")</script><img src=x onerror=alert(1)> & "quotes" \'too\''
# Markup that must never appear unescaped in any HTML cometnb produces.
_LIVE_MARKUP = re.compile(r"<script|<img src=x|onerror=alert\(1\)>", re.IGNORECASE)
MODEL = "gpt-image-1-mini"


@pytest.fixture(autouse=True)
def no_key_anywhere(tmp_path: Path) -> Iterator[None]:
    """After every test: the key is in no file the test wrote."""
    yield
    assert_clean(tmp_path)


def assert_escaped(markup: str, where: str) -> None:
    found = _LIVE_MARKUP.search(markup)
    assert found is None, f"unescaped user text in {where}: …{markup[found.start() - 40 :][:120]}"
    assert FAKE_KEY not in markup


# --- HTML and JavaScript in prompts ----------------------------------------------------------


def test_html_in_prompt_is_escaped_in_every_python_view(
    client: Client, hist: History, tmp_path: Path
) -> None:
    from cometnb._views.cards import image_html
    from cometnb._views.gallery import gallery_html
    from cometnb._views.history import history_html

    gen = client.generate(HOSTILE, model=MODEL)
    # dall-e-3 sends a revised prompt back: the simulator echoes the hostile text in it.
    revised = client.generate(HOSTILE, model="dall-e-3", response_format="b64_json")
    assert revised.images[0].revised_prompt
    records = list(hist)
    views = {
        "Generation": gen._repr_html_(),
        "Generation (revised prompt)": revised._repr_html_(),
        "GeneratedImage": image_html(revised.images[0]),
        "Record": records[0]._repr_html_(),
        "History": hist._repr_html_(),
        "history_html": history_html(records),
        "compare": hist.compare(*records)._repr_html_(),
        "gallery_html": gallery_html(records),
    }
    for where, markup in views.items():
        assert_escaped(markup, where)
    assert "&lt;script&gt;" in views["Record"]  # escaped, not dropped
    exported = hist.export(tmp_path / "gallery.html").read_text(encoding="utf-8")
    assert_escaped(exported, "exported gallery")
    assert "<script" not in exported.lower()


def test_html_in_prompt_is_escaped_in_magic_output(
    shell: Any, sim: SimServer, history_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.utils.capture import capture_output

    shell.user_ns["evil"] = HOSTILE
    # Outside a kernel the magic prints text; ask for the live HTML views a notebook gets.
    monkeypatch.setattr(shell.magics_manager.registry["CometImg"].engine, "rich", True)
    with capture_output() as cap:
        result = shell.run_cell(f"%%cometimg -m {MODEL}\n{{evil}}", store_history=False)
    assert result.success, repr(result.error_in_exec)
    assert sim.requests[0]["prompt"] == HOSTILE  # sent exactly as typed
    html_outputs = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]
    assert html_outputs, "the magic displayed no HTML"
    for markup in html_outputs:
        assert_escaped(markup, "magic output")
    assert_clean(history_dir, cap.stdout, cap.stderr)


def test_html_in_prompt_is_escaped_in_the_panel(sim: SimServer, panel_env: Path) -> None:
    from cometnb import panel

    p = panel(open_history=True)
    p.prompt.value = HOSTILE
    p.model.value = MODEL
    p.generate_button.click()
    assert p.wait(30)
    assert p.generations and p.generations[0].ok, p.message.value
    p.refresh_history()
    texts = widget_texts(p)
    assert any("&lt;script&gt;" in t for t in texts), "the prompt is shown nowhere"
    for text in texts:
        assert_escaped(text, "panel")


def widget_texts(widget: Any) -> list[str]:
    """Every HTML string a widget tree shows (HTML values, labels, descriptions)."""
    import ipywidgets as W

    found: list[str] = []
    stack = [widget]
    while stack:
        w = stack.pop()
        if isinstance(w, W.HTML | W.HTMLMath):
            found.append(str(w.value))
        for attr in ("description", "tooltip", "placeholder"):
            value = getattr(w, attr, None)
            if isinstance(value, str) and value:
                found.append(value)
        stack.extend(getattr(w, "children", ()))
    return found


# --- prompt length -----------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "limit"), [("gpt-image-2", "32,000"), ("dall-e-3", "4,000")])
def test_40kb_prompt_refused_before_sending(
    client: Client, sim: SimServer, model: str, limit: str
) -> None:
    from cometnb import ValidationError

    with pytest.raises(ValidationError) as info:
        client.generate("x" * 40_000, model=model)
    assert sim.request_count == 0
    assert info.value.field == "prompt"
    assert_short_error(str(info.value), words=(limit,))


def test_40kb_prompt_refused_by_the_magic(
    shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns["long_text"] = "y" * 40_000
    result = shell.run_cell("%%cometimg -m gpt-image-2\n{long_text}", store_history=False)
    out = capsys.readouterr().out
    assert sim.request_count == 0
    assert result.error_in_exec is not None
    assert_short_error(str(result.error_in_exec), words=("32,000",))
    assert "Traceback" not in out
    assert "y" * 1000 not in out  # the prompt is not echoed back in full


def test_40kb_prompt_refused_by_the_panel(sim: SimServer, panel_env: Path) -> None:
    from cometnb import panel

    p = panel(open_history=False)
    p.prompt.value = "z" * 40_000
    p.model.value = "gpt-image-2"
    p.generate_button.click()
    assert p.wait(10)
    assert sim.request_count == 0
    shown = " ".join(re.sub(r"<[^>]+>", " ", t) for t in widget_texts(p))
    assert "32,000" in shown, "the panel does not name the limit"
    assert "z" * 1000 not in shown


# --- unicode, emoji, newlines ------------------------------------------------------------------

UNICODE = "Fuchs 🦊 im Schnee — 雪の中の狐 — ثعلب\nzweite Zeile\tmit Tab 👩🏽‍🚀"


def test_unicode_emoji_newlines_round_trip(
    client: Client, sim: SimServer, history_dir: Path
) -> None:
    from cometnb.history import History

    gen = client.generate(UNICODE, model=MODEL)
    assert sim.requests[0]["prompt"] == UNICODE
    reopened = History(history_dir)
    assert reopened[-1].prompt == UNICODE
    assert [r.id for r in reopened.find(text="🦊")] == [gen.record_id]
    path = gen.images[0].path
    assert path.is_relative_to(history_dir) and path.name.isascii()
    assert_escaped(reopened[-1]._repr_html_(), "record")


def test_magic_multiline_cell_is_one_prompt_and_each_line_splits(
    shell: Any, sim: SimServer
) -> None:
    result = shell.run_cell(f"%%cometimg -m {MODEL}\n{UNICODE}\n", store_history=False)
    assert result.success, repr(result.error_in_exec)
    assert [b["prompt"] for b in sim.requests] == [UNICODE]
    result = shell.run_cell(
        f"%%cometimg -m {MODEL} --each-line\n🦊 one\n\n  two 雪  \n", store_history=False
    )
    assert result.success, repr(result.error_in_exec)
    assert sorted(b["prompt"] for b in sim.requests[1:]) == sorted(["🦊 one", "two 雪"])


# --- braces in magic prompts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("a {undefined_thing} in the rain", ("undefined_thing",)),
        ("a {0} positional", ("{name}", "numbered", "empty")),
        ("an unmatched { brace", ("brace", "{{")),
        ("a {dict_value[missing]} key", ("missing", "filled")),
    ],
)
def test_magic_brace_problems_are_clear_and_send_nothing(
    shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str], body: str, words: tuple[str]
) -> None:
    shell.user_ns["dict_value"] = {"present": 1}
    result = shell.run_cell(f"%%cometimg -m {MODEL}\n{body}", store_history=False)
    out = capsys.readouterr().out
    assert result.error_in_exec is not None
    assert sim.request_count == 0
    assert_short_error(str(result.error_in_exec), words=tuple(w.lower() for w in words))
    assert "Traceback" not in out


def test_magic_double_braces_escape_and_names_fill_in(shell: Any, sim: SimServer) -> None:
    shell.user_ns["animal"] = "fox"
    result = shell.run_cell(
        f"%%cometimg -m {MODEL}\na {{animal}} with {{{{literal}}}} braces", store_history=False
    )
    assert result.success, repr(result.error_in_exec)
    assert sim.requests[0]["prompt"] == "a fox with {literal} braces"


def test_python_api_sends_braces_verbatim(client: Client, sim: SimServer) -> None:
    client.generate("a {curly} thing {{twice}}", model=MODEL)
    assert sim.requests[0]["prompt"] == "a {curly} thing {{twice}}"


# --- paths -------------------------------------------------------------------------------------


def test_dot_dot_in_prompt_and_tags_stays_inside_history(
    client: Client, history_dir: Path, tmp_path: Path
) -> None:
    before = set(tmp_path.rglob("*"))
    gen = client.generate("../../../../../tmp/evil/../../x", model=MODEL, tags=("../../up",))
    written = set(tmp_path.rglob("*")) - before
    outside = [p for p in written if not p.is_relative_to(history_dir)]
    assert not outside, f"files written outside the history folder: {outside}"
    assert gen.images[0].path.resolve().is_relative_to(history_dir.resolve())


def test_zip_export_members_are_safe_and_outside_files_refused(
    client: Client, hist: History, history_dir: Path, tmp_path: Path
) -> None:
    import json
    import sqlite3

    client.generate("../../../etc/passwd", model=MODEL)
    client.generate("second", model=MODEL)
    secret = tmp_path / "outside-secret.png"
    secret.write_bytes(b"not for export")
    # A tampered index points one image at a file outside the history folder.
    with contextlib.closing(sqlite3.connect(history_dir / "index.sqlite3")) as db:
        (rid, doc) = db.execute("SELECT id, doc FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        data = json.loads(doc)
        data["images"][0]["file"] = "../outside-secret.png"
        db.execute("UPDATE records SET doc = ? WHERE id = ?", (json.dumps(data), rid))
        db.commit()
    from cometnb.history import History

    out = History(history_dir).export(tmp_path / "sub" / ".." / "export.zip")
    assert out.resolve() == (tmp_path / "export.zip").resolve()
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert all(".." not in n and not n.startswith("/") for n in names), names
        assert all(
            n == "records.jsonl" or n == "MISSING.txt" or n.startswith("images/") for n in names
        )
        assert not any(zf.read(n) == b"not for export" for n in names)
        assert b"outside" in zf.read("MISSING.txt")  # refused, and said so


def test_export_with_unknown_suffix_is_refused(hist: History, tmp_path: Path) -> None:
    from cometnb import ValidationError

    with pytest.raises(ValidationError) as info:
        hist.export(tmp_path / "../escape.exe")
    assert_short_error(str(info.value), words=(".html", ".zip"))
    assert not (tmp_path.parent / "escape.exe").exists()


def test_magic_out_name_must_be_an_identifier(
    shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell(f"%%cometimg -m {MODEL} -o ../x\na cat", store_history=False)
    assert result.error_in_exec is not None
    assert sim.request_count == 0
    assert_short_error(str(result.error_in_exec), words=("-o", "--out", "variable"))
    assert "Traceback" not in capsys.readouterr().out


# --- shared fixtures (the magic shell and the panel settings) ----------------------------------


@pytest.fixture
def shell(magic_shell: Any) -> Any:
    return magic_shell


@pytest.fixture
def panel_env(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("cometnb.widget")
    from cometnb._core import settings as _settings

    monkeypatch.setenv("COMETAPI_KEY", FAKE_KEY)
    _settings.active().base_url = sim.base_url
    return _settings.resolve_history_dir()
