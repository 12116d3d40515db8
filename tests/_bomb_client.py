"""Run one generation against a hostile simulator reply in a fresh process; print what happened.

Used by ``test_abuse_memory.py``: the bomb runs here so its peak memory (``ru_maxrss``) is this
process's alone. argv: base_url, history folder, JSON of the call (kwargs for ``generate`` plus
``"limits"`` for :class:`~cometnb._core.byte_limits.ByteLimits`, ``"timeout"``, ``"many"`` to go
through ``generate_many``, ``"copies"`` to send that many at once, one at a time, and report
the RSS still held afterwards; or ``"fetch": "models" | "catalog"`` for a side fetch instead).
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` is per address space, so unlike ``ru_maxrss`` (which
    Linux carries across fork and exec) it does not include the pytest process that started us."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_in_child(base_url: str, folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Run this script in a fresh process (this checkout's cometnb); its outcome, checked for a
    raw error (``MemoryError`` & co must never escape)."""
    here = Path(__file__).resolve()
    done = subprocess.run(
        [sys.executable, str(here), base_url, str(folder), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHONPATH": str(here.parents[1])},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "raw" not in outcome, f"a raw error escaped: {outcome['raw']}"
    return outcome


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def side_fetch(kind: str, base_url: str, folder: str) -> dict[str, object]:
    """``GET /v1/models`` or the price catalog, as the package makes them."""
    from cometnb._core.errors import CometError

    outcome: dict[str, object] = {}
    try:
        if kind == "models":
            from cometnb._client.lookups import served_image_models

            outcome["models"] = served_image_models(
                base_url, "sk-cometnb-test-7f3a9c2e51d04b86a1e0"
            )
        else:
            from cometnb._client.lookups import refresh_prices

            refresh_prices(base_url, folder)
    except CometError as exc:
        outcome["type"], outcome["message"] = type(exc).__name__, str(exc)
    except BaseException as exc:  # what the test must never see: MemoryError & co
        outcome["raw"] = f"{type(exc).__name__}: {exc}"[:300]
    outcome["maxrss_mb"] = peak_rss_mb()
    return outcome


def main() -> None:
    base_url, folder, spec_text = sys.argv[1:4]
    spec = json.loads(spec_text)
    if "fetch" in spec:
        print(json.dumps(side_fetch(spec["fetch"], base_url, folder)))
        return
    from cometnb._client.client import Client
    from cometnb._core.byte_limits import ByteLimits
    from cometnb._core.errors import CometError
    from cometnb.history import History

    limits = ByteLimits(**spec.pop("limits", {}))
    many = spec.pop("many", False)
    copies = spec.pop("copies", 0)
    held: list[object] = []
    timeout = spec.pop("timeout", 30.0)
    outcome: dict[str, object] = {}
    started = time.monotonic()
    with Client(
        api_key="sk-cometnb-test-7f3a9c2e51d04b86a1e0",
        base_url=base_url,
        timeout=timeout,
        history=History(folder),
        limits=limits,
    ) as client:
        try:
            if copies:
                held = client.generate_many([spec] * copies, concurrency=1)
                error = held[0].error  # type: ignore[attr-defined]
            elif many:
                (gen,) = client.generate_many([spec])
                error = gen.error
            else:
                client.generate(**spec)
                error = None
        except CometError as exc:
            error = exc
        except BaseException as exc:  # what the test must never see: MemoryError & co
            outcome["raw"] = f"{type(exc).__name__}: {exc}"[:300]
            error = None
    outcome["elapsed_s"] = time.monotonic() - started
    if error is not None:
        outcome["type"] = type(error).__name__
        outcome["message"] = str(error)
    if copies:
        import gc

        gc.collect()
        outcome["held_rss_mb"] = current_rss_mb()  # with every failed Generation still alive
        outcome["held"] = len(held)
    outcome["records"] = [r.status for r in History(folder)]
    outcome["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
