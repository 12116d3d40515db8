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
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The functions whose repetition the issue counts: validation, key look-ups, history checks.
WATCHED = ("validate", "resolve_key", "check_writable")
CELL = "a red fox asleep in fresh snow"
OPTIONS = "-m gpt-image-2 -q low"


def _for_the_simulator(frame: FrameType | None) -> bool:
    """True for the simulator's frames and for what it calls (its server threads run the
    package's price and validation code to answer as the API would): they stand in for the
    network, so they are not the cell's work."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("cometnb.sim"):
            return True
        frame = frame.f_back
    return False


def main(argv: list[str]) -> None:
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
