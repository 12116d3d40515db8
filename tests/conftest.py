"""Shared fixtures: every test runs with an isolated environment, history folder and key.

No globals to reset by hand: each test gets a fresh session (``fresh_session``) and the
default history points at a temp folder, so no test can write beside the repository.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cometnb._core import session as _session
from cometnb._core import settings as _settings
from cometnb._core.session import Session

if TYPE_CHECKING:
    from cometnb._client.client import Client
    from cometnb.history import History
    from cometnb.sim import SimServer


def _shared_fixtures() -> Path:
    """The API response samples in ``shared/fixtures``: beside the clone (as CI lays it out),
    else at the workspace's fixed place."""
    beside = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    return beside if beside.is_dir() else Path("/work/shared/fixtures")


SHARED_FIXTURES = _shared_fixtures()

# A shell that starts a job in the background (``make test &`` in a script) hands it SIGINT
# ignored, and Python then raises no KeyboardInterrupt: the Ctrl-C tests (and the kernels they
# interrupt, which inherit the disposition) would test nothing. Restore the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# A key shaped like a real one. Tests scan everything written for it.
FAKE_KEY = "sk-cometnb-test-7f3a9c2e51d04b86a1e0"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real key, no real URL, default history under tmp_path."""
    for var in (_settings.KEY_ENV, _settings.BASE_URL_ENV, _settings.HISTORY_ENV):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "history"
    monkeypatch.setenv(_settings.HISTORY_ENV, str(home))
    # A .env in the checkout (a developer's own key) must never reach a test: look beside the
    # test instead, where tests that want one write it.
    from cometnb._core import secret

    monkeypatch.setattr(secret, "dotenv_folder", tmp_path)
    secret.reset()
    return home


@pytest.fixture(autouse=True)
def fresh_session() -> Iterator[Session]:
    """A new session for each test (settings, key, ledger, histories, loop thread, previews):
    nothing to reset by hand; its threads are stopped after the test."""
    import cometnb

    made = cometnb._new_session()
    previous = _session.install(made)
    try:
        yield made
    finally:
        _session.install(previous)
        made.close()


@pytest.fixture
def fake_key() -> str:
    return FAKE_KEY


@pytest.fixture
def sim() -> Iterator[SimServer]:
    """A simulator on a free loopback port, stopped after the test."""
    from cometnb.sim import SimServer

    server = SimServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    return tmp_path / "hist"


@pytest.fixture
def hist(history_dir: Path) -> History:
    from cometnb.history import History

    return History(history_dir)


@pytest.fixture
def client(sim: SimServer, hist: History) -> Iterator[Client]:
    """A client wired to the simulator and a temp history, with short retry waits."""
    from cometnb._client.client import Client

    c = Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist)
    try:
        yield c
    finally:
        c.close()


def new_magic_shell(**config: object) -> Any:
    """A fresh IPython shell with cometnb loaded and ``%config CometImg.<name> = value`` applied.

    A new shell for every test (the way JupySQL's test shell works), so no trait or namespace
    leaks between tests and nothing has to be put back. It is made the current instance because
    ``IPython.display.display`` publishes through ``InteractiveShell.instance()``.
    """
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    settings = Config()
    settings.HistoryAccessor.enabled = False  # no IPython history database per test
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=settings)
    # IPython registers atexit_operations for every shell, and each runs a full gc.collect()
    # at exit: hundreds of test shells kept pytest busy for a minute after its summary. These
    # shells keep no history database and make no temp files, so nothing needs that clean-up.
    atexit.unregister(shell.atexit_operations)
    shell.extension_manager.load_extension("cometnb")
    for name, value in config.items():
        shell.run_line_magic("config", f"CometImg.{name} = {value!r}")
    return shell


@pytest.fixture
def magic_shell(sim: SimServer, history_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The magic's test shell: pointed at the simulator and a temp history, key in the env."""
    monkeypatch.setenv(_settings.KEY_ENV, FAKE_KEY)
    return new_magic_shell(base_url=sim.base_url, history_dir=str(history_dir))


def assert_no_key_in_tree(root: Path, key: str = FAKE_KEY) -> None:
    """Fail if ``key`` appears in any file below ``root`` (as text or bytes)."""
    needle = key.encode()
    for path in root.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"API key leaked into {path}"


def run_saved_notebook(
    nb: Any,
    folder: Path,
    *,
    key: str,
    history: Path,
    timeout: int = 120,
    interrupt_when: Callable[[], bool] | None = None,
) -> str:
    """Execute ``nb`` in a real kernel (this checkout's cometnb, ``key`` in its environment,
    errors allowed), save it as ``folder/verbose.ipynb`` and return the saved text.

    ``interrupt_when``: interrupt the kernel (as Jupyter's stop button does) once it is true.
    """
    import nbclient
    import nbformat

    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMETAPI", "COMETNB"))}
    env[_settings.KEY_ENV] = key
    env[_settings.HISTORY_ENV] = str(history)
    # The kernel imports this checkout's cometnb (the code under test), wherever it runs.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    runner = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    if interrupt_when is not None:
        threading.Thread(
            target=_interrupt, args=(runner, interrupt_when, timeout), daemon=True
        ).start()
    runner.execute(env=env)
    saved = folder / "verbose.ipynb"
    nbformat.write(nb, saved)
    return saved.read_text("utf-8")


def _interrupt(runner: Any, when: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = getattr(getattr(runner.km, "provisioner", None), "pid", None)
        if when() and pid:
            os.kill(pid, signal.SIGINT)  # what interrupt_kernel sends a local kernel
            return
        time.sleep(0.05)
