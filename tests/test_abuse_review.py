"""Gaps a hostile review of the issue-13 hardening found, one regression test (or a few) each:
text that cannot be stored in tags, input-image paths outside the history, absurd Retry-After
values, DNS rebinding past the download guard, replies with more images than asked for, and the
key echoed by a ``-o`` error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY

from cometnb._core.errors import ValidationError
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(90)

MODEL = "gpt-image-1-mini"


def _client(sim: SimServer, hist: History, **kwargs: Any) -> Any:
    from cometnb._client.client import Client

    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, **kwargs)


# --- B. tags that could not be stored are refused before sending -------------------------------


@pytest.mark.parametrize("bad", ["\udcff", "ok\ud800"])
def test_unstorable_tag_is_refused_before_sending(sim: SimServer, hist: History, bad: str) -> None:
    with _client(sim, hist) as c:
        with pytest.raises(ValidationError, match=r"tags\[1\].*position") as info:
            c.generate("a fox", model=MODEL, tags=["fine", bad])
        assert info.value.field == "tags"
        with pytest.raises(ValidationError, match=r"tags\[0\]"):
            c.generate_many([{"prompt": "a fox", "model": MODEL}], tags=[bad])
        with pytest.raises(ValidationError, match="tags"):
            c.generate("a fox", model=MODEL, tags=[f"key {FAKE_KEY}"])
    assert sim.request_count == 0
    assert not list(hist.path.rglob("*.png"))  # nothing billed, nothing stored unlisted


def test_async_client_refuses_an_unstorable_tag(sim: SimServer, hist: History) -> None:
    import asyncio

    from cometnb._client.client import AsyncClient

    async def main() -> None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            with pytest.raises(ValidationError, match=r"tags\[0\]"):
                await c.generate("a fox", model=MODEL, tags=["\ud800"])
            with pytest.raises(ValidationError, match=r"tags\[0\]"):
                await c.generate_many([{"prompt": "a fox", "model": MODEL}], tags=["\ud800"])

    asyncio.run(main())
    assert sim.request_count == 0


def test_magic_refuses_an_unstorable_tag(magic_shell: Any, sim: SimServer) -> None:
    result = magic_shell.run_cell(
        f"%%cometimg -m {MODEL} --tag bad\udcff\na cat", store_history=False
    )
    assert isinstance(result.error_in_exec, ValidationError)
    assert "tags[0]" in str(result.error_in_exec)
    assert sim.request_count == 0


# --- C. an edit input named outside the history folder is refused everywhere -------------------


def _crafted_edit(sim: SimServer, hist: History, tmp_path: Path) -> tuple[str, Path, bytes]:
    """A genuine edit's document, re-filed under a new id with its input pointing two levels
    up (at a private picture beside the history folder)."""
    import json

    from PIL import Image

    private = tmp_path / "private" / "holiday.png"
    private.parent.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(private)
    with _client(sim, hist) as c:
        c.generate("a fox", model=MODEL)
        c.edit("the same fox at night", "@-1", model=MODEL)
    doc = json.loads((hist.path / "records" / f"{hist[-1].id}.json").read_text())
    doc["id"] = "20261201-000000-0000-c0ffee"
    doc["doc"]["sources"][0].update(file="../private/holiday.png", record=None)
    (hist.path / "records" / f"{doc['id']}.json").write_text(json.dumps(doc))
    return doc["id"], private, private.read_bytes()


def test_edit_input_outside_the_history_is_not_restored_by_repair(
    sim: SimServer, hist: History, tmp_path: Path
) -> None:
    rid, _, _ = _crafted_edit(sim, hist, tmp_path)
    report = hist.repair()
    assert rid not in report.restored
    assert any(rid in p and "outside the history folder" in p for p in report.problems)
    assert hist.get(rid) is None and len(hist) == 2


def test_edit_input_outside_the_history_is_refused_by_views_exports_and_rerun(
    sim: SimServer, hist: History, tmp_path: Path
) -> None:
    import base64
    import json
    import zipfile

    from cometnb._storage.index import Index

    rid, private, data = _crafted_edit(sim, hist, tmp_path)
    fields = json.loads((hist.path / "records" / f"{rid}.json").read_text())
    Index(hist.path).insert(  # straight into the index, as another program could
        rid, 1.0, fields["prompt"], fields["model"], "ok", "[]", json.dumps(fields["doc"])
    )
    crafted = History(hist.path).get(rid)
    assert crafted is not None
    source = crafted.sources[0]
    assert source.path is None and source.outside
    with pytest.raises(OSError):
        source.data  # noqa: B018
    marker = base64.b64encode(data).decode()[:60]
    assert marker not in crafted._repr_html_()
    assert marker not in hist.export(tmp_path / "g.html", [crafted]).read_text("utf-8")
    with zipfile.ZipFile(hist.export(tmp_path / "g.zip", [crafted])) as zf:
        assert not any(zf.read(name) == data for name in zf.namelist())
    before = sim.request_count
    with _client(sim, hist) as c, pytest.raises(ValidationError, match="outside the history"):
        hist.rerun(crafted, client=c)
    assert sim.request_count == before
    assert private.read_bytes() == data  # untouched


# --- D. an absurd Retry-After on a 429 gives up and says when; never "may have been billed" ----


@pytest.mark.parametrize(
    "value", ["1e308", "99999999999999999999999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_absurd_retry_after_gives_up_with_a_date(sim: SimServer, hist: History, value: str) -> None:
    import time

    from cometnb._core.errors import RateLimitError

    sim.fault(
        "http",
        status=429,
        times=3,
        body={"error": {"message": "Rate limit", "type": "rate_limit"}},
        headers={"Retry-After": value},
    )
    with _client(sim, hist, max_retries=2) as c, pytest.raises(RateLimitError) as info:
        c.generate("a fox", model=MODEL)
    text = str(info.value)
    assert "billed" not in text and "unexpectedly" not in text, text
    assert "more than a year" in text
    assert time.strftime("%Y-", time.localtime(time.time() + 366 * 86400)) in text
    assert sim.request_count == 1  # not retried, and not slept on
    assert hist[-1].status == "error"


def test_parse_retry_after_caps_what_it_returns() -> None:
    from cometnb._client.retry import MAX_RETRY_AFTER_S, parse_retry_after

    for raw in ("1e308", "9" * 23, "inf", "Fri, 31 Dec 9999 23:59:59 GMT"):
        assert parse_retry_after({"Retry-After": raw}) == MAX_RETRY_AFTER_S, raw
    assert parse_retry_after({"retry-after-ms": "1e308"}) == MAX_RETRY_AFTER_S
    assert parse_retry_after({"Retry-After": "nan"}) is None
    assert parse_retry_after({"Retry-After": "-5"}) == 0.0
    assert parse_retry_after({"Retry-After": "  120  "}) == 120.0


# --- E. the download connects to the address that was checked (no DNS rebinding) ---------------


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``images.rebind.example`` resolves to a public address once, then to loopback (what a
    rebinding attacker's DNS server does); ``nowhere.rebind.example`` does not resolve. Every
    other name resolves as usual. Returns the lookups made, for the test to count."""
    import socket

    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "nowhere.rebind.example":
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host == "images.rebind.example":
            lookups.append(host)
            ip = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return lookups


def _mock_http(seen: list[Any], replies: list[Any]) -> Any:
    """The HTTP seam over a transport that records each request and never connects anywhere."""
    import httpx

    from cometnb._client.http import AsyncHttp

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies.pop(0)

    return AsyncHttp(httpx.Timeout(5.0), httpx.MockTransport(handler))


def _download(http: Any, url: str, *, allow_loopback: bool) -> bytes:
    """The seam's download, driven from a test (the pool closed after)."""
    from cometnb._client.http import adownload
    from cometnb._core.byte_limits import ByteLimits

    async def go() -> bytes:
        try:
            return await adownload(http, url, allow_loopback=allow_loopback, limits=ByteLimits())
        finally:
            await http.aclose()

    return asyncio.run(go())


def test_download_connects_to_the_checked_address(rebinding_dns: list[str]) -> None:
    import base64

    import httpx

    png = base64.b64decode(_png_b64())
    seen: list[httpx.Request] = []
    http = _mock_http(seen, [httpx.Response(200, content=png)])
    got = _download(http, "https://images.rebind.example:8443/a.png?sig=1", allow_loopback=True)
    assert got == png
    assert rebinding_dns == ["images.rebind.example"]  # resolved once, by the check
    (request,) = seen
    assert request.url.host == "93.184.216.34" and request.url.port == 8443
    assert request.url.path == "/a.png" and request.url.query == b"sig=1"
    assert request.headers["host"] == "images.rebind.example:8443"
    assert request.extensions["sni_hostname"] == "images.rebind.example"  # TLS checks the name


def test_redirect_hop_that_rebinds_to_loopback_is_refused(rebinding_dns: list[str]) -> None:
    import httpx

    from cometnb._core.errors import ResponseError

    seen: list[httpx.Request] = []
    replies = [httpx.Response(302, headers={"Location": "/internal-admin"})]
    http = _mock_http(seen, replies)
    with pytest.raises(ResponseError, match="loopback"):
        _download(http, "http://images.rebind.example/a.png", allow_loopback=False)
    assert len(seen) == 1 and seen[0].url.host == "93.184.216.34"


def test_image_url_whose_host_does_not_resolve_is_refused(
    sim: SimServer, hist: History, rebinding_dns: list[str]
) -> None:
    from cometnb._core.errors import ResponseError

    sim.fault(
        "http",
        status=200,
        body={"created": 1, "data": [{"url": "http://nowhere.rebind.example/x.png"}]},
    )
    with _client(sim, hist) as c, pytest.raises(ResponseError, match="does not resolve"):
        c.generate("a fox", model=MODEL)
    assert rebinding_dns == ["nowhere.rebind.example"]
    assert hist[-1].status == "error"


def _png_b64() -> str:
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


# --- F. a reply with more images than asked for is refused before decoding ---------------------


@pytest.mark.parametrize(("n", "sent"), [(None, 40), (2, 3)])
def test_reply_with_more_images_than_requested_is_refused(
    sim: SimServer, hist: History, n: int | None, sent: int
) -> None:
    from cometnb._core.errors import ResponseError

    body = {"created": 1, "data": [{"b64_json": _png_b64()} for _ in range(sent)]}
    sim.fault("http", status=200, body=body)
    asked = {} if n is None else {"n": n}
    with _client(sim, hist) as c, pytest.raises(ResponseError) as info:
        c.generate("a lighthouse", model=MODEL, **asked)
    assert f"{sent} images for a request of n={n or 1}" in str(info.value)
    assert info.value.may_be_billed
    assert sim.request_count == 1  # never retried
    rec = hist[-1]
    assert rec.status == "error" and not rec.images
    assert not list((hist.path / "images").glob("*.png"))  # nothing decoded or stored


def test_reply_with_exactly_n_images_is_kept(sim: SimServer, hist: History) -> None:
    sim.fault("http", status=200, body={"created": 1, "data": [{"b64_json": _png_b64()}] * 2})
    with _client(sim, hist) as c:
        gen = c.generate("a lighthouse", model=MODEL, n=2)
    assert gen.ok and len(gen.images) == 2


# --- G. a magic option error never repeats the key ---------------------------------------------


@pytest.mark.parametrize(
    "option", ["-o {secret_value}", "-o x{secret_value}", "--out={secret_value}"]
)
def test_magic_out_error_does_not_repeat_the_key(
    magic_shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    from IPython.core.error import UsageError

    magic_shell.user_ns["secret_value"] = FAKE_KEY
    result = magic_shell.run_cell(f"%%cometimg -m {MODEL} {option}\na cat", store_history=False)
    error = result.error_in_exec
    assert isinstance(error, UsageError)
    assert "-o/--out" in str(error) and FAKE_KEY not in str(error)
    out = capsys.readouterr()
    assert FAKE_KEY not in out.out + out.err
    assert sim.request_count == 0
