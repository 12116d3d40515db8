"""``make demo``: JupyterLab on the demo notebooks, against the real API or the simulator.

``python -m cometnb.demo`` copies the demo notebooks to a working folder outside the checkout
(``$COMETNB_DEMO_DIR``, default ``~/.local/share/cometnb/demo``; ``--workdir`` to choose),
starts JupyterLab there (loopback only, with a token) on ``01-quickstart.ipynb``, says whether
the notebooks will call the real API (``COMETAPI_KEY`` is set) or the offline simulator
(synthetic images), prints the URL and runs until Ctrl-C. SIGTERM (``kill``, ``timeout``) and
SIGHUP (a closed terminal) stop it the same way: Lab runs in its own session, so no signal
reaches it but ours, and an orphan Lab would keep the port and serve the folder. Lab's log goes
to a ``cometnb-demo-*`` temporary folder, removed when the demo ends, beside the demo Lab's own
settings overrides (no "get notified about Jupyter news?" prompt).
``python -m cometnb.demo --check`` is a smoke test of the whole thing for headless machines:
start Lab, wait until it answers, run the quickstart top to bottom in keyless mode, stop
everything.

Example::

    $ python -m cometnb.demo --check
    checking: JupyterLab on 127.0.0.1:41523, then 01-quickstart.ipynb in keyless mode
    ok: JupyterLab answered and served the notebook; 01-quickstart.ipynb ran (12 code cells)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from cometnb._core.settings import BASE_URL_ENV, DEFAULT_BASE_URL, HISTORY_ENV, KEY_ENV

FIRST_NOTEBOOK = "01-quickstart.ipynb"
NOTEBOOK_DIR = "notebooks"
# The repository root, when running from a checkout (make demo installs it editable).
REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 90.0
# The keyless demo's simulator takes this long per image (seconds), so a newcomer sees the
# progress line, Cancel, the queue and partial previews; tests leave it unset (instant).
SIM_LATENCY_ENV = "COMETNB_SIM_LATENCY"
DEMO_SIM_LATENCY = "4"
# Counted from the notebooks (tests/test_demo.py checks the counts): what running them costs.
COST_NOTE = (
    "Every image is billed to your account. Running notebooks 01-05 makes about 26 images,\n"
    "one per request, quality low except one at medium (02-compare), mostly 1024x1024 with a\n"
    "few 1536x1024 and 1024x1536: about US$0.20 at 2026 list prices. 06 (GPT Image 2.6) adds\n"
    "7 images, up to about US$1.10 (one xhigh and one high; that cell has --budget 1.10). The\n"
    "panel sends only what you click."
)
STOP_TIMEOUT_S = 20.0
# Lab 4 asks "Would you like to get notified about official Jupyter news?" in a toast over the
# quickstart; the demo answers no for its own Lab (news_url=None only stops the fetching).
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}
# Jupyter state for --check lives in a temp dir, so a user's workspace or config can't interfere.
JUPYTER_DIR_VARS = {
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
    "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
    "IPYTHONDIR": "ipython",
}


class DemoError(Exception):
    """Something the user can fix (no notebooks, no JupyterLab, Lab did not start)."""


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived: stop Lab and clean up, as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# SIGTERM: kill, timeout, a service manager; SIGHUP: the terminal was closed.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Stopped` inside the block (Python's default for
    them ends the process at once, skipping the ``finally`` that stops Lab). A second signal
    while the first is being handled is ignored, so the clean-up is not cut short."""
    stopping = False

    def raise_stopped(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, raise_stopped) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(text: str) -> None:
    """Print, even when the terminal is gone (after SIGHUP stdout may raise)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, flush=True)


def api_mode(env: Mapping[str, str]) -> str:
    """``"real"`` when the notebooks will find a key in the environment, else ``"simulator"``."""
    return "real" if env.get(KEY_ENV, "").strip() else "simulator"


def mode_message(env: Mapping[str, str]) -> str:
    """What the notebooks will talk to, in plain words (never the key itself)."""
    if api_mode(env) == "real":
        url = env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return f"{KEY_ENV} is set: the notebooks call the real API at {url}.\n{COST_NOTE}"
    return (
        f"{KEY_ENV} is not set: the notebooks start a local simulator. Images are SYNTHETIC\n"
        "(made on this machine, no API call, no cost). For the real API, stop this and run\n"
        f"  {KEY_ENV}=<your key> make demo\n"
        "or run %cometimg_key in a notebook (never paste the key into a cell)."
    )


def find_notebooks(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the demo notebooks (a source checkout has ``notebooks/``)."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / NOTEBOOK_DIR]
    if not explicit:
        candidates.append(REPO_ROOT / NOTEBOOK_DIR)
    for folder in candidates:
        if (folder / FIRST_NOTEBOOK).is_file():
            return folder.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise DemoError(
        f"demo notebooks not found (looked in {where}). They ship with the source "
        "repository: clone it and run `make demo` there, or pass --notebooks DIR."
    )


# --- the working copies -----------------------------------------------------------------
# Lab serves copies of the notebooks, never the tracked files: serving ``notebooks/`` itself let
# Lab's autosave write outputs and ``language_info`` into the committed notebooks (so ``make
# test`` failed after ``make demo``) and showed the build script in the file browser.

WORKDIR_ENV = "COMETNB_DEMO_DIR"
_STAMP = ".cometnb-demo.json"  # which tracked version each copy was made from


def default_workdir() -> Path:
    """``$COMETNB_DEMO_DIR``, else ``$XDG_DATA_HOME/cometnb/demo`` (``~/.local/share/…``)."""
    explicit = os.environ.get(WORKDIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(data) / "cometnb" / "demo"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_copies(source: Path, target: Path | None = None) -> Path:
    """Copy the demo notebooks from ``source`` into ``target`` (created); returns ``target``.

    A copy is refreshed from ``source`` only when the user has not changed it since it was
    made (its content still matches what was copied) and the tracked notebook changed.

    Example::

        >>> import tempfile, pathlib
        >>> src = pathlib.Path(tempfile.mkdtemp()); _ = (src / "a.ipynb").write_text("{}")
        >>> sorted(p.name for p in prepare_copies(src, src / "work").iterdir())
        ['.cometnb-demo.json', 'a.ipynb']
    """
    target = (target or default_workdir()).resolve()
    if target == source.resolve():
        raise ValueError("the demo's working folder must not be the tracked notebooks folder")
    target.mkdir(parents=True, exist_ok=True)
    stamp_file = target / _STAMP
    try:
        made: dict[str, dict[str, str]] = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        made = {}
    for notebook in sorted(source.glob("*.ipynb")):
        copy = target / notebook.name
        upstream = _digest(notebook)
        seen = made.get(notebook.name, {})
        untouched = copy.is_file() and seen.get("copy") == _digest(copy)
        if not copy.is_file() or (untouched and seen.get("source") != upstream):
            shutil.copyfile(notebook, copy)
            made[notebook.name] = {"source": upstream, "copy": _digest(copy)}
    stamp_file.write_text(json.dumps(made, indent=1, sort_keys=True))
    return target


def has_display() -> bool:
    """Whether a browser can be opened here (no: SSH sessions, containers, CI)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def free_port() -> int:
    """A free loopback port (we pick it so the URL we print is the one Lab listens on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_lab_settings(folder: Path) -> Path:
    """``folder`` as the demo Lab's application-settings folder: ``overrides.json`` holds
    :data:`LAB_OVERRIDES` (defaults for this Lab alone; a user's own setting still wins)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=2), encoding="utf-8")
    return folder


def lab_command(
    notebooks: Path,
    port: int,
    token: str,
    *,
    open_browser: bool,
    as_root: bool,
    settings_dir: Path,
    python: str = sys.executable,
) -> list[str]:
    """The JupyterLab command line: loopback only, a fixed port, a token, no network chatter.

    Lab serves ``notebooks`` (its root) and opens the quickstart in it; ``settings_dir`` (from
    :func:`write_lab_settings`) is its application-settings folder.
    """
    cmd = [python, "-m", "jupyter", "lab", str(notebooks / FIRST_NOTEBOOK)]
    cmd += [f"--ServerApp.root_dir={notebooks}", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    cmd += [f"--IdentityProvider.token={token}"]  # ServerApp.token is deprecated
    # notebook_shim's server extension (Notebook 7 installs it) reads every ServerApp member at
    # start-up, the deprecated ServerApp.token among them, and that read logs a deprecation
    # warning although only IdentityProvider.token is set. It only carries classic-notebook
    # server extensions over, which the demo has none of: off for the demo's Lab.
    cmd += ["--ServerApp.jpserver_extensions", "notebook_shim=False"]
    # Offline-friendly: no news feed, no update checks.
    cmd += [
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.app_settings_dir={settings_dir}",  # no news prompt (LAB_OVERRIDES)
    ]
    if not open_browser:
        cmd.append("--no-browser")
    if as_root:
        cmd.append("--allow-root")  # Lab refuses to start as root without it (containers)
    return cmd


def lab_url(port: int, token: str, notebook: str = FIRST_NOTEBOOK) -> str:
    """Where to point a browser (the token logs it in once; Lab then keeps a cookie)."""
    return f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}"


def _get(url: str, token: str, timeout: float = 5.0) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # loopback only
        data: bytes = response.read()
        return data


def wait_ready(
    proc: subprocess.Popen[bytes], port: int, token: str, timeout: float, log: Path
) -> None:
    """Poll Lab's ``/api/status`` until it answers; fail early if Lab exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"JupyterLab exited (code {proc.returncode}):\n{_tail(log)}")
        try:
            _get(f"http://127.0.0.1:{port}/api/status", token, timeout=2.0)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.25)
    raise DemoError(f"JupyterLab did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_lab(
    cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log_file: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start Lab in its own session, so a terminal's Ctrl-C reaches only us and we stop it."""
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_lab(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (Lab then shuts its kernels down), bounded; then kill the whole group.

    The stop signals are ignored meanwhile: a second ``kill`` must not leave Lab half-stopped.
    """
    with _signals_ignored():
        _stop(proc, timeout)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (*STOP_SIGNALS, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    _kill_group(proc.pid)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout)


def _kill_group(pgid: int) -> None:
    """Kill anything left in Lab's process group (it leads its own session)."""
    if not hasattr(os, "killpg"):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _require_jupyterlab() -> None:
    import importlib.util

    if importlib.util.find_spec("jupyterlab") is None:
        raise DemoError(
            "JupyterLab is not installed in this environment. `make demo` installs it; "
            "or run: pip install jupyterlab"
        )


def run_demo(
    notebooks: Path,
    port: int | None,
    open_browser: bool | None,
    workdir: Path | None = None,
) -> int:
    """Start Lab for a person on working copies: print the mode and the URL, run until Ctrl-C.

    Lab serves copies of the notebooks (outside the checkout), so its autosave never writes
    outputs into the tracked files.
    """
    _require_jupyterlab()
    notebooks = prepare_copies(notebooks, workdir)
    env = dict(os.environ)
    env.setdefault(SIM_LATENCY_ENV, DEMO_SIM_LATENCY)
    print(mode_message(env), flush=True)
    print(
        f"Working copies of the notebooks: {notebooks}\n"
        "(your runs and edits stay there; delete the folder to start over)",
        flush=True,
    )
    port = port or free_port()
    token = secrets.token_urlsafe(24)
    browser = has_display() if open_browser is None else open_browser
    # The handlers outlast the folder: a signal during its removal is ignored, not fatal.
    with stop_on_signals(), tempfile.TemporaryDirectory(prefix="cometnb-demo-") as tmp:
        log = Path(tmp) / "jupyterlab.log"
        settings = write_lab_settings(Path(tmp) / "lab-app-settings")
        cmd = lab_command(
            notebooks, port, token, open_browser=browser, as_root=is_root(), settings_dir=settings
        )
        return _serve(cmd, notebooks, env, log, port, token)


def _serve(
    cmd: Sequence[str], notebooks: Path, env: Mapping[str, str], log: Path, port: int, token: str
) -> int:
    """Run Lab until it exits, Ctrl-C, SIGTERM or SIGHUP; Lab is stopped in every case."""
    proc: subprocess.Popen[bytes] | None = None
    with log.open("wb") as log_file:
        try:
            proc = start_lab(cmd, notebooks, env, log_file)
            wait_ready(proc, port, token, STARTUP_TIMEOUT_S, log)
            print(f"\nJupyterLab is running (log: {log}). Open:\n  {lab_url(port, token)}")
            print("Press Ctrl-C to stop.", flush=True)
            proc.wait()
            print(f"JupyterLab stopped (code {proc.returncode}):\n{_tail(log)}")
            return proc.returncode or 0
        except KeyboardInterrupt:
            _say("\nstopping JupyterLab...")
            return 0
        except Stopped as stop:
            _say(f"\n{stop} received: stopping JupyterLab...")
            return 0
        finally:
            if proc is not None:
                stop_lab(proc)


def keyless_env(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """``base`` without a key or API URL, with history and Jupyter state under ``home``."""
    env = {k: v for k, v in base.items() if k not in (KEY_ENV, BASE_URL_ENV)}
    env[HISTORY_ENV] = str(home / "cometnb-history")
    for var, sub in JUPYTER_DIR_VARS.items():
        env[var] = str(home / "jupyter" / sub)
    return env


def make_state_dirs(env: Mapping[str, str]) -> None:
    """Create the Jupyter/IPython state folders ``keyless_env`` named (IPython warns otherwise)."""
    for var in JUPYTER_DIR_VARS:
        Path(env[var]).mkdir(parents=True, exist_ok=True)


def execute_notebook(path: Path, env: Mapping[str, str], timeout: float) -> int:
    """Run a notebook top to bottom with nbclient in ``path``'s folder; return code cells run."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        timeout=int(timeout),
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=dict(env))
    except CellExecutionError as err:  # the first failing cell, with its source and error
        raise DemoError(f"{path.name} failed:\n{err}") from None
    return sum(1 for cell in nb.cells if cell.cell_type == "code")


def run_check(notebooks: Path, timeout: float) -> int:
    """Smoke test: Lab starts and serves the notebooks; the quickstart runs keyless; all stops."""
    _require_jupyterlab()
    with stop_on_signals(), tempfile.TemporaryDirectory(prefix="cometnb-demo-check-") as tmp:
        home = Path(tmp)
        work = home / NOTEBOOK_DIR
        prepare_copies(notebooks, work)
        env = keyless_env(os.environ, home)
        make_state_dirs(env)
        port, token = free_port(), secrets.token_urlsafe(24)
        settings = write_lab_settings(home / "lab-app-settings")
        cmd = lab_command(
            work, port, token, open_browser=False, as_root=is_root(), settings_dir=settings
        )
        print(f"checking: JupyterLab on 127.0.0.1:{port}, then {FIRST_NOTEBOOK} in keyless mode")
        print(mode_message(env), flush=True)
        log = home / "jupyterlab.log"
        with log.open("wb") as log_file:
            proc = start_lab(cmd, work, env, log_file)
            try:
                wait_ready(proc, port, token, min(timeout, STARTUP_TIMEOUT_S), log)
                _check_served(port, token, FIRST_NOTEBOOK)
                cells = execute_notebook(work / FIRST_NOTEBOOK, env, timeout)
            finally:
                stop_lab(proc)
        print(
            "ok: JupyterLab answered and served the notebook; "
            f"{FIRST_NOTEBOOK} ran ({cells} code cells)",
            flush=True,
        )
    return 0


def _check_served(port: int, token: str, rel: str) -> None:
    """Lab's contents API must return the notebook (proves root dir and file are right)."""
    raw = _get(f"http://127.0.0.1:{port}/api/contents/{rel}?content=0", token)
    if json.loads(raw).get("type") != "notebook":
        raise DemoError(f"JupyterLab does not serve {rel} as a notebook")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cometnb.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="headless smoke test, then exit")
    parser.add_argument("--notebooks", help="folder with the demo notebooks (default: ./notebooks)")
    parser.add_argument("--port", type=int, help="port for JupyterLab (default: a free one)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the working copies of the notebooks go (default: $COMETNB_DEMO_DIR or "
        "~/.local/share/cometnb/demo)",
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument("--browser", dest="browser", action="store_true", default=None)
    browser.add_argument("--no-browser", dest="browser", action="store_false")
    parser.add_argument("--timeout", type=float, default=300.0, help="--check: seconds per cell")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        notebooks = find_notebooks(args.notebooks)
        if args.check:
            return run_check(notebooks, args.timeout)
        return run_demo(notebooks, args.port, args.browser, args.workdir)
    except DemoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Stopped as stop:  # --check, or before Lab started: everything is stopped by now
        _say(f"{stop} received: stopped")
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
