"""A batch run's progress, drawn on the calling thread while the requests run on the loop.

:func:`run_job` starts the job on the client's loop thread and, while it runs, draws a tqdm
bar (done / failed / rate / ETA, ``may be billed=``, ``spend=`` and "waiting on the rate
limit"); an interrupt (KeyboardInterrupt) cancels the job and waits, briefly, for every item
to be marked. A broken display never stops the run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sys
import time
from typing import Any

from cometnb._client.batch import billed_note
from cometnb._client.loop import loop_thread
from cometnb._core.prices import format_spend

__all__ = ["run_job"]

POLL_S = 0.2
CANCEL_GRACE_S = 5.0


def run_job(job: Any, already: int, total: int, title: str | None) -> None:
    """Run ``job`` on the loop thread; draw progress here; an interrupt cancels it."""
    bar = _progress_bar(title, already, total)
    future = loop_thread().submit(job.run())
    try:
        while not concurrent.futures.wait((future,), timeout=POLL_S).done:
            _draw(bar, job, already)
        future.result()
    except KeyboardInterrupt:
        future.cancel()  # done at once; the task then marks each item (uncertain or pending)
        with contextlib.suppress(KeyboardInterrupt):
            if job.started.is_set():
                job.finished.wait(CANCEL_GRACE_S)
        raise
    finally:
        _draw(bar, job, already, final=True)
        if bar is not None:
            bar.close()
            uncertain = job.uncertain_before + job.uncertain
            if uncertain:
                print(f"batch {title}: {billed_note(uncertain)}", file=sys.stderr)


def _progress_bar(title: str | None, already: int, total: int) -> Any:
    if title is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=already, desc=f"batch {title}", unit="item", smoothing=0.1)


def _draw(bar: Any, job: Any, already: int, *, final: bool = False) -> None:
    if bar is None:
        return
    with contextlib.suppress(Exception):  # a broken display must not lose paid results
        finished = already + job.done + job.failed + job.uncertain
        if finished > bar.n:
            bar.update(finished - bar.n)
        postfix: dict[str, object] = {"failed": job.failed}
        uncertain = job.uncertain_before + job.uncertain
        if uncertain:
            postfix["may be billed"] = uncertain
        if job.spent or job.guard is not None:
            postfix["spend"] = format_spend(job.spent)
        if not final and time.monotonic() < job.limited_until:
            postfix["waiting"] = "on the rate limit"
        bar.set_postfix(postfix, refresh=final)
