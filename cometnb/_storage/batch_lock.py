"""One run at a time per named batch: an operating-system lock on a small file.

Two kernels (or a kernel and a script) running the same batch at once would both send its
pending items, and each would take the other's requests in flight for a dead run's. The
runner holds :func:`hold_batch` for the whole run; a second run of the same name is refused
at once, before anything is sent. The lock is ``flock`` on
``<history>/.batch-locks/<hash of the name>.lock``: the kernel drops it when the process
ends, so a killed run leaves nothing to clean up and the next run resumes. On a system
without ``fcntl`` (Windows) there is no lock and one run at a time is up to the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from cometnb._core.errors import CometError

__all__ = ["BatchBusyError", "hold_batch"]

LOCKS = ".batch-locks"


class BatchBusyError(CometError):
    """Another process (or thread) is running the same named batch right now."""


@contextlib.contextmanager
def hold_batch(root: Path, name: str) -> Iterator[None]:
    """Hold batch ``name`` of the history at ``root`` while the block runs, or raise
    :class:`BatchBusyError` when another run holds it."""
    if sys.platform == "win32":  # pragma: no cover - no fcntl
        yield
        return
    import fcntl

    folder = Path(root) / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
    fd = os.open(folder / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchBusyError(
                f"the batch {name!r} is running in another kernel or process; nothing was sent",
                hint="Wait for it to finish (or stop it), then run this again: it resumes.",
            ) from None
        yield
    finally:
        os.close(fd)  # also releases the lock
