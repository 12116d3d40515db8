"""The demo notebooks and the README's code use only live models (issue 23): every model id
they name, in a ``-m`` list, a ``%config CometImg.model``, a ``model=`` argument or a panel's
model field, is one the registry marks live today; a retired id appears in neither."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _readme_runner import blocks

from cometnb._core import settings as _settings
from cometnb._core.model_registry import MODELS, SHUTDOWN_DATES, model_info

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# Where a model id is named in code: -m a,b / CometImg.model = "x" / model="x" / .model.value = "x"
_NAMED = re.compile(
    r"""(?:-m\s+|--model\s+)(?P<flag>[\w.,-]+)"""
    r"""|(?:CometImg\.model\s*=\s*|model\s*=\s*|model\.value\s*=\s*)["'](?P<quoted>[\w.-]+)["']"""
)


def _models_named(source: str) -> list[str]:
    found: list[str] = []
    for match in _NAMED.finditer(source):
        found += (match.group("flag") or match.group("quoted")).split(",")
    return found


def _code_of(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _assert_live(where: str, sources: list[str]) -> int:
    named = [m for src in sources for m in _models_named(src)]
    for model in named:
        info = model_info(model)
        assert info is not None and info.status == "live", f"{where} uses {model}"
    for src in sources:
        for retired in SHUTDOWN_DATES:
            assert not re.search(rf"\b{re.escape(retired)}\b(?![.\d])", src), (
                f"{where} names the retired {retired}"
            )
    return len(named)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_demo_notebooks_use_only_live_models(path: Path) -> None:
    sources = _code_of(path)
    named = _assert_live(path.name, sources)
    # 03-panel sets the form's model; every other notebook runs cells on a named model
    assert named >= 1, f"{path.name} names no model: the check would prove nothing"


def test_the_2_6_notebook_shows_its_features() -> None:
    code = "\n".join(_code_of(REPO / "notebooks" / "06-gpt-image-2.6.ipynb"))
    assert "-q high,xhigh" in code and "--complexity low" in code and "--complexity high" in code
    assert "cometnb.models()" in code
    assert "-f svg" in code and "-f gif --frames 6 --frame-ms 150" in code
    assert "--markup {notes}" in code


def test_readme_code_uses_only_live_models() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert _assert_live("README.md", blocks(readme)) >= 3


def test_the_default_model_is_live() -> None:
    assert MODELS[_settings.DEFAULT_MODEL].status == "live"
