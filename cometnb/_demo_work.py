"""The demo's working copies: Lab serves copies of the notebooks, never the tracked files.

Serving ``notebooks/`` itself let Lab's autosave write outputs and ``language_info`` into the
committed notebooks (so ``make test`` failed after ``make demo``) and showed the build script
in the file browser. :func:`prepare` copies the ``.ipynb`` files into a working folder outside
the checkout, once: a copy the user has run or edited is kept on the next ``make demo``, and
a notebook new upstream is added. Delete the folder to start over.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

__all__ = ["WORKDIR_ENV", "default_workdir", "prepare"]

WORKDIR_ENV = "COMETNB_DEMO_DIR"
_STAMP = ".cometnb-demo.json"  # which tracked version each copy was made from


def default_workdir() -> Path:
    """``$COMETNB_DEMO_DIR``, else ``$XDG_DATA_HOME/cometnb/demo`` (``~/.local/share/…``)."""
    explicit = os.environ.get(WORKDIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(data) / "cometnb" / "demo"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(source: Path, target: Path | None = None) -> Path:
    """Copy the demo notebooks from ``source`` into ``target`` (created); returns ``target``.

    A copy is refreshed from ``source`` only when the user has not changed it since it was
    made (its content still matches what was copied) and the tracked notebook changed.

    Example::

        >>> import tempfile, pathlib
        >>> src = pathlib.Path(tempfile.mkdtemp()); _ = (src / "a.ipynb").write_text("{}")
        >>> sorted(p.name for p in prepare(src, src / "work").iterdir())
        ['.cometnb-demo.json', 'a.ipynb']
    """
    target = (target or default_workdir()).resolve()
    if target == source.resolve():
        raise ValueError("the demo's working folder must not be the tracked notebooks folder")
    target.mkdir(parents=True, exist_ok=True)
    stamp_file = target / _STAMP
    try:
        made: dict[str, dict[str, str]] = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        made = {}
    for notebook in sorted(source.glob("*.ipynb")):
        copy = target / notebook.name
        upstream = _digest(notebook)
        seen = made.get(notebook.name, {})
        untouched = copy.is_file() and seen.get("copy") == _digest(copy)
        if not copy.is_file() or (untouched and seen.get("source") != upstream):
            shutil.copyfile(notebook, copy)
            made[notebook.name] = {"source": upstream, "copy": _digest(copy)}
    stamp_file.write_text(json.dumps(made, indent=1, sort_keys=True))
    return target
