"""What one ``%%cometimg -m gpt-image-2 -q low`` cell enters: modules, functions, and how often
it validates, looks the key up and checks the history (issue 22's figures).

Counts, not times, so the figure is the same on a busy machine. A profiler
(``sys.setprofile`` and ``threading.setprofile``) is installed before ``%load_ext cometnb``;
one warm-up cell runs against the loopback simulator (``%cometimg_sim``), then only the second
cell is counted. The simulator's own modules, and the package code they call on its server
threads, are left out (they stand in for the network).

Usage::

    .venv/bin/python benchmarks/cell_path.py          # the summary
    .venv/bin/python benchmarks/cell_path.py --all    # and every module with its call count
    .venv/bin/python benchmarks/cell_path.py --functions  # and every function entered

``make bench`` runs it as benchmark 14 (:func:`run`): three counts, each in a fresh interpreter,
since the profiler must be in place before the package is imported.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Result  # after the path is set

# The functions whose repetition the issue counts: validation, key look-ups, history checks.
WATCHED = ("validate", "resolve_key", "check_writable")
CELL = "a red fox asleep in fresh snow"
OPTIONS = "-m gpt-image-2 -q low"
TITLE = f"One `%%cometimg {OPTIONS}` cell's path (issue 22; counts, not times)"
RUNS = 3
GOAL_MODULES = 30
GOAL_FUNCTIONS = 160


def _for_the_simulator(frame: FrameType | None) -> bool:
    """True for the simulator's frames and for what it calls (its server threads run the
    package's price and validation code to answer as the API would): they stand in for the
    network, so they are not the cell's work."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("cometnb.sim"):
            return True
        frame = frame.f_back
    return False


def count_one_cell() -> collections.Counter[tuple[str, str]]:
    """Calls per (module, function) of the package during the second of two cells."""
    os.environ.pop("COMETAPI_KEY", None)  # keyless: %cometimg_sim starts the simulator
    calls: collections.Counter[tuple[str, str]] = collections.Counter()
    counting = [False]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and counting[0]:
            module = str(frame.f_globals.get("__name__", ""))
            if module.startswith("cometnb") and not _for_the_simulator(frame):
                calls[(module, frame.f_code.co_qualname)] += 1

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryAccessor.enabled = False
        shell = InteractiveShell.instance(config=config)
        shell.extension_manager.load_extension("cometnb")
        shell.run_line_magic("config", f"CometImg.history_dir = {tempfile.mkdtemp()!r}")
        shell.run_line_magic("cometimg_sim", "")
        shell.run_cell_magic("cometimg", OPTIONS, CELL)  # warm-up: imports, first connection
        counting[0] = True
        shell.run_cell_magic("cometimg", OPTIONS, CELL)
        counting[0] = False
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return calls


def _generated(function: str) -> bool:
    """A comprehension, lambda or dataclass-made ``__init__``: a frame Python makes, not a def."""
    return "<" in function


def summary(calls: collections.Counter[tuple[str, str]]) -> dict[str, Any]:
    """The figures the issue asks for, as plain data."""
    watched = {
        name: sum(n for (_, f), n in calls.items() if f.split(".")[-1] == name) for name in WATCHED
    }
    return {
        "modules": len({module for module, _ in calls}),
        "functions": len(calls),
        "generated": sum(1 for _, f in calls if _generated(f)),
        "watched": watched,
    }


def run() -> Result:
    """Benchmark 14: the counts of :data:`RUNS` fresh interpreters (the preview thread's work
    falls inside or outside the counted window, so a count can move by a few functions)."""
    result = Result(TITLE)
    runs = [_counted_in_a_child() for _ in range(RUNS)]
    modules = [r["modules"] for r in runs]
    functions = [r["functions"] for r in runs]
    result.row("command", "`.venv/bin/python benchmarks/cell_path.py --all` (one count)")
    result.row(f"modules entered ({RUNS} runs)", ", ".join(map(str, modules)))
    result.row(
        f"distinct functions entered ({RUNS} runs)",
        ", ".join(
            f"{r['functions']} ({r['generated']} comprehensions, lambdas, dataclass __init__s)"
            for r in runs
        ),
    )
    for name in WATCHED:
        result.row(f"`{name}` calls", ", ".join(str(r["watched"][name]) for r in runs))
    result.goal(
        "modules one cell enters",
        f"≤ {GOAL_MODULES}",
        str(max(modules)),
        max(modules) <= GOAL_MODULES,
        "each module left is a step the cell takes (see docs/INTERNALS.md, follow one cell)",
    )
    result.goal(
        "functions one cell enters",
        f"≤ {GOAL_FUNCTIONS}",
        str(max(functions)),
        max(functions) <= GOAL_FUNCTIONS,
        "what is left is work the cell does once each: option parsing, the estimate against "
        "the known balance, the request and its answer, storing and reading back the record, "
        "the live view",
    )
    for name in WATCHED:
        most = max(r["watched"][name] for r in runs)
        result.goal(f"`{name}` once per cell", "1", str(most), most == 1)
    result.notes.append(
        "A profiler (sys.setprofile and threading.setprofile) is installed before "
        "`%load_ext cometnb`; one warm-up cell runs against the loopback simulator, then the "
        "second cell is counted on every thread. The simulator's frames, and the package code "
        "its server threads call, are left out: they stand in for the network."
    )
    return result


def _counted_in_a_child() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["failed"])[-1])
    found: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def main(argv: list[str]) -> None:
    calls = count_one_cell()
    if "--json" in argv:
        print(json.dumps(summary(calls)))
        return
    modules = sorted({module for module, _ in calls})
    print(f"one cell ({OPTIONS}): {len(modules)} modules, {len(calls)} functions entered")
    for name in WATCHED:
        hits = {f"{m}.{f}": n for (m, f), n in calls.items() if f.split(".")[-1] == name}
        print(f"  {name}: {sum(hits.values())} call(s) {dict(sorted(hits.items()))}")
    if "--functions" in argv:
        for (module, function), count in sorted(calls.items()):
            print(f"    {module}.{function}: {count}")
    if "--all" in argv:
        for module in modules:
            print(f"  {module}: {sum(n for (m, _), n in calls.items() if m == module)} calls")


if __name__ == "__main__":
    main(sys.argv[1:])
