"""A history folder that is read-only or on a full disk: one clear error, nothing lost.

Where the test runs as root and may mount, the folder is a real tmpfs: remounted read-only, or
a tiny one filled to the last byte (real ``EROFS`` / ``ENOSPC`` from the kernel, SQLite
included). Elsewhere a non-root user gets ``chmod a-w`` for read-only, and the full disk is
simulated by making ``os.replace`` (how every history file is committed) raise ``ENOSPC``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _faults import assert_clean, assert_short_error
from conftest import FAKE_KEY, new_magic_shell

from cometnb._core.errors import CometError

if TYPE_CHECKING:
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

MODEL = "gpt-image-1-mini"
DISK_WORDS = ("space", "full", "read-only", "permission", "write", "save", "store", "record")


# --- a real tmpfs where allowed -------------------------------------------------------------


def _mount(target: Path, *options: str) -> bool:
    """Mount a tmpfs on ``target``; False where that is not allowed (not root, no mount)."""
    if os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join(("size=4m", *options)), "tmpfs", str(target)],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _umount(target: Path) -> None:
    # Lazy: the history keeps its SQLite file open; detach now, free when it closes.
    subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=10, check=False)


@contextlib.contextmanager
def tmpfs(target: Path) -> Iterator[bool]:
    mounted = _mount(target)
    try:
        yield mounted
    finally:
        if mounted:
            _umount(target)


def _remount_readonly(target: Path) -> bool:
    done = subprocess.run(
        ["mount", "-o", "remount,ro", str(target)], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


def _fill(target: Path) -> Path:
    """Write a filler file until the tmpfs is full; returns it (delete it to free space)."""
    filler = target / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (65536, 512, 1):  # down to the last byte, so not even a preview fits
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)
    return filler


# --- the scenario, shared by every variant ----------------------------------------------------


def _client(sim: SimServer, folder: Path) -> Any:
    from cometnb._client.client import Client
    from cometnb.history import History

    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=History(folder))


def _seed(sim: SimServer, folder: Path) -> tuple[str, bytes]:
    """One successful generation saved before the disk goes bad: (record id, image bytes)."""
    with _client(sim, folder) as c:
        gen = c.generate("saved before the trouble", model=MODEL)
    return str(gen.record_id), gen.images[0].data


def _assert_nothing_lost(folder: Path, record_id: str, data: bytes) -> None:
    from cometnb.history import History

    reopened = History(folder)
    rec = reopened.get(record_id)
    assert rec is not None and rec.status == "ok", "the earlier record was lost"
    assert rec.images[0].path.read_bytes() == data, "the earlier image was damaged"


def _magic_shell(sim: SimServer, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The magic's shell (conftest), pointed at ``sim`` and the history ``folder``."""
    monkeypatch.setenv("COMETAPI_KEY", FAKE_KEY)
    return new_magic_shell(base_url=sim.base_url, history_dir=str(folder))


def _generate_fails_clearly(sim: SimServer, folder: Path) -> BaseException:
    """Every failure a user sees is a CometError (one paragraph), not a raw OSError."""
    from cometnb import CometError

    with _client(sim, folder) as c, pytest.raises(CometError) as info:
        c.generate("this one cannot be saved", model=MODEL)
    text = str(info.value)
    assert_short_error(text, words=DISK_WORDS)
    return info.value


def test_read_only_history_folder(sim: SimServer, tmp_path: Path) -> None:
    folder = tmp_path / "ro-history"
    with tmpfs(folder) as mounted:
        record_id, data = _seed(sim, folder)
        if mounted:
            assert _remount_readonly(folder)
        elif os.geteuid() != 0:
            for path in (folder, *folder.rglob("*")):
                path.chmod(0o555 if path.is_dir() else 0o444)
        else:
            pytest.skip("root without mount: a read-only folder cannot be simulated faithfully")
        try:
            error = _generate_fails_clearly(sim, folder)
            _assert_nothing_lost(folder, record_id, data)
        finally:
            if not mounted:
                for path in (folder, *folder.rglob("*")):
                    path.chmod(0o755 if path.is_dir() else 0o644)
    # Found before sending: the request that could not have been saved was never billed.
    assert sim.request_count == 1
    assert "nothing was sent" in str(error)
    assert_clean(tmp_path, str(error), repr(error))


@pytest.mark.parametrize("origin", ["client", "magic"])
def test_a_history_folder_that_is_a_file_is_refused_before_sending(
    sim: SimServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    origin: str,
) -> None:
    not_a_folder = tmp_path / "history.txt"
    not_a_folder.write_text("my notes")
    if origin == "client":
        with _client(sim, not_a_folder) as c, pytest.raises(CometError) as info:
            c.generate("never sent", model=MODEL)
        text = str(info.value)
    else:
        ip = _magic_shell(sim, not_a_folder, monkeypatch)
        try:
            result = ip.run_cell(f"%%cometimg -m {MODEL},gpt-image-1\na grid", store_history=False)
        finally:
            ip.run_line_magic("config", f"CometImg.history_dir = {str(tmp_path / 'h')!r}")
        out = capsys.readouterr().out
        assert "Traceback" not in out, out[-1500:]
        assert result.error_in_exec is not None
        text = str(result.error_in_exec)
    assert_short_error(text, words=("nothing was sent", "history_dir"))
    assert str(not_a_folder) in text and "all 2 requests" not in text
    assert sim.request_count == 0 and not_a_folder.read_text() == "my notes"


def test_full_disk_history_folder(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "full-history"
    elsewhere = _temp_dir(tmp_path, monkeypatch)
    with tmpfs(folder) as mounted:
        record_id, data = _seed(sim, folder)
        if mounted:
            filler = _fill(folder)
        else:
            _enospc_on_replace(monkeypatch)
        error = _generate_fails_clearly(sim, folder)
        _assert_nothing_lost(folder, record_id, data)
        _assert_billed_image_kept(elsewhere, str(error))
        if mounted:  # space comes back: the history works again
            filler.unlink()
            with _client(sim, folder) as c:
                assert c.generate("after cleaning up", model=MODEL).ok
    assert_clean(tmp_path, str(error), repr(error))


def _temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tempfile`` puts things during the test (not the machine's /tmp)."""
    folder = tmp_path / "t"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _assert_billed_image_kept(temp_dir: Path, error_text: str) -> None:
    """The image the history could not take was billed: a copy waits elsewhere, named."""
    (folder,) = temp_dir.glob("cometnb-unsaved-*")
    assert folder.stat().st_mode & 0o077 == 0, "the copy is readable by other users"
    (kept,) = folder.iterdir()
    assert kept.read_bytes().startswith(b"\x89PNG"), "the kept copy is not the image"
    assert str(kept.parent) in error_text, error_text


def _enospc_on_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)


def test_full_disk_through_the_magic(
    sim: SimServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The magic shows one short line (no traceback) and the earlier record survives."""
    folder = tmp_path / "magic-full-history"
    elsewhere = _temp_dir(tmp_path, monkeypatch)
    ip = _magic_shell(sim, folder, monkeypatch)
    try:
        with tmpfs(folder) as mounted:
            record_id, data = _seed(sim, folder)
            if mounted:
                _fill(folder)
            else:
                _enospc_on_replace(monkeypatch)
            result = ip.run_cell(f"%%cometimg -m {MODEL}\na full disk", store_history=False)
            out = capsys.readouterr().out
            assert result.error_in_exec is not None
            assert "Traceback" not in out, out[-1500:]
            assert_short_error(str(result.error_in_exec), words=DISK_WORDS)
            _assert_nothing_lost(folder, record_id, data)
            _assert_billed_image_kept(elsewhere, str(result.error_in_exec))
    finally:
        ip.run_line_magic("config", "CometImg.base_url = None")
        ip.run_line_magic("config", "CometImg.history_dir = None")
    assert_clean(tmp_path, out)
