"""``make bench``: run every benchmark, print the table, write ``benchmarks/RESULTS.md``.

Usage::

    .venv/bin/python benchmarks/run.py            # all, in order
    .venv/bin/python benchmarks/run.py overhead   # only some (results file not written)

Each benchmark is a module with ``TITLE`` and ``run() -> Result``; one that cannot run (a module
it measures is missing) or crashes is reported as not run, and the others still run.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import NotRun, Result, machine
from benchmarks.report import console, markdown

BENCHMARKS = (
    "overhead",
    "concurrency",
    "notebook",
    "preview_quality",
    "memory",
    "startup",
    "scale",
    "ratelimit",
    "history_scale",
    "history_100k",
    "spend",
    "sidebar",
    "engine_designs",
    "cell_path",
)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def run_one(name: str) -> Result:
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"running {name}: {module.TITLE} ...", flush=True)
    start = time.perf_counter()
    try:
        result: Result = module.run()
    except NotRun as exc:
        result = Result(module.TITLE, error=str(exc))
    except Exception as exc:  # one broken benchmark must not hide the others
        tail = traceback.format_exc().strip().splitlines()[-3:]
        result = Result(module.TITLE, error=f"{type(exc).__name__}: {exc} ({' / '.join(tail)})")
    result.elapsed_s = time.perf_counter() - start
    return result


def main(argv: list[str]) -> int:
    chosen = [a for a in argv if not a.startswith("-")] or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {BENCHMARKS}")
        return 2
    start = time.perf_counter()
    results = [run_one(name) for name in chosen]
    total = time.perf_counter() - start
    print(console(results))
    print(f"total {total:.0f} s")
    if chosen == list(BENCHMARKS):
        RESULTS.write_text(markdown(results, machine(), total), encoding="utf-8")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
