"""Build hook: before the jupyter-builder hook runs npm, check that Node.js >= 20 is there.

Building from a checkout compiles the history sidebar's TypeScript (``labextension/``) with
the machine's Node.js. Without it npm would fail with a long, unclear trace, so this hook says
plainly what is missing. A build that will not compile anything (the wheel built from an sdist
that already carries the extension) needs no Node.js and is not checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NODE_MAJOR = 20
BUILT = Path("cometnb") / "labextension" / "static" / "style.js"


def node_problem(node: str | None = None) -> str | None:
    """Why this machine cannot build the extension (``None`` when it can)."""
    node = node or shutil.which("node")
    found = "no `node` on PATH"
    if node:
        try:
            done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
            found = f"node {done.stdout.strip() or '(no version)'}"
            match = re.match(r"v?(\d+)\.", done.stdout.strip())
            if match and int(match.group(1)) >= NODE_MAJOR and shutil.which("npm"):
                return None
            if match and int(match.group(1)) >= NODE_MAJOR:
                found += " but no `npm` on PATH"
        except (OSError, subprocess.SubprocessError) as exc:
            found = f"`{node} --version` failed ({exc})"
    return (
        f"cometnb's JupyterLab extension is built from TypeScript when installing from source, "
        f"and that needs Node.js >= {NODE_MAJOR} with npm; found {found}. Install Node.js "
        f"{NODE_MAJOR} or newer (https://nodejs.org) and try again, or install a released "
        f"wheel (`pip install cometnb`), which needs no Node.js."
    )


class NodeCheckHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        prebuilt = (Path(self.root) / BUILT).is_file()
        if self.target_name not in ("wheel", "sdist") or (version == "standard" and prebuilt):
            return
        problem = node_problem()
        if problem:
            # SystemExit, not an exception: the build stops with this sentence alone, where
            # pip shows the backend's output, rather than at the foot of a traceback.
            raise SystemExit(f"\n{problem}\n")


if __name__ == "__main__":  # `make`: the same check before building from source
    import sys

    message = node_problem()
    if message:
        sys.exit(message)
