"""The smaller hardening defects of issue 13 (item 5), one regression test each."""

from __future__ import annotations

import base64
import json
import multiprocessing
import socket
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY

from cometnb._core.errors import CometError, ResponseError, ValidationError, redact
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(90)

MODEL = "gpt-image-1-mini"


def _png_b64() -> str:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


# --- short keys ------------------------------------------------------------------------------


def test_short_key_is_not_redacted_from_ordinary_words() -> None:
    from cometnb._core.errors import register_secret

    register_secret("test")
    register_secret("con")
    text = "a test pattern for the contest"
    assert redact(text) == text


def test_too_short_session_key_is_refused_with_a_message() -> None:
    from cometnb._core import settings as _settings

    with pytest.raises(ValidationError, match="too short") as info:
        _settings.set_session_key("test")
    assert "test" not in info.value.message.replace("too short", "")
    assert _settings.resolve_api_key() is None
    from cometnb._notebook.key_prompt import store_key  # what %cometimg_key shows

    assert "too short" in store_key("test") and _settings.resolve_api_key() is None


# --- a key echoed by a successful reply -------------------------------------------------------


def test_key_echoed_in_a_successful_reply_is_redacted_everywhere_shown(
    sim: SimServer, hist: History
) -> None:
    from cometnb._client.client import Client

    body = {
        "created": 1,
        "quality": f"low {FAKE_KEY}",
        "size": "1024x1024",
        "usage": {"total_tokens": 5, "note": f"key {FAKE_KEY}"},
        "data": [{"b64_json": _png_b64()}],
    }
    sim.fault("http", status=200, body=body)
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        gen = c.generate("a fox", model=MODEL)
    shown = json.dumps([gen.meta, gen.usage]) + gen._repr_html_() + repr(gen)
    assert FAKE_KEY not in shown and "[REDACTED]" in json.dumps(gen.meta)


# --- the key inside a prompt or field ---------------------------------------------------------


def test_python_api_refuses_a_prompt_holding_the_key(sim: SimServer, hist: History) -> None:
    from cometnb._client.client import Client

    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        with pytest.raises(ValidationError, match="API key") as info:
            c.generate(f"a fox, debug={FAKE_KEY}", model=MODEL)
        assert FAKE_KEY not in str(info.value)
        with pytest.raises(ValidationError, match="API key"):
            c.generate("a fox", model=MODEL, user=FAKE_KEY)
        with pytest.raises(ValidationError, match="request 1: prompt contains your API key"):
            c.generate_many([{"prompt": "ok", "model": MODEL}, {"prompt": FAKE_KEY}])
    assert sim.request_count == 0


def test_magic_refuses_a_prompt_holding_the_key_even_in_dry_run(
    shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns["secret_value"] = FAKE_KEY
    for options in ("--dry-run", ""):
        result = shell.run_cell(
            f"%%cometimg -m {MODEL} {options}\na fox {{secret_value}}", store_history=False
        )
        assert result.error_in_exec is not None, options
        assert "API key" in str(result.error_in_exec)
    out = capsys.readouterr()
    assert FAKE_KEY not in out.out + out.err
    assert sim.request_count == 0


def test_panel_refuses_a_prompt_holding_the_key(sim: SimServer, panel_env: Path) -> None:
    from cometnb import panel

    p = panel()
    p.prompt.value = f"a fox {FAKE_KEY}"
    p.model.value = MODEL
    p.generate_button.click()
    p.wait(10)
    assert sim.request_count == 0
    shown = p.message.value + p.form.fields["prompt"].error.value + p.form.general_error.value
    assert "API key" in shown and FAKE_KEY not in shown


# --- magic options ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["__builtins__", "get_ipython", "exit", "_", "In", "Out"])
def test_magic_out_refuses_reserved_names(shell: Any, sim: SimServer, name: str) -> None:
    result = shell.run_cell(f"%%cometimg -m {MODEL} -o {name}\na cat", store_history=False)
    assert result.error_in_exec is not None and "reserved" in str(result.error_in_exec)
    assert sim.request_count == 0
    assert callable(shell.user_ns["get_ipython"])


def test_magic_quoted_option_values(shell: Any, sim: SimServer, history_dir: Path) -> None:
    result = shell.run_cell(
        f'%%cometimg -m {MODEL} --tag "two words" --param user="ann smith" -o r\na cat',
        store_history=False,
    )
    assert result.error_in_exec is None, result.error_in_exec
    assert sim.requests[0]["user"] == "ann smith"
    assert History(history_dir)[-1].tags == ("two words",)


# --- record image paths outside the history ---------------------------------------------------


def _crafted_record(hist: History, outside: Path) -> str:
    from cometnb._storage.index import Index

    outside.write_bytes(base64.b64decode(_png_b64()))
    rel = Path("..") / ".." / outside.relative_to(outside.anchor)
    doc = {
        "request": {"prompt": "crafted", "model": MODEL},
        "images": [
            {
                "file": str(Path("images") / ".." / ".." / rel),
                "preview": str(outside),
                "format": "png",
                "width": 8,
                "height": 8,
                "bytes": 1,
            }
        ],
        "usage": None,
        "meta": {},
        "elapsed_s": 0.0,
        "error": None,
        "http_status": None,
        "origin": None,
        "synthetic": False,
        "version": "0",
    }
    Index(hist.path).insert(
        "20260101-000000-0000-abcdef", time.time(), "crafted", MODEL, "ok", "[]", json.dumps(doc)
    )
    return "20260101-000000-0000-abcdef"


def test_crafted_image_path_outside_the_history_is_refused_everywhere(
    hist: History, tmp_path: Path
) -> None:
    secret_png = tmp_path / "outside-secret.png"
    rid = _crafted_record(hist, secret_png)
    rec = History(hist.path).get(rid)
    assert rec is not None
    marker = base64.b64encode(secret_png.read_bytes()).decode()[:40]
    assert marker not in rec._repr_html_()
    gallery = History(hist.path).export(tmp_path / "g.html")
    assert marker not in gallery.read_text("utf-8")
    assert rec.images[0].path is None  # no path: nothing can read the outside file
    with pytest.raises(OSError):
        rec.images[0].data  # noqa: B018
    archive = History(hist.path).export(tmp_path / "g.zip")
    with zipfile.ZipFile(archive) as zf:
        assert not any("secret" in n for n in zf.namelist())


# --- Retry-After far away -------------------------------------------------------------------


def test_retry_after_beyond_today_names_the_date() -> None:
    from cometnb._client.retry import Failure, RetryPolicy
    from cometnb._core.billing import BillingRisk

    policy = RetryPolicy(max_retries=2)
    error = CometError("rate limited")
    decision = policy.decide(
        Failure(error, BillingRisk.RATE_LIMITED, "HTTP 429", retry_after=999999), 0, 0
    )
    assert decision.wait_s is None and decision.hint is not None
    when = time.localtime(time.time() + 999999)
    assert time.strftime("%Y-%m-%d", when) in decision.hint
    from cometnb._client.retry import _try_again_hint

    noon = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))
    assert _try_again_hint(600, now=noon).endswith("after 12:10:00 (local time).")
    assert "2026-06-13" in _try_again_hint(999999, now=noon)


# --- image download addresses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/img.png",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.1.1/x.png",
        "http://[fe80::1]/x.png",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
    ],
)
def test_download_to_private_or_odd_url_is_refused(sim: SimServer, hist: History, url: str) -> None:
    from cometnb._client.client import Client

    sim.fault("http", status=200, body={"created": 1, "data": [{"url": url}]})
    with (
        Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c,
        pytest.raises(ResponseError) as info,
    ):
        c.generate("a fox", model="dall-e-2")
    assert "public" in str(info.value)
    assert sim.downloads == 0


def test_loopback_download_is_refused_when_the_api_is_not_on_loopback() -> None:
    from cometnb._client.http import check_image_url

    with pytest.raises(ResponseError, match="loopback"):
        check_image_url("http://127.0.0.1:9/x.png", allow_loopback=False)
    assert check_image_url("http://127.0.0.1:9/x.png", allow_loopback=True).host == "127.0.0.1"
    with pytest.raises(ResponseError, match="private"):
        check_image_url("http://cdn.test/x", allow_loopback=False, resolve=lambda h: ["10.1.1.1"])


def test_redirect_to_link_local_is_refused(sim: SimServer, hist: History) -> None:
    import httpx

    from cometnb._client.client import Client

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/images/generations"):
            url = "http://93.184.216.34/img.png"
            return httpx.Response(200, json={"created": 1, "data": [{"url": url}]})
        if request.url.host == "93.184.216.34":
            return httpx.Response(302, headers={"location": "http://169.254.169.254/secret"})
        raise AssertionError(f"fetched {request.url}")

    with (
        Client(
            api_key=FAKE_KEY,
            base_url="https://api.example.com/v1",
            history=hist,
            transport=httpx.MockTransport(handler),
        ) as c,
        pytest.raises(ResponseError, match="link-local"),
    ):
        c.generate("a fox", model="dall-e-2")


def test_download_error_never_quotes_the_body(sim: SimServer, hist: History) -> None:
    import httpx

    from cometnb._client.client import Client

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/images/generations"):
            url = "http://93.184.216.34/img.png"
            return httpx.Response(200, json={"created": 1, "data": [{"url": url}]})
        return httpx.Response(200, content=b"PRIVATE-BODY-BYTES secret=hunter2 " * 10)

    with (
        Client(
            api_key=FAKE_KEY,
            base_url="https://api.example.com/v1",
            history=hist,
            transport=httpx.MockTransport(handler),
        ) as c,
        pytest.raises(ResponseError) as info,
    ):
        c.generate("a fox", model="dall-e-2")
    assert "PRIVATE" not in str(info.value) and "hunter2" not in str(info.value)


# --- the simulator and a bad Content-Length ---------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", ""])
def test_simulator_answers_400_to_a_bad_content_length(sim: SimServer, length: str) -> None:
    host, port = sim.base_url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {length}\r\n".encode()
            + b"Authorization: Bearer x\r\nConnection: close\r\n\r\n{}"
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    if length == "":
        assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
    else:
        assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
        assert b"Content-Length" in reply
    assert sim.errors == []


# --- History.tag across processes ------------------------------------------------------------


def _tag_many(folder: str, rid: str, prefix: str, count: int, ready: Any, go: Any) -> None:
    hist = History(folder)
    hist.get(rid)  # opened and loaded before the start signal, so both really overlap
    ready.release()
    go.wait(30)
    for i in range(count):
        hist.tag(rid, f"{prefix}{i}")


@pytest.mark.slow
def test_tag_from_two_processes_keeps_every_tag(sim: SimServer, hist: History) -> None:
    from cometnb._client.client import Client

    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        rid = str(c.generate("tag me", model=MODEL).record_id)
    hist.close()
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    procs = [
        ctx.Process(target=_tag_many, args=(str(hist.path), rid, p, 100, ready, go))
        for p in ("a", "b", "c")
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        assert ready.acquire(timeout=60)
    go.set()
    for proc in procs:
        proc.join(90)
        assert proc.exitcode == 0
    tags = History(hist.path).get(rid).tags  # type: ignore[union-attr]
    assert len(tags) == 300, f"{300 - len(tags)} of 300 tags lost"


# --- panel key field ------------------------------------------------------------------------


def test_panel_key_field_takes_the_key_on_enter_or_button_only(
    sim: SimServer, panel_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cometnb import panel
    from cometnb._core import settings as _settings

    monkeypatch.delenv("COMETAPI_KEY")
    p = panel()
    form = p.form if hasattr(p, "form") else p
    field = form.key
    assert field.continuous_update is False, "each keystroke would be taken as the key"
    field.value = "s"  # what one keystroke would have synced before
    assert _settings.resolve_api_key() is None or _settings.resolve_api_key() != "s"
    field.value = FAKE_KEY
    form.key_button.click()
    assert _settings.resolve_api_key() == FAKE_KEY and field.value == ""
    field.value = "short"
    form.key_button.click()
    shown = form.key_note.value + form.fields["key"].error.value + form.general_error.value
    assert "too short" in shown


# --- shared fixtures --------------------------------------------------------------------------


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
