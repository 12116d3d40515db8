"""Previews off the request path (cometnb._storage.preview_queue): after the commit, or on the
first display when the process died before making them."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _history_helpers import api_result, body, noisy_png

from cometnb._core.images import inspect_image
from cometnb._storage import files as _files
from cometnb._storage.preview_queue import previews
from cometnb._views.cards import record_html
from cometnb.history import History

ROOT = Path(__file__).resolve().parents[2]

_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from cometnb._storage.preview_queue import previews
    from cometnb.history import History
    from cometnb._core.generations import ApiImage, ApiResult
    from cometnb._core.images import inspect_image

    previews().enabled = False  # the process dies right after the commit, before any preview
    data = open(sys.argv[2], "rb").read()
    fmt, w, h = inspect_image(data)
    rec = History(sys.argv[1]).record_success(
        {"model": "gpt-image-2", "prompt": "a harbour at dawn"},
        ApiResult([ApiImage(data, fmt, w, h)]), elapsed_s=1.0)
    print(rec.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_crash_after_the_commit_leaves_a_record_that_shows_and_gets_its_preview(
    tmp_path: Path,
) -> None:
    original = noisy_png(1024)
    source = tmp_path / "original.png"
    source.write_bytes(original)
    folder = tmp_path / "hist"
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, str(folder), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == -9, proc.stderr[-500:]
    record_id = proc.stdout.strip()
    rec = History(folder).get(record_id)
    assert rec is not None and rec.ok
    (img,) = rec.images
    assert img.path is not None and img.path.read_bytes() == original
    assert img.preview_path is not None and not img.preview_path.exists()
    html = record_html(rec)  # shows: the preview is made now, on first display
    embedded = [base64.b64decode(m) for m in re.findall(r"base64,([A-Za-z0-9+/=]+)", html)]
    assert embedded and all(len(data) < len(original) // 10 for data in embedded)
    assert img.preview_path.exists()  # … and kept for next time
    assert max(inspect_image(img.preview_path.read_bytes())[1:]) <= 512


def test_previews_are_made_after_the_commit_without_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.name == "posix" else "?")
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    hist = History(tmp_path / "hist")
    rec = hist.record_success(body(), api_result(noisy_png(1024)), elapsed_s=1.0)
    assert previews().drain(10)
    (img,) = rec.images
    assert img.preview_path is not None and img.preview_path.suffix == ".webp"
    assert inspect_image(img.preview_path.read_bytes())[0] == "webp"
    # One fsync for the image file and one for its folder (the rename); none for the preview
    # (the record's own document, for rebuilding the index, is synced by the writer too).
    assert len([p for p in synced if "/hist/images" in p]) == 2
    assert not any("/hist/previews" in p for p in synced)


def test_a_small_image_is_its_own_preview(tmp_path: Path) -> None:
    small = noisy_png(256)
    rec = History(tmp_path / "h").record_success(body(), api_result(small), elapsed_s=1.0)
    (img,) = rec.images
    assert img.preview_path == img.path and img.preview(512)[0] == small


def test_a_view_waits_for_a_queued_preview_instead_of_making_its_own(tmp_path: Path) -> None:
    hist = History(tmp_path / "hist")
    rec = hist.record_success(body(), api_result(noisy_png(1024)), elapsed_s=1.0)
    (img,) = rec.images
    assert img.preview_path is not None
    data, mime = img.preview()
    assert mime == "image/webp" and img.preview_path.read_bytes() == data


def test_the_queue_survives_an_unreadable_original(tmp_path: Path) -> None:
    target = tmp_path / "p.webp"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    from cometnb._storage.preview_queue import PreviewJob

    previews().submit([PreviewJob(bad, target, 512)])
    assert previews().drain(10) and not target.exists()
    _files.atomic_write(target, b"x", durable=False)
    assert target.read_bytes() == b"x"


def test_previews_wait_while_a_blocking_call_holds_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cometnb._storage import preview_queue

    monkeypatch.setattr(preview_queue, "_HOLD_S", 120.0)  # however slow this machine is
    hist = History(tmp_path / "hist")
    queue = previews()
    with queue.held():
        recs = [
            hist.record_success(body(), api_result(noisy_png(1024)), elapsed_s=1.0)
            for _ in range(3)
        ]
        paths = [rec.images[0].preview_path for rec in recs]
        assert all(p is not None for p in paths)
        assert not queue.drain(0.5)  # queued, not started: the call is still running
        assert not any(p.exists() for p in paths if p is not None)
        # A view that needs one now makes it itself instead of waiting for the held queue.
        data, mime = recs[0].images[0].preview()
        assert mime == "image/webp" and paths[0] is not None and paths[0].read_bytes() == data
    assert queue.drain(30)  # released: the rest are made, the one already made is kept
    assert all(p is not None and p.exists() for p in paths)
    assert paths[0] is not None and paths[0].read_bytes() == data


def test_a_blocking_call_returns_before_its_previews_are_made(tmp_path: Path) -> None:
    from cometnb._client.loop import loop_thread

    hist = History(tmp_path / "hist")

    async def store() -> Path | None:  # a request's last step: the record commits
        rec = hist.record_success(body(), api_result(noisy_png(1024)), elapsed_s=1.0)
        return rec.images[0].preview_path

    target = loop_thread().run(store())
    assert target is not None
    assert previews().drain(30) and target.exists()  # made once the call returned
