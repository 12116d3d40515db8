"""Every request goes through one HTTP seam, and the seam holds (issue 21, point 1).

The probes a hostile session ran against requests outside the main POST path, each in a fresh
process whose peak RSS (``VmHWM``) is its own: stacked ``Content-Encoding: gzip, gzip`` on a
result, an error body and a download (3 KB on the wire took a process to 2 GB); ``/v1/models``
and price catalogs that inflate to 1 GiB (2-4 GB, and a raw ``MemoryError``); a body sent one
byte per chunk (1 GB of chunk objects, 66 s); four capped failures at n=10 still holding their
chunks after returning (1.7 GB). Then the key: an interrupt while ``/v1/models`` is slow must
leave it in no frame's locals, in Python and in a saved ``%xmode Verbose`` notebook.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _bomb_client import run_in_child
from _hostile_server import HostileServer, bomb, byte_chunks, hang, json_reply, nested_gzip
from _hostile_server import _gzip_of_whitespace as gzip_bomb
from conftest import FAKE_KEY, assert_no_key_in_tree, run_saved_notebook

from cometnb._core.errors import APIError, ResponseError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_RSS_MB = 300  # the bombs of one reply; n=10 may hold its 424 MB cap: < 600 MB
GENERATIONS = "/v1/images/generations"
MODEL = "gpt-image-1-mini"
DISTINCT = "sk-DISTINCTkey-4b8e1f0c9a7d6e5b3c2a1f0e9d8c"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


def run_child(base_url: str, tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    outcome = run_in_child(base_url, tmp_path / "h", spec)
    print(f"peak RSS {outcome['maxrss_mb']:.0f} MB for {spec}")  # quoted in the report
    return outcome


def _tiny_png_b64() -> str:
    import base64

    from cometnb.sim.faults import png_header_only

    return base64.b64encode(png_header_only(1, 1)).decode("ascii")


# --- nested gzip: refused before a byte is decoded --------------------------------------------


@pytest.mark.parametrize(
    ("where", "status", "n"),
    [("result", 200, 1), ("error body", 500, 1), ("download", 200, 1), ("result", 200, 10)],
    ids=["post", "error-body", "download", "post-n10"],
)
def test_nested_gzip_is_refused_with_bounded_memory(
    server: HostileServer, tmp_path: Path, where: str, status: int, n: int
) -> None:
    wire = nested_gzip(1024)  # 1 GiB of whitespace, gzip twice: under 2 KB
    assert len(wire) < 4096
    if where == "download":
        url = f"{server.root}/files/a.png"
        server.routes["POST", GENERATIONS] = json_reply({"created": 1, "data": [{"url": url}]})
        server.routes["GET", "/files/a.png"] = bomb(wire, "gzip, gzip", content_type="image/png")
    else:
        server.routes["POST", GENERATIONS] = bomb(wire, "gzip, gzip", status)
    outcome = run_child(server.base_url, tmp_path, {"prompt": "a fox", "model": MODEL, "n": n})
    assert outcome["maxrss_mb"] < MAX_RSS_MB, f"peak RSS {outcome['maxrss_mb']:.0f} MB"
    assert outcome["type"] == "ResponseError", outcome
    assert "'gzip, gzip'" in outcome["message"] and len(outcome["message"]) < 400
    assert outcome["records"] == ["error"]
    assert server.requests.count(("POST", GENERATIONS)) == 1  # it may be billed: never resent


@pytest.mark.parametrize("encoding", ["br", "gzip, deflate", "zstd", "gzip,identity,gzip"])
def test_unknown_or_stacked_encodings_are_one_short_error(encoding: str) -> None:
    from cometnb._client.http import Budget

    response = httpx.Response(200, headers={"Content-Encoding": encoding}, stream=_Stream([b"x"]))
    with pytest.raises(ResponseError, match="decodes one layer of gzip or deflate only"):
        read_body(response, Budget("example.com", "the result", limit=100, seconds=5))


def test_one_known_layer_is_decoded_a_step_at_a_time() -> None:
    import zlib

    from cometnb._client.http import DECODE_STEP, Budget

    text = json.dumps({"data": ["x" * 300_000]}).encode()
    for encoding, packed in [
        ("gzip", zlib.compress(text, wbits=31)),
        ("deflate", zlib.compress(text)),
        ("deflate", zlib.compress(text, wbits=-15)),  # raw deflate, as some servers send
        ("identity", text),
    ]:
        response = httpx.Response(
            200, headers={"Content-Encoding": encoding}, stream=_Stream([packed])
        )
        assert read_body(response, Budget("h", "r", limit=len(text), seconds=5)) == text
    # Over the cap by one step: refused after at most one more step was decoded.
    budget = Budget("h", "r", limit=DECODE_STEP * 2, seconds=5)
    response = httpx.Response(
        200, headers={"Content-Encoding": "gzip"}, stream=_Stream([gzip_bomb(8)])
    )
    with pytest.raises(ResponseError, match="more than"):
        read_body(response, budget)
    assert budget.used <= DECODE_STEP * 3


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def read_body(response: httpx.Response, budget: Any) -> bytes:
    """The seam's reader, driven from a test."""
    from cometnb._client.http import aread_body

    return asyncio.run(aread_body(response, budget))


# --- side fetches: /v1/models and the price catalog are capped too -----------------------------


@pytest.mark.parametrize("layers", [1, 2], ids=["gzip", "gzip-gzip"])
def test_model_list_bomb_is_capped(server: HostileServer, tmp_path: Path, layers: int) -> None:
    encoding = ", ".join(["gzip"] * layers)
    server.routes["GET", "/v1/models"] = bomb(nested_gzip(1024, layers), encoding)
    outcome = run_child(server.base_url, tmp_path, {"fetch": "models"})
    assert outcome["maxrss_mb"] < MAX_RSS_MB, f"peak RSS {outcome['maxrss_mb']:.0f} MB"
    assert outcome["models"] is None  # unknown, not a crash
    assert server.requests == [("GET", "/v1/models")]


@pytest.mark.parametrize("layers", [1, 2], ids=["gzip", "gzip-gzip"])
def test_price_catalog_bomb_is_one_short_error(
    server: HostileServer, tmp_path: Path, layers: int
) -> None:
    encoding = ", ".join(["gzip"] * layers)
    server.routes["GET", "/api/models"] = bomb(nested_gzip(1024, layers), encoding)
    outcome = run_child(server.base_url, tmp_path, {"fetch": "catalog"})
    assert outcome["maxrss_mb"] < MAX_RSS_MB, f"peak RSS {outcome['maxrss_mb']:.0f} MB"
    assert outcome["type"] == "ResponseError", outcome
    words = "more than 32 MB" if layers == 1 else "'gzip, gzip'"
    assert words in outcome["message"] and "price catalog" in outcome["message"]
    assert not (tmp_path / "h" / "prices").exists()  # the prices in force are unchanged


# --- per-chunk overhead and a total time ------------------------------------------------------


def test_one_byte_chunks_cost_one_byte_each(tmp_path: Path) -> None:
    # 4 MB of JSON in 4 million one-byte chunks, through the client's whole POST path.
    script = f"""
import base64, json, httpx, sys
sys.path.insert(0, {str(HERE)!r})
from _bomb_client import peak_rss_mb
from cometnb._client.client import Client
from cometnb.history import History

png = {_tiny_png_b64()!r}
body = json.dumps({{"created": 1, "data": [{{"b64_json": png}}]}}).encode() + b" " * (4 << 20)

class OneByte(httpx.AsyncByteStream):
    async def __aiter__(self):
        for i in range(len(body)):
            yield body[i:i + 1]

def answer(request):
    return httpx.Response(200, headers={{"content-type": "application/json"}}, stream=OneByte())

with Client(api_key={FAKE_KEY!r}, base_url="http://127.0.0.1:9/v1",
            transport=httpx.MockTransport(answer), history=History({str(tmp_path / "h")!r})) as c:
    gen = c.generate("a fox", model={MODEL!r})
print(json.dumps({{"ok": gen.ok, "maxrss_mb": peak_rss_mb()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"peak RSS {outcome['maxrss_mb']:.0f} MB for 4 MB in one-byte chunks")
    assert outcome["ok"]
    # Chunk objects kept in a list cost ~40 bytes per byte (170 MB here); one buffer: ~4 MB.
    assert outcome["maxrss_mb"] < 120, f"peak RSS {outcome['maxrss_mb']:.0f} MB"


def test_one_byte_chunks_over_the_wire_end_at_the_total_time(
    server: HostileServer, tmp_path: Path
) -> None:
    server.routes["POST", GENERATIONS] = byte_chunks(b" " * (8 << 20))
    spec = {"prompt": "a fox", "model": MODEL, "limits": {"deadline_s": 2.0}}
    outcome = run_child(server.base_url, tmp_path, spec)
    assert outcome["type"] == "ResponseError"
    assert "still sending the result after 2 s" in outcome["message"]
    assert outcome["elapsed_s"] < 30  # loose; it took 66 s before
    assert outcome["maxrss_mb"] < MAX_RSS_MB


def test_failures_at_n10_hold_nothing_once_returned(server: HostileServer, tmp_path: Path) -> None:
    # Each reply inflates past the n=10 cap (424 MB); four of them one after another.
    server.routes["POST", GENERATIONS] = bomb(gzip_bomb(1024), "gzip")
    spec = {"prompt": "a fox", "model": MODEL, "n": 10, "copies": 4}
    outcome = run_child(server.base_url, tmp_path, spec)
    print(f"RSS held after four n=10 failures: {outcome['held_rss_mb']:.0f} MB")
    assert outcome["held"] == 4 and outcome["records"] == ["error"] * 4
    assert "more than 424 MB" in outcome["message"]
    assert outcome["maxrss_mb"] < 600, f"peak RSS {outcome['maxrss_mb']:.0f} MB"
    assert outcome["held_rss_mb"] < 150, f"{outcome['held_rss_mb']:.0f} MB still held"


def test_a_failed_read_keeps_no_buffer_in_its_traceback() -> None:
    from cometnb._client.http import Budget

    response = httpx.Response(
        200, headers={"Content-Encoding": "gzip"}, stream=_Stream([gzip_bomb(16)])
    )
    with pytest.raises(ResponseError) as info:
        read_body(response, Budget("h", "the result", limit=8 << 20, seconds=5))
    held = 0
    tb = info.value.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, bytes | bytearray):
                held += len(value)
        tb = tb.tb_next
    assert held <= 2 * 65536, f"{held:,} bytes kept alive by the error's traceback"


# --- the key during the model look-up --------------------------------------------------------


def _model_gone() -> APIError:
    return APIError(
        "The model `gpt-image-9` does not exist",
        status=404,
        code="model_not_found",
    )


def test_interrupt_during_the_model_lookup_leaves_no_key_in_any_local(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cometnb._client.lookups import explain_missing_model
    from cometnb._core import settings as _settings

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT is delivered to the main thread")
    monkeypatch.setenv(_settings.KEY_ENV, DISTINCT)
    server.routes["GET", "/v1/models"] = hang(20)

    def interrupt_when_asked() -> None:
        if server.arrived.wait(10):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_asked, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as info:
        explain_missing_model(_model_gone(), "gpt-image-9", base_url=server.base_url)
    te = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    text = "".join(te.format())
    assert "served_image_models" in text  # the interrupt really came from the look-up
    assert DISTINCT not in text and DISTINCT[3:20] not in text
    assert server.requests == [("GET", "/v1/models")]


nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")


@pytest.mark.timeout(240)
def test_verbose_notebook_interrupted_during_the_model_lookup_holds_no_key(
    server: HostileServer, tmp_path: Path
) -> None:
    server.routes["POST", GENERATIONS] = json_reply(
        {"error": {"message": "The model `gpt-image-9` does not exist", "code": "model_not_found"}},
        404,
    )
    server.routes["GET", "/v1/models"] = hang(60)
    new = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(
        cells=[
            new("%load_ext cometnb\n%xmode Verbose"),
            new(f"%config CometImg.base_url = {server.base_url!r}"),
            new("%%cometimg -m gpt-image-9\na fox"),
        ]
    )
    text = run_saved_notebook(
        nb,
        tmp_path,
        key=DISTINCT,
        history=tmp_path / "history",
        # Jupyter's stop button, pressed while the kernel waits for the model list.
        interrupt_when=lambda: ("GET", "/v1/models") in server.requests,
    )
    errors = [o for o in nb.cells[2].outputs if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt", nb.cells[2].outputs
    shown = "\n".join(errors[0]["traceback"])
    assert "served_image_models" in shown, "the interrupt did not reach the look-up"
    assert DISTINCT not in text and DISTINCT[3:20] not in text
    assert_no_key_in_tree(tmp_path, DISTINCT)
