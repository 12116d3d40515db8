"""Previews made off the request path: after the record commits, or on first display.

Making a 512 px preview of a 1024² photo-like PNG decodes the whole original (about 20 ms), so
the history no longer does it before the record is committed. The record names its preview
file up front (``previews/<id>-<i>.webp``); :data:`QUEUE` makes it on a background thread
right after the commit, and :func:`ensure_preview` — what a view calls when the file is not
there yet — waits for that job, or makes the preview itself when none is queued (a process
that crashed between the commit and the preview: the record still shows, and its preview is
made then). Nothing generated is lost either way: the original is on disk, fsynced, before
the record that names it commits; a preview is a convenience that can always be made again,
so it is written atomically but without fsync. The same worker then reads the original's
Content Credentials into their cache (:mod:`cometnb._core.provenance`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from cometnb._core import preview_hook
from cometnb._core.errors import CometError
from cometnb._core.settings import active
from cometnb._storage import files as _files

__all__ = ["QUEUE", "PreviewJob", "PreviewQueue", "ensure_preview", "make_preview_file"]

log = logging.getLogger("cometnb")
_WAIT_S = 10.0  # at most this long a view waits for a queued preview before making its own
_NICE = 10
_WORKERS = 2  # decoding and encoding release the GIL: a grid's previews use both cores


@dataclass(frozen=True)
class PreviewJob:
    """Make ``target`` (a preview no larger than ``max_px``) from the original ``source``."""

    source: Path
    target: Path
    max_px: int


def make_preview_file(job: PreviewJob) -> bytes | None:
    """Make and write ``job.target``; its bytes, or ``None`` when the original is unreadable."""
    from cometnb._core.images import make_preview  # Pillow: loaded on first use

    try:
        data, _mime = make_preview(job.source.read_bytes(), job.max_px, encode="webp")
    except (OSError, CometError, ValueError):
        return None  # the original stays the source of truth; views fall back to it
    try:
        _files.atomic_write(job.target, data, durable=False)
    except OSError:
        log.info("cometnb: could not write the preview %s", job.target)
    return data


class PreviewQueue:
    """Daemon threads making previews in order; :meth:`wait` lets a view join a queued job.

    Example::

        >>> QUEUE.submit([PreviewJob(original, target, 512)])  # doctest: +SKIP
        >>> QUEUE.drain(5.0)  # doctest: +SKIP
        True
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[PreviewJob | None] = queue.Queue()
        self._pending: dict[Path, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.enabled = True  # tests switch it off to stand for a crash before the preview

    def submit(self, jobs: list[PreviewJob]) -> None:
        """Queue ``jobs`` (after their record committed)."""
        if not self.enabled or not jobs:
            return
        with self._lock:
            for job in jobs:
                self._pending.setdefault(job.target, threading.Event())
                self._jobs.put(job)
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < min(_WORKERS, self._jobs.qsize()):
                thread = threading.Thread(target=self._work, name="cometnb-previews", daemon=True)
                thread.start()
                self._threads.append(thread)

    def wait(self, target: Path, timeout: float = _WAIT_S) -> bool:
        """Wait for a queued job making ``target``; False when none is queued (or it is late)."""
        with self._lock:
            event = self._pending.get(target)
        return event is not None and event.wait(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait until every queued preview is made (benchmarks, tests, interpreter exit)."""
        with self._lock:
            events = list(self._pending.values())
        return all(event.wait(timeout) for event in events)

    def _work(self) -> None:
        # Below the request path: on Linux a thread has its own nice value, so a busy machine
        # gives the cores to decoding and storing answers first (previews can wait a moment).
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                make_preview_file(job)
                _read_credentials_ahead(job.source)  # the preview file is there already
            except Exception:  # a bug must not stop later previews
                log.exception("cometnb: making a preview failed")
            finally:
                with self._lock:
                    event = self._pending.pop(job.target, None)
                if event is not None:
                    event.set()


def _read_credentials_ahead(source: Path) -> None:
    """Read (and cache) the new original's Content Credentials here, off the request path, so
    the first view of a signed image does not validate it; unsigned files cost a header scan."""
    from cometnb._core.provenance import read_credentials

    try:
        read_credentials(source)
    except Exception:  # a damaged manifest or a library fault: the view will say so itself
        log.info("cometnb: could not read the Content Credentials of %s", source)


QUEUE = PreviewQueue()
# Previews still queued at exit are made first (a second or so at most): otherwise the next
# session makes them on first display, which is also fine.
atexit.register(QUEUE.drain, 5.0)


def ensure_preview(source: Path, target: Path, max_px: int | None = None) -> bytes | None:
    """The preview at ``target``: read, waited for (queued), or made and written now."""
    if not target.exists():
        QUEUE.wait(target)
    try:
        return target.read_bytes()
    except OSError:
        pass
    px = max_px if max_px is not None else active().thumbnail_px
    return make_preview_file(PreviewJob(source, target, px))


# Records' images ask the core for previews the history has not written yet.
preview_hook.install(ensure_preview)
