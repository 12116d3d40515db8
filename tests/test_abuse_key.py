"""The API key never reaches a traceback that shows locals (issue 13, item 1).

``traceback.TracebackException(..., capture_locals=True)`` prints the ``repr`` of every local
of every frame, as IPython's ``%xmode Verbose``, pdb post-mortem and rich/Sentry do; saved
notebooks keep what they print. Each failure below is scanned for a distinctive key: a plain
401 and 500, a prompt with a lone surrogate, a PNG whose header claims 30000x30000 pixels, an
interrupt from a callback and an interrupt (SIGINT) while the client waits on the socket. The
same failures then run in a real kernel with ``%xmode Verbose`` and the saved notebook is
scanned.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cometnb._client.client import Client
from cometnb._core.errors import CometError, ResponseError, ValidationError
from cometnb._core.secret import Secret
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(120)

DISTINCT = "sk-DISTINCTkey-4b8e1f0c9a7d6e5b3c2a1f0e9d8c"
MODEL = "gpt-image-1-mini"


def verbose_text(exc: BaseException) -> str:
    """Everything a locals-showing traceback of ``exc`` (and its chain) prints."""
    te = traceback.TracebackException.from_exception(exc, capture_locals=True)
    return "".join(te.format())


def assert_keyless(exc: BaseException, key: str = DISTINCT) -> None:
    text = verbose_text(exc)
    assert key not in text, "the API key is in a traceback with locals"
    assert key[3:20] not in text
    assert key not in repr(exc) and key not in str(exc)


@pytest.fixture
def keyed(sim: SimServer, tmp_path: Path) -> Iterator[Client]:
    with Client(api_key=DISTINCT, base_url=sim.base_url, history=History(tmp_path / "h")) as c:
        yield c


def _raised(call: Callable[[], Any], kind: type[BaseException] = CometError) -> BaseException:
    with pytest.raises(kind) as info:
        call()
    return info.value


# --- the secret type ------------------------------------------------------------------------


def test_secret_shows_only_a_mask_and_refuses_pickling() -> None:
    secret = Secret(DISTINCT)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret}"):
        assert DISTINCT not in shown and "sk-…8c" in shown
    assert secret.reveal() == DISTINCT and secret.bearer() == f"Bearer {DISTINCT}"
    assert copy.deepcopy(secret) is secret and Secret(DISTINCT) == secret
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "x"  # type: ignore[misc]


def test_client_repr_and_send_step_hide_the_key(keyed: Client, sim: SimServer) -> None:
    steps: list[str] = []
    # The steps are the engine's: the blocking client runs every request on it.
    body = keyed._prepare(keyed.build_request("a fox", model=MODEL))
    plan = keyed._engine._steps(body, None, None)
    steps.append(repr(next(plan)))
    plan.close()
    assert DISTINCT not in steps[0] and "Send(" in steps[0]
    assert DISTINCT not in repr(keyed) and DISTINCT not in repr(vars(keyed))
    assert DISTINCT not in repr(vars(keyed._engine))


# --- each failure, scanned with capture_locals -------------------------------------------------


def test_401_traceback_has_no_key(keyed: Client, sim: SimServer) -> None:
    sim.fault("http", status=401, body={"error": {"message": "Invalid token", "code": "bad"}})
    assert_keyless(_raised(lambda: keyed.generate("a fox", model=MODEL)))


def test_500_traceback_has_no_key(keyed: Client, sim: SimServer) -> None:
    sim.fault("500")
    assert_keyless(_raised(lambda: keyed.generate("a fox", model=MODEL)))


def test_lone_surrogate_is_refused_naming_the_position(keyed: Client, sim: SimServer) -> None:
    error = _raised(lambda: keyed.generate("a fox \ud800 in snow", model=MODEL), ValidationError)
    assert isinstance(error, ValidationError) and error.field == "prompt"
    assert "position 6" in error.message and "U+D800" in error.message
    assert_keyless(error)
    error.message.encode("utf-8")  # the message itself can be printed
    assert sim.request_count == 0


def test_lone_surrogate_in_an_extra_field_is_refused(keyed: Client, sim: SimServer) -> None:
    error = _raised(lambda: keyed.generate("a fox", model=MODEL, user="ann\udcff"), ValidationError)
    assert "user" in error.message and "position 3" in error.message
    assert sim.request_count == 0


def test_giant_png_header_is_a_response_error_without_the_key(
    keyed: Client, sim: SimServer, tmp_path: Path
) -> None:
    sim.fault("huge_header_png", width=30000, height=30000)
    error = _raised(lambda: keyed.generate("a fox", model=MODEL), ResponseError)
    assert "30000" in str(error) and "pixels" in str(error)
    assert_keyless(error)
    assert [r.status for r in History(tmp_path / "h")] == ["error"]


def test_interrupt_from_a_callback_has_no_key(keyed: Client, sim: SimServer) -> None:
    def on_event(event: Any) -> None:
        if event.kind == "sending":
            raise KeyboardInterrupt

    error = _raised(
        lambda: keyed.generate("a fox", model=MODEL, on_event=on_event), KeyboardInterrupt
    )
    assert_keyless(error)


def test_sigint_while_waiting_on_the_socket_has_no_key(
    keyed: Client, sim: SimServer, tmp_path: Path
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT is delivered to the main thread")
    sim.fault("latency", seconds=5)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        error = _raised(lambda: keyed.generate("a fox", model=MODEL), KeyboardInterrupt)
    finally:
        timer.cancel()
    assert_keyless(error)
    assert [r.status for r in History(tmp_path / "h")] == ["cancelled"]


def test_async_failure_traceback_has_no_key(sim: SimServer, tmp_path: Path) -> None:
    import asyncio

    from cometnb._client.client import AsyncClient

    sim.fault("500")

    async def go() -> BaseException:
        async with AsyncClient(DISTINCT, sim.base_url, history=History(tmp_path / "h")) as c:
            try:
                await c.generate("a fox", model=MODEL)
            except CometError as exc:
                return exc
        raise AssertionError("no error")

    assert_keyless(asyncio.run(go()))


def test_missing_key_error_and_bad_key_error_have_no_key(sim: SimServer, tmp_path: Path) -> None:
    spaced = DISTINCT[:20] + " " + DISTINCT[20:]
    with Client(api_key=spaced, base_url=sim.base_url, history=False) as c:
        error = _raised(lambda: c.generate("a fox", model=MODEL))
    assert spaced not in verbose_text(error) and DISTINCT[:20] not in verbose_text(error)


# --- a real kernel in %xmode Verbose ---------------------------------------------------------

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

KERNEL_CELLS = {
    "401": "c.generate('a fox', model='gpt-image-1-mini')",
    "500": "c.generate('a fox', model='gpt-image-1-mini')",
    "surrogate": "c.generate('a fox \\ud800', model='gpt-image-1-mini')",
    "bomb": "c.generate('a fox', model='gpt-image-1-mini')",
    "interrupt": (
        "import os, signal, threading\n"
        "threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "c.generate('a fox', model='gpt-image-1-mini')"
    ),
    "magic": "%%cometimg -m gpt-image-1-mini\na fox",
    "pdb-like": (
        "import sys, traceback\n"
        "try:\n    c.generate('a fox', model='gpt-image-1-mini')\n"
        "except Exception as e:\n"
        "    print(''.join(traceback.TracebackException.from_exception(e, capture_locals=True)"
        ".format()))"
    ),
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_verbose_kernel_notebook_never_holds_the_key(sim: SimServer, tmp_path: Path) -> None:
    from conftest import assert_no_key_in_tree, run_saved_notebook

    sim.fault("http", status=401, body={"error": {"message": "Invalid token", "code": "bad"}})
    sim.fault("500")
    sim.fault("huge_header_png", width=30000, height=30000)
    sim.fault("latency", seconds=8)
    sim.fault("500")
    sim.fault("500")
    history = tmp_path / "history"
    new = nbformat.v4.new_code_cell
    cells = [
        new("%load_ext cometnb\n%xmode Verbose"),
        new(
            f"%config CometImg.base_url = {sim.base_url!r}\n"
            "from cometnb import Client\n"
            f"c = Client(base_url={sim.base_url!r})"
        ),
        *(new(src, metadata={"tags": [name]}) for name, src in KERNEL_CELLS.items()),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    text = run_saved_notebook(nb, tmp_path, key=DISTINCT, history=history)
    by_tag = {c.metadata.get("tags", [None])[0]: c for c in nb.cells}
    errors = {
        name: [o for o in by_tag[name].outputs if o["output_type"] == "error"]
        for name in KERNEL_CELLS
    }
    assert errors["interrupt"] and errors["interrupt"][0]["ename"] == "KeyboardInterrupt"
    assert errors["surrogate"][0]["ename"] == "ValidationError"
    assert errors["bomb"][0]["ename"] == "ResponseError"
    assert "Traceback" in json.dumps(by_tag["pdb-like"].outputs)  # locals really were printed
    assert DISTINCT not in text and DISTINCT[3:20] not in text
    assert sim.request_count == 6
    assert_no_key_in_tree(tmp_path, DISTINCT)
