"""Run one generation against a hostile simulator reply in a fresh process; print what happened.

Used by ``test_abuse_memory.py``: the bomb runs here so its peak memory (``ru_maxrss``) is this
process's alone. argv: base_url, history folder, JSON of the call (kwargs for ``generate`` plus
``"limits"`` for :class:`~cometnb._core.limits.Limits`, ``"timeout"``, ``"many"`` to go
through ``generate_many``). Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time


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


def main() -> None:
    base_url, folder, spec_text = sys.argv[1:4]
    spec = json.loads(spec_text)
    from cometnb._client.clients import Client
    from cometnb._core.errors import CometError
    from cometnb._core.limits import Limits
    from cometnb.history import History

    limits = Limits(**spec.pop("limits", {}))
    many = spec.pop("many", False)
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
            if many:
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
    outcome["records"] = [r.status for r in History(folder)]
    outcome["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
