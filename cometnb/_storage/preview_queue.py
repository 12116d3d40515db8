"""Previews made off the request path: after the record commits, or on first display.

Making a 512 px preview of a 1024² photo-like PNG decodes the whole original (about 20 ms), so the
history no longer does it before the record is committed. The record names its preview file up front
(``previews/<id>-<i>.webp``); the session's queue (:func:`previews`) makes it on a background thread
right after the commit, and :func:`ensure_preview` — what a view calls when the file is not there
yet — waits for that job, or makes the preview itself when none is queued (a process that crashed
between the commit and the preview: the record still shows, and its preview is made then). Nothing
generated is lost either way: the original is on disk, fsynced, before the record that names it
commits; a preview is a convenience that can always be made again, so it is written atomically but
without fsync. The same worker then reads the original's Content Credentials into their cache
(:mod:`cometnb._core.provenance`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cometnb._core.errors import CometError
from cometnb._core.session import current
from cometnb._core.settings import active
from cometnb._storage import files as _files

__all__ = ["PreviewJob", "PreviewQueue", "ensure_preview", "make_preview_file", "previews"]

log = logging.getLogger("cometnb")
_WAIT_S = 10.0  # at most this long a view waits for a queued preview before making its own
_NICE = 10
_WORKERS = 2  # decoding and encoding release the GIL: a grid's previews use both cores
_HOLD_S = 2.0  # a long blocking call (a grid, a batch) does not keep its previews back longer


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

    While a blocking call is :meth:`held`, queued jobs do not start (for at most
    :data:`_HOLD_S`): decoding a 1024² original holds the GIL in stretches and slowed the
    call's own last steps by about 3 ms (storing the record, returning the result;
    RESULTS.md §13c). A view that needs a preview meanwhile makes it itself.

    Example::

        >>> previews().submit([PreviewJob(original, target, 512)])  # doctest: +SKIP
        >>> previews().drain(5.0)  # doctest: +SKIP
        True
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[PreviewJob | None] = queue.Queue()
        self._pending: dict[Path, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._holds = 0
        self._released = threading.Condition(self._lock)
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
        """Wait for a queued job making ``target``; False when none is queued (or it is late,
        or held: the caller makes the preview itself, and the job then finds it made)."""
        with self._lock:
            event = None if self._holds else self._pending.get(target)
        return event is not None and event.wait(timeout)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Queued jobs start only once no blocking call holds the queue (or after
        :data:`_HOLD_S`): a call's preview is made after the call has returned."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                self._released.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every queued preview is made (benchmarks, tests, interpreter exit)."""
        with self._lock:
            events = list(self._pending.values())
        return all(event.wait(timeout) for event in events)

    def stop(self, timeout: float = 5.0) -> None:
        """Make what is queued, then end the workers (a session's end)."""
        self.drain(timeout)
        with self._lock:
            threads, self._threads = self._threads, []
            for _ in threads:
                self._jobs.put(None)
        for thread in threads:
            thread.join(timeout)

    def _work(self) -> None:
        # Below the request path: on Linux a thread has its own nice value, so a busy machine
        # gives the cores to decoding and storing answers first (previews can wait a moment).
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self._released.wait_for(lambda: not self._holds, _HOLD_S)
            try:
                if not job.target.exists():  # a view may have made it while the queue was held
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


def previews() -> PreviewQueue:
    """The session's preview queue (its worker threads start with the first job)."""
    return current().part(PreviewQueue)


def _drain_at_exit() -> None:
    # Previews still queued at exit are made first (a second or so at most): otherwise the next
    # session makes them on first display, which is also fine.
    previews().drain(5.0)


atexit.register(_drain_at_exit)


def ensure_preview(source: Path, target: Path, max_px: int | None = None) -> bytes | None:
    """The preview at ``target``: read, waited for (queued), or made and written now."""
    if not target.exists():
        previews().wait(target)
    try:
        return target.read_bytes()
    except OSError:
        pass
    px = max_px if max_px is not None else active().thumbnail_px
    return make_preview_file(PreviewJob(source, target, px))
