"""The fault table (``_faults.CASES``) through the two front ends: the ``%%cometimg`` magic in an
``InteractiveShell`` and the widget panel (``button.click()`` + ``panel.wait``).

Each fault ends in a safe retry or one short error with no traceback; the history records it;
the simulator saw exactly the requests the retry policy allows; the key is nowhere.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _faults import (
    CASES,
    FAST_TIMEOUT,
    STREAM,
    URL_RESULT,
    Case,
    arm,
    assert_clean,
    assert_short_error,
    history_statuses,
)
from conftest import FAKE_KEY

if TYPE_CHECKING:
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)


# --- the magic -------------------------------------------------------------------------------


@pytest.fixture
def shell(magic_shell: Any) -> Any:
    """The magic's shell (conftest), with short timeouts so hangs fail fast."""
    configure(magic_shell, timeout=FAST_TIMEOUT)
    return magic_shell


def configure(ip: Any, **traits: Any) -> None:
    """``%config CometImg.<name> = <value>`` for each trait."""
    for name, value in traits.items():
        ip.run_line_magic("config", f"CometImg.{name} = {value!r}")


def magic_options(case: Case) -> str:
    options = f"-m {case.model}"
    if case.fields == STREAM:
        options += " --partial 1"
    elif case.fields == URL_RESULT:
        options += " --response-format url"
    return options


def run_cell(ip: Any, capsys: pytest.CaptureFixture[str], source: str) -> tuple[Any, str]:
    """Run a cell as the notebook would; return (ExecutionResult, everything it printed)."""
    result = ip.run_cell(source, store_history=False)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_magic_fault(
    case: Case,
    sim: SimServer,
    shell: Any,
    history_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm(sim, case)
    result, out = run_cell(shell, capsys, f"%%cometimg {magic_options(case)}\na kite over dunes")
    assert sim.request_count == case.sent
    assert "Traceback" not in out, out[:500]
    if case.ok:
        assert result.success, f"{case.id}: {result.error_in_exec!r}"
        assert history_statuses(history_dir) == ["ok"]
    else:
        from cometnb import CometError

        assert isinstance(result.error_in_exec, CometError), repr(result.error_in_exec)
        assert_short_error(str(result.error_in_exec), case)
        shown = [line for line in out.splitlines() if type(result.error_in_exec).__name__ in line]
        assert shown, f"the error was not shown: {out[:500]!r}"
        assert_short_error(shown[-1], case)
        assert history_statuses(history_dir) == ["error"]
    assert_clean(tmp_path, out)


def test_magic_grid_fault_fails_one_cell_only(
    sim: SimServer,
    shell: Any,
    history_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In a grid, a billed fault fails its own cell; the others finish; nothing is sent twice."""
    sim.fault("502")
    result, out = run_cell(
        shell, capsys, "%%cometimg -m gpt-image-1-mini --each-line\nfox\nowl\nelk"
    )
    assert sim.request_count == 3
    assert sorted(history_statuses(history_dir)) == ["error", "ok", "ok"]
    assert "Traceback" not in out
    grid = result.result if result.success else None
    if grid is not None:  # the grid returns normally with one failed cell …
        assert sum(1 for g in grid if not g.ok) == 1
    else:  # … or the cell raises one short error after the others finished
        assert_short_error(str(result.error_in_exec), words=("502", "1 of 3", "failed"))
    assert_clean(tmp_path, out)


# --- the panel -------------------------------------------------------------------------------


@pytest.fixture
def panel_env(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Active settings pointing at the simulator; the panel's default history folder."""
    pytest.importorskip("cometnb.widget")
    from cometnb._core import settings as _settings

    monkeypatch.setenv("COMETAPI_KEY", FAKE_KEY)
    _settings.active().base_url = sim.base_url
    _settings.active().timeout = FAST_TIMEOUT
    return _settings.resolve_history_dir()


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).strip()


def click_generate(case: Case, prompt: str = "a kite over dunes") -> Any:
    from cometnb import panel

    p = panel(open_history=False)
    p.prompt.value = prompt
    p.model.value = case.model
    if case.fields == STREAM:
        p.partial_images.value = 1
    p.generate_button.click()
    assert p.wait(30), "the panel did not finish"
    return p


# The panel has no response_format control: dall-e-3 answers with a URL by default.
PANEL_CASES = [c for c in CASES if c.fields != URL_RESULT] + [
    Case(
        "expired-url-default",
        "expired_url",
        sent=1,
        words=("expired", "url", "download", "403", "410"),
        model="dall-e-3",
    )
]


@pytest.mark.parametrize("case", PANEL_CASES, ids=lambda c: c.id)
def test_panel_fault(case: Case, sim: SimServer, panel_env: Path, tmp_path: Path) -> None:
    arm(sim, case)
    p = click_generate(case)
    assert sim.request_count == case.sent
    message = text_of(p.message.value)
    if case.ok:
        assert len(p.generations) == 1 and p.generations[0].ok, message
        assert history_statuses(panel_env) == ["ok"]
    else:
        assert not p.generations
        assert_short_error(message, case)
        assert history_statuses(panel_env) == ["error"]
    assert p.generate_button.description == "Generate"  # usable again
    assert_clean(tmp_path, p.message.value, p.progress.value, p.gallery.value)
