"""docs/INTERNALS.md stays true: every ``something.py`` it cites is a file, and every backticked
``module.name`` names a module of the package that has that attribute.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cometnb"
MAP = ROOT / "docs" / "INTERNALS.md"

_SPAN = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.py)\b")
_DOTTED = re.compile(r"(?<![\w./<-])((?:_?[a-z]\w*[./])*_?[a-z]\w*)\.([A-Za-z_]\w*)")
# Dotted names in the map that are not the package's: other libraries, test helpers' modules are
# checked as files under tests/.
_OUTSIDE = {"sys", "threading", "web", "jpserver_extensions", "module"}
# `prices.json`, `index.sqlite3`, `<hash>.lock`: files, not attributes.
_EXTENSIONS = {"json", "sqlite3", "lock", "webp", "png", "md", "txt", "css", "ts", "toml", "env"}


def _package_files() -> set[str]:
    """Files of the package relative to it (``_core/prices.py``)."""
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}


def _all_files() -> set[str]:
    """Every tracked-looking .py file relative to the checkout (package, tests, benchmarks)."""
    skip = {".venv", "node_modules", ".git", ".nox"}
    return {
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*.py")
        if not skip.intersection(p.relative_to(ROOT).parts)
    }


def _spans() -> list[str]:
    return _SPAN.findall(MAP.read_text(encoding="utf-8"))


def _path_exists(cited: str, package: set[str], everything: set[str]) -> bool:
    cited = cited.removeprefix("cometnb/")
    if cited in package or cited in everything:
        return True
    for folder in ("tests/", "benchmarks/", "labextension/"):
        if folder + cited in everything:
            return True
    # A bare or partial name ("sim/server.py", "conftest.py"): some file ends with it.
    return any(f == cited or f.endswith("/" + cited) for f in package | everything)


def _modules_named(dotted: str, package: set[str]) -> list[str]:
    """The package files a module reference could mean (``_core.session``, ``_storage/batches``,
    ``session``, ``cometnb``), relative to the package."""
    parts = re.split(r"[./]", dotted)
    if parts[0] == "cometnb":
        parts = parts[1:]
    if not parts:
        return ["__init__.py"]
    tail = "/".join(parts)
    return sorted(
        f
        for f in package
        if f in (tail + ".py", tail + "/__init__.py")
        or f.endswith("/" + tail + ".py")
        or f.endswith("/" + tail + "/__init__.py")
    )


def _import_name(file: str) -> str:
    inner = file.removesuffix(".py").removesuffix("__init__").rstrip("/").replace("/", ".")
    return "cometnb." + inner if inner else "cometnb"


def test_every_cited_file_exists() -> None:
    package, everything = _package_files(), _all_files()
    cited = {m for span in _spans() for m in _PATH.findall(span)}
    assert len(cited) > 60, "the map cites its modules by file name"
    missing = sorted(c for c in cited if not _path_exists(c, package, everything))
    assert not missing, f"docs/INTERNALS.md cites files that do not exist: {missing}"


def test_every_cited_module_name_exists() -> None:
    package = _package_files()
    checked, wrong = 0, []
    for span in _spans():
        if _PATH.fullmatch(span.strip()):
            continue
        for module, attr in _DOTTED.findall(span):
            if attr in _EXTENSIONS or attr == "py":
                continue
            files = _modules_named(module, package)
            if not files:
                # `Session.histories`, `h.spend()`: not module names (capitalised or one letter);
                # a module the map names that is gone (`hooks.missing_preview`) is an error.
                if (
                    module in _OUTSIDE
                    or len(module) == 1
                    or (ROOT / "tests" / f"{module}.py").exists()
                ):
                    continue
                wrong.append(f"{module}.{attr}")
                continue
            checked += 1
            if _modules_named(f"{module}.{attr}", package):
                continue  # a submodule (`cometnb._server`)
            if not any(hasattr(importlib.import_module(_import_name(f)), attr) for f in files):
                wrong.append(f"{module}.{attr}")
    assert checked > 15, "the map cites module names"
    assert not wrong, f"docs/INTERNALS.md cites names that do not exist: {sorted(set(wrong))}"
