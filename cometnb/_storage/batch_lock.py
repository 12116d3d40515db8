"""One run at a time per named batch: an operating-system lock on a small file.

Two kernels (or a kernel and a script) running the same batch at once would both send its
pending items, and each would take the other's requests in flight for a dead run's. The
runner holds :func:`hold_batch` for the whole run; a second run of the same name is refused
at once, before anything is sent. The lock is ``flock`` on
``<history>/.batch-locks/<hash of the name>.lock``: the kernel drops it when the process
ends, so a killed run leaves nothing to clean up and the next run resumes.

A run that was interrupted may still be marking its items when the caller gets control back:
:meth:`BatchHold.release_after` keeps the lock until that work is done. Where ``flock`` is
not available (Windows, or a network filesystem that refuses it) there is no lock, and one run
at a time is up to the user.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from cometnb._core.errors import BatchBusyError, CometError

__all__ = ["BatchHold", "hold_batch"]

LOCKS = ".batch-locks"
log = logging.getLogger("cometnb")
_held_here: set[str] = set()  # lock files this process holds (a second run here is told so)
_held_lock = threading.Lock()
# flock refused by the filesystem itself (not by another holder): run without the lock.
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class BatchHold:
    """The lock of one run; released when the run's block ends, or later (see below)."""

    def __init__(self) -> None:
        self._after: threading.Event | None = None

    def release_after(self, finished: threading.Event) -> None:
        """Keep the lock past the block until ``finished`` is set: an interrupted run whose
        tasks are still marking items (set only for a job that started, so it ends)."""
        self._after = finished


@contextlib.contextmanager
def hold_batch(root: Path, name: str) -> Iterator[BatchHold]:
    """Hold batch ``name`` of the history at ``root`` while the block runs, or raise
    :class:`BatchBusyError` when another run holds it."""
    hold = BatchHold()
    if sys.platform == "win32":  # pragma: no cover - no fcntl
        yield hold
        return
    import fcntl

    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    path = Path(root) / LOCKS / f"{digest}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CometError(
            f"the batch {name!r} cannot keep its state in {root} "
            f"({exc.strerror or type(exc).__name__}); nothing was sent",
            hint="Set a writable folder with %config CometImg.history_dir.",
        ) from None
    key = str(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with _held_lock:
                here = key in _held_here
            where = "in this kernel" if here else "in another kernel or process"
            raise BatchBusyError(
                f"the batch {name!r} is already running {where}; nothing was sent",
                hint="Wait for it to finish (or stop it), then run this again: it resumes.",
            ) from None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            log.warning("cometnb: %s cannot lock files; batch %r runs unlocked", root, name)
        with _held_lock:
            _held_here.add(key)
        yield hold
    finally:
        _release(fd, key, hold._after)


def _release(fd: int, key: str, after: threading.Event | None) -> None:
    def close() -> None:
        with _held_lock:
            _held_here.discard(key)
        os.close(fd)  # also releases the lock

    if after is None or after.is_set():
        close()
        return

    def close_after() -> None:
        after.wait()
        close()

    threading.Thread(target=close_after, name="cometnb-batch-lock", daemon=True).start()
