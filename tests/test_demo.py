"""``python -m cometnb.demo`` (what ``make demo`` runs): command line, mode, and two live runs.

The live runs start the real JupyterLab on loopback and check that nothing survives them: every
process they start inherits a marker in its environment, and none may carry it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FAKE_KEY

from cometnb import demo

MARK = "COMETNB_DEMO_TEST_MARK"
REPO = Path(__file__).resolve().parent.parent


def test_lab_command_is_loopback_with_token() -> None:
    cmd = demo.lab_command(
        Path("/x/nb"), 8123, "tok", open_browser=False, as_root=True, settings_dir=Path("/x/s")
    )
    assert cmd[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert cmd[4] == "/x/nb/01-quickstart.ipynb"
    assert not any(arg.startswith("--ServerApp.token") for arg in cmd)
    for flag in (
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=8123",
        "--ServerApp.port_retries=0",  # the printed URL must be where Lab listens
        "--IdentityProvider.token=tok",
        "--ServerApp.root_dir=/x/nb",
        "--no-browser",
        "--allow-root",
        "--LabApp.app_settings_dir=/x/s",
    ):
        assert flag in cmd


def test_lab_command_opens_browser_and_drops_root_flag_when_asked() -> None:
    cmd = demo.lab_command(
        Path("nb"), 1, "t", open_browser=True, as_root=False, settings_dir=Path("s")
    )
    assert "--no-browser" not in cmd
    assert "--allow-root" not in cmd


def test_lab_url_carries_token_and_notebook() -> None:
    assert demo.lab_url(8123, "tok") == (
        "http://127.0.0.1:8123/lab/tree/01-quickstart.ipynb?token=tok"
    )


def test_mode_message_says_real_api_without_showing_the_key() -> None:
    env = {"COMETAPI_KEY": FAKE_KEY}
    assert demo.api_mode(env) == "real"
    text = demo.mode_message(env)
    assert "real API" in text and "https://api.cometapi.com/v1" in text
    assert FAKE_KEY not in text


def test_mode_message_says_images_are_synthetic_without_a_key() -> None:
    for env in ({}, {"COMETAPI_KEY": "  "}):
        assert demo.api_mode(env) == "simulator"
        text = demo.mode_message(env)
        assert "SYNTHETIC" in text and "COMETAPI_KEY=" in text and "%cometimg_key" in text


def test_keyless_env_drops_key_and_url_and_isolates_state(tmp_path: Path) -> None:
    base = {"COMETAPI_KEY": FAKE_KEY, "COMETAPI_BASE_URL": "http://x", "PATH": "/bin"}
    env = demo.keyless_env(base, tmp_path)
    assert "COMETAPI_KEY" not in env and "COMETAPI_BASE_URL" not in env
    assert env["PATH"] == "/bin"
    assert env["COMETNB_HISTORY"].startswith(str(tmp_path))
    assert env["JUPYTER_RUNTIME_DIR"].startswith(str(tmp_path))


def test_find_notebooks_finds_the_repository_folder() -> None:
    assert demo.find_notebooks() == (REPO / "notebooks").resolve()


def test_missing_notebooks_is_a_short_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--notebooks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "demo notebooks not found" in err and "Traceback" not in err


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark`` (all the demo's descendants do)."""
    psutil = pytest.importorskip("psutil")
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_nothing_left(mark: str) -> None:
    deadline = time.monotonic() + 15  # kernels exit shortly after their parent
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(mark) == [], "the demo left processes running"


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """An environment with a fake key and an unreachable API URL, marked for process checks."""
    mark = uuid.uuid4().hex
    env = dict(os.environ, **{MARK: mark, "PYTHONUNBUFFERED": "1"})
    env["COMETAPI_KEY"] = FAKE_KEY  # --check must drop it (keyless) ...
    env["COMETAPI_BASE_URL"] = "http://127.0.0.1:9/v1"  # ... or fail here, never spend
    for var, sub in demo.JUPYTER_DIR_VARS.items():
        env[var] = str(tmp_path / "jupyter" / sub)
    yield env, mark
    for pid in marked_processes(mark):  # only if a test failed midway
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_check_runs_quickstart_keyless_and_stops(
    demo_env: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, mark = demo_env
    before = sorted(p.name for p in (REPO / "notebooks").iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "cometnb.demo", "--check", "--timeout", "120"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "ok: JupyterLab answered" in out
    assert "SYNTHETIC" in out
    assert FAKE_KEY not in out
    assert_nothing_left(mark)
    assert sorted(p.name for p in (REPO / "notebooks").iterdir()) == before  # nothing written


def read_lines(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def wait_for_line(
    proc: subprocess.Popen[str], lines: queue.Queue[str], needle: str, timeout: float
) -> str:
    """Collect output until a line contains ``needle``; fail if the process exits first."""
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s:\n{seen}"
        try:
            seen += lines.get(timeout=1)
        except queue.Empty:
            assert proc.poll() is None, seen
    return seen


def _images_made(source: str) -> int:
    """How many images a %%cometimg cell (or a Python call) makes when run with a key."""
    if source.startswith("%%cometimg"):
        line, _, body = source.partition("\n")
        if "--dry-run" in line:
            return 0
        words = line.split()
        count = 1
        for flag in ("-m", "-s", "-q"):
            if flag in words:
                count *= len(words[words.index(flag) + 1].split(","))
        if "--each-line" in words:
            count *= sum(1 for text in body.splitlines() if text.strip())
        return count
    return source.count("client.generate(") + source.count(".rerun(") + source.count(".edit(")


def test_the_cost_note_matches_what_the_notebooks_make() -> None:
    import nbformat

    made: dict[str, int] = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        made[path.stem] = sum(_images_made(c.source) for c in nb.cells if c.cell_type == "code")
    cheap = sum(n for stem, n in made.items() if not stem.startswith("06-"))
    assert 24 <= cheap <= 28, made  # the note says "about 26 images" for 01-05
    assert made["06-gpt-image-2.6"] == 7, made  # and "7 images" for 06
    assert "about 26 images" in demo.COST_NOTE and "adds\n7 images" in demo.COST_NOTE
    readme = (REPO / "README.md").read_text().replace("\n  ", " ")
    assert "about 26 images" in readme and "up to about US$1.10" in readme


@contextlib.contextmanager
def running_demo(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """``python -m cometnb.demo`` headless, its output read line by line; killed if still
    running when the block ends (a failed test), and its reader joined."""
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    with subprocess.Popen(
        [sys.executable, "-m", "cometnb.demo"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            yield proc, lines
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        reader.join(10)


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_demo_serves_lab_headless_and_stops_on_ctrl_c(
    demo_env: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, mark = demo_env
    env["COMETNB_DEMO_DIR"] = str(tmp_path / "work")
    tracked_before = _git_status_notebooks(), _notebook_bytes()
    with running_demo(env) as (proc, lines):
        seen = wait_for_line(proc, lines, "Press Ctrl-C", 120)
        assert "real API" in seen  # a key was set: it says so (and would be billed)
        assert FAKE_KEY not in seen
        url = re.search(r"http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=\S+", seen)
        assert url, seen
        base, token = url.group(0).split("/lab/")[0], url.group(0).split("token=")[1]
        with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=10) as r:
            assert r.status == 200
        assert "Working copies of the notebooks" in seen
        # The demo's Lab says no to the news prompt: the default it serves the page (the
        # user's own settings are empty here, so this is what the page uses).
        news = f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification"
        with urllib.request.urlopen(f"{news}?token={token}", timeout=10) as r:
            notification = json.load(r)
        assert notification["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert "fetchNews" not in notification["settings"]
        _save_through_lab(base, token, "01-quickstart.ipynb")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(60) == 0
    assert_nothing_left(mark)
    saved = (tmp_path / "work" / "01-quickstart.ipynb").read_text()
    assert "saved by the demo test" in saved  # Lab wrote into the working copy ...
    # ... and the tracked notebooks are untouched (git status as clean as it was before).
    assert (_git_status_notebooks(), _notebook_bytes()) == tracked_before


def _git_status_notebooks() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--", "notebooks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _notebook_bytes() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((REPO / "notebooks").iterdir()) if p.is_file()}


def _save_through_lab(base: str, token: str, name: str) -> None:
    """What Lab's autosave does: GET the notebook, add an output, PUT it back."""
    url = f"{base}/api/contents/{name}?token={token}"
    with urllib.request.urlopen(url, timeout=10) as r:
        model = json.load(r)
    cell = next(c for c in model["content"]["cells"] if c["cell_type"] == "code")
    cell["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": "saved by the demo test\n"}
    ]
    cell["execution_count"] = 1
    body = json.dumps({"type": "notebook", "format": "json", "content": model["content"]})
    request = urllib.request.Request(
        url, data=body.encode(), method="PUT", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_demo_stops_lab_and_cleans_up_on_sigterm_and_sighup(
    demo_env: tuple[dict[str, str], str], tmp_path: Path, signum: int
) -> None:
    """``kill`` / ``timeout`` (SIGTERM) and a closed terminal (SIGHUP) stop Lab as Ctrl-C
    does: no orphan server on the port, no ``cometnb-demo-*`` folder left, and Lab started
    without the ``ServerApp.token`` deprecation warning."""
    env, mark = demo_env
    env["COMETNB_DEMO_DIR"] = str(tmp_path / "work")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env["TMPDIR"] = str(temp)  # where the demo's temporary folder goes
    with running_demo(env) as (proc, lines):
        seen = wait_for_line(proc, lines, "Press Ctrl-C", 120)
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/lab/", seen).group(1))  # type: ignore[union-attr]
        (folder,) = temp.glob("cometnb-demo-*")
        log = (folder / "jupyterlab.log").read_text(errors="replace")
        assert "ServerApp.token" not in log, log  # the deprecation warning is gone
        assert _port_open(port)
        proc.send_signal(signum)
        assert proc.wait(60) == 0
    out = seen
    while not lines.empty():
        out += lines.get_nowait()
    assert_nothing_left(mark)
    assert not _port_open(port), "an orphan JupyterLab still holds the port"
    assert list(temp.glob("cometnb-demo-*")) == [], "the demo left its temporary folder"
    assert f"{signal.Signals(signum).name} received: stopping JupyterLab" in out


# --- the working copies: made once, kept when the user changed them, refreshed otherwise ---
def _notebooks_source(tmp_path: Path) -> Path:
    src = tmp_path / "notebooks"
    src.mkdir()
    (src / "01-quickstart.ipynb").write_text('{"cells": []}')
    (src / "02-compare.ipynb").write_text('{"cells": [1]}')
    (src / "build_notebooks.py").write_text("print('not a notebook')")
    return src


def test_only_notebooks_are_copied(tmp_path: Path) -> None:
    work = demo.prepare_copies(_notebooks_source(tmp_path), tmp_path / "work")
    names = sorted(p.name for p in work.iterdir() if not p.name.startswith("."))
    assert names == ["01-quickstart.ipynb", "02-compare.ipynb"]


def test_a_copy_the_user_changed_is_kept_and_an_untouched_one_follows_upstream(
    tmp_path: Path,
) -> None:
    src = _notebooks_source(tmp_path)
    work = demo.prepare_copies(src, tmp_path / "work")
    (work / "01-quickstart.ipynb").write_text('{"cells": ["my outputs"]}')
    (src / "01-quickstart.ipynb").write_text('{"cells": ["new upstream"]}')
    (src / "02-compare.ipynb").write_text('{"cells": ["new upstream 2"]}')
    (src / "03-panel.ipynb").write_text("{}")
    demo.prepare_copies(src, work)
    assert (work / "01-quickstart.ipynb").read_text() == '{"cells": ["my outputs"]}'
    assert (work / "02-compare.ipynb").read_text() == '{"cells": ["new upstream 2"]}'
    assert (work / "03-panel.ipynb").is_file()


def test_default_workdir_is_outside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(demo.WORKDIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "/data/home")
    assert demo.default_workdir() == Path("/data/home/cometnb/demo")
    monkeypatch.setenv(demo.WORKDIR_ENV, "~/my-demo")
    assert demo.default_workdir() == Path("~/my-demo").expanduser()


def test_the_tracked_folder_itself_is_refused(tmp_path: Path) -> None:
    src = _notebooks_source(tmp_path)
    with pytest.raises(ValueError, match="must not be the tracked"):
        demo.prepare_copies(src, src)
