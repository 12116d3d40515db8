"""The layer contract of docs/INTERNALS.md holds: no cycles, no hidden string imports, and the
import-linter contracts in pyproject.toml really fail on an upward import."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cometnb"
ROOT = PACKAGE.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_at_runtime_or_type_checking() -> None:
    # grimp counts imports under `if TYPE_CHECKING:` and inside functions too.
    assert _cycles(grimp.build_graph("cometnb")) == []


def _string_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            target = node.args[0] if node.args else None
            ours = isinstance(target, ast.Constant) and str(target.value).startswith(
                ("cometnb", ".")
            )
            if name in ("importlib.import_module", "import_module", "__import__") and ours:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_package_root_imports_by_name() -> None:
    """import-linter cannot see ``importlib.import_module("…")``; such imports could hide an
    upward arrow, so only the package root (above every layer) may use them."""
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "__init__.py"
        for hit in _string_imports(path)
    ]
    assert offenders == []


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
def test_the_contract_holds_and_fails_on_an_upward_import(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "cometnb", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    assert _lint_imports(copy).returncode == 0

    errors = copy / "cometnb" / "_core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom cometnb._storage import index  # upward\n")
    broken = _lint_imports(copy)
    assert broken.returncode != 0
    assert "cometnb._core.errors -> cometnb._storage.index" in broken.stdout
