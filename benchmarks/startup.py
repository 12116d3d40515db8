"""5. Start-up: ``import cometnb`` and ``%load_ext cometnb``, each in a fresh interpreter.

The figures are taken inside the child with ``perf_counter`` around the statement, so
interpreter start-up is not counted. For ``%load_ext`` the ``InteractiveShell`` is created
first (a kernel already has one) and only the magic is timed. Median of several runs.
"""

from __future__ import annotations

import json
import subprocess

from ._harness import PYTHON, ROOT, Result, median, ms, need

TITLE = "Import and %load_ext time (fresh interpreter each)"
RUNS = 7
GOAL_S = 0.3

IMPORT = """
import time, json
t = time.perf_counter()
import cometnb
print(json.dumps(time.perf_counter() - t))
"""

LOAD_EXT = """
import time, json, io, contextlib
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
with contextlib.redirect_stdout(io.StringIO()):
    t = time.perf_counter()
    ip.run_line_magic("load_ext", "cometnb")
    elapsed = time.perf_counter() - t
assert "cometimg" in ip.magics_manager.magics["cell"], "the cell magic was not registered"
print(json.dumps(elapsed))
"""

# What a first generation would import on top (reported, not a goal).
FIRST_USE = """
import time, json
t = time.perf_counter()
import cometnb._client.client, cometnb.history
print(json.dumps(time.perf_counter() - t))
"""


def _once(code: str) -> float:
    proc = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return float(json.loads(proc.stdout.strip().splitlines()[-1]))


def run() -> Result:
    need("cometnb")
    result = Result(TITLE)
    import_s = median([_once(IMPORT) for _ in range(RUNS)])
    result.row(f"import cometnb (median of {RUNS})", ms(import_s))
    result.goal(
        "import cometnb < 0.3 s",
        f"< {ms(GOAL_S)}",
        ms(import_s),
        import_s < GOAL_S,
        "something heavy is imported eagerly; fix: keep httpx/Pillow/sqlite3 behind the lazy "
        "__getattr__ in cometnb/__init__.py",
    )
    try:
        need("cometnb.magic")
        load_s = median([_once(LOAD_EXT) for _ in range(RUNS)])
    except Exception as exc:
        result.goal("%load_ext cometnb < 0.3 s", f"< {ms(GOAL_S)}", "did not run", False, str(exc))
        return result
    result.row(f"%load_ext cometnb (median of {RUNS})", ms(load_s))
    result.goal(
        "%load_ext cometnb < 0.3 s",
        f"< {ms(GOAL_S)}",
        ms(load_s),
        load_s < GOAL_S,
        "loading the magic imports the client stack (httpx, Pillow) or ipywidgets eagerly; "
        "fix: import them on the first %%cometimg run instead",
    )
    try:
        first_s = median([_once(FIRST_USE) for _ in range(3)])
        result.row("first use: import _client + history (median of 3, no goal)", ms(first_s))
    except Exception as exc:
        result.notes.append(f"first-use import could not be measured: {exc}")
    return result
