"""What one ``%%cometimg`` cell asks of the layers below: how often it validates a request, looks
up the API key and checks the history's writability (counted by wrapping those functions, so the
counts do not depend on timing or on how the work is spread over threads)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import new_magic_shell

from cometnb._core import settings as _settings
from cometnb._core.generations import Generation, Grid, ImageRequest
from cometnb._core.secret import Secret
from cometnb._storage.folder import History

if TYPE_CHECKING:
    from cometnb.sim import SimServer

CELL = "%%cometimg -m gpt-image-2 -q low\na red fox in the snow, long shadows at dawn"
GRID = "%%cometimg -m gpt-image-2,gpt-image-1-mini -q low,medium\na lighthouse in fog"


def _layer(depth: int) -> str:
    """The cometnb layer (``_notebook``, ``_client``, ``_core``…) of the caller ``depth`` up."""
    name = str(sys._getframe(depth + 1).f_globals.get("__name__", ""))
    parts = name.split(".")
    return parts[1] if parts[0] == "cometnb" and len(parts) > 1 else name


@dataclass
class Counts:
    """Calls made while one cell ran, by the layer that made them."""

    validations: Counter[str] = field(default_factory=Counter)
    key_lookups: Counter[str] = field(default_factory=Counter)  # resolve_key with no key given
    writable_checks: Counter[str] = field(default_factory=Counter)
    on: bool = False

    def clear(self) -> None:
        self.validations.clear()
        self.key_lookups.clear()
        self.writable_checks.clear()


@pytest.fixture
def counted(
    sim: SimServer, history_dir: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Counts]]:
    """A magic shell on the simulator, with validation, key look-up and writability counted."""
    counts = Counts()
    real_validate = ImageRequest.validate
    real_resolve = _settings.resolve_key
    real_writable = History.check_writable

    def validate(self: ImageRequest, key: Secret | None = None) -> ImageRequest:
        counts.validations[_layer(1)] += 1
        return real_validate(self, key)

    def resolve_key(explicit: str | Secret | None = None) -> Secret | None:
        if not explicit:  # a look-up of the session / .env / Colab / environment key
            counts.key_lookups[_layer(1)] += 1
        return real_resolve(explicit)

    def check_writable(self: History) -> None:
        counts.writable_checks[_layer(1)] += 1
        real_writable(self)

    monkeypatch.setattr(ImageRequest, "validate", validate)
    monkeypatch.setattr(_settings, "resolve_key", resolve_key)
    monkeypatch.setattr(History, "check_writable", check_writable)
    shell = new_magic_shell(base_url=sim.base_url, history_dir=str(history_dir))
    _settings.set_session_key(fake_key)
    shell.run_cell(CELL)  # warm-up: first imports, the history folder created
    counts.clear()
    yield shell, counts


def _run(shell: Any, sim: SimServer, source: str, *, requests: int) -> Any:
    """Run ``source`` as a notebook cell; it must succeed after sending ``requests`` POSTs."""
    before = sim.request_count
    result = shell.run_cell(source)
    assert result.error_in_exec is None
    assert sim.request_count == before + requests
    return result.result


def _assert_once_by_the_notebook(counts: Counts) -> None:
    """The notebook looks the key up once and hands it to the client, which never looks again;
    it checks the history's writability once."""
    assert counts.key_lookups["_notebook"] == 1
    assert counts.key_lookups["_client"] == 0
    assert counts.writable_checks["_notebook"] == 1


def test_one_cell_looks_up_the_key_once_and_checks_the_history_once(
    counted: tuple[Any, Counts], sim: SimServer
) -> None:
    shell, counts = counted
    result = _run(shell, sim, CELL, requests=1)
    assert isinstance(result, Generation) and result.ok
    _assert_once_by_the_notebook(counts)
    # The cell's requests are validated by the grid check (the runner, called by the engine).
    assert counts.validations["_client"] >= 1 and counts.validations["_notebook"] == 0


def test_a_grid_cell_still_looks_up_the_key_once(
    counted: tuple[Any, Counts], sim: SimServer
) -> None:
    shell, counts = counted
    grid = _run(shell, sim, GRID, requests=4)
    assert isinstance(grid, Grid) and len(grid.cells) == 4
    assert all(cell.generation is not None and cell.generation.ok for cell in grid.cells)
    _assert_once_by_the_notebook(counts)  # once per cell, not once per request
    assert sum(counts.validations.values()) >= 4  # each of the four requests at least once


def test_a_cell_with_no_key_is_refused_after_one_look_up(
    counted: tuple[Any, Counts], sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cometnb._core.errors import AuthenticationError

    shell, counts = counted
    _settings.set_session_key(None)
    monkeypatch.delenv(_settings.KEY_ENV, raising=False)
    before = sim.request_count
    result = shell.run_cell(CELL)
    assert isinstance(result.error_in_exec, AuthenticationError)
    assert sim.request_count == before
    assert counts.key_lookups["_notebook"] == 1 and counts.key_lookups["_client"] == 0
    assert sum(counts.writable_checks.values()) == 0  # refused before the history is opened


def test_one_cell_validates_once_and_resolves_the_key_once(counted: tuple[Any, Counts]) -> None:
    shell, counts = counted
    result = shell.run_cell(CELL)
    assert result.error_in_exec is None
    assert sum(counts.validations.values()) == 1
    assert sum(counts.key_lookups.values()) == 1
    assert sum(counts.writable_checks.values()) == 1


# --- one client for the cells of a session -----------------------------------------------------


def _watch_close(client: Any) -> list[str]:
    """Note when ``client`` is closed (it still closes)."""
    closed: list[str] = []
    real = client.aclose

    async def aclose() -> None:
        closed.append("closed")
        await real()

    client.aclose = aclose
    return closed


def test_cells_share_one_client_until_what_it_was_made_from_changes(
    counted: tuple[Any, Counts], sim: SimServer, fake_key: str
) -> None:
    """One connection pool and one pacer (what it learnt of the account's rate limit) serve
    cell after cell; a new client setting or key makes a new client, and the old one is
    closed."""
    from cometnb._core.session import current
    from cometnb._notebook.cell_engine import CellClient

    shell, _ = counted
    cells = current().part(CellClient)
    first = cells._client
    assert first is not None  # made by the warm-up cell
    first_closed = _watch_close(first)
    prompts = [f"a tin robot, pose {i}, " + "soft studio light " * (i % 4) for i in range(5)]
    for prompt in prompts:
        _run(shell, sim, f"%%cometimg -m gpt-image-2 -q low\n{prompt}", requests=1)
        assert cells._client is first
    assert first_closed == []
    shell.run_line_magic("config", "CometImg.timeout = 45.0")
    _run(shell, sim, CELL, requests=1)
    second = cells._client
    assert second is not None and second is not first and first_closed == ["closed"]
    second_closed = _watch_close(second)
    _settings.set_session_key(fake_key[:-4] + "WXYZ")
    _run(shell, sim, CELL, requests=1)
    assert cells._client is not second and second_closed == ["closed"]


def test_the_cell_client_is_closed_when_the_session_stops(
    sim: SimServer, history_dir: Path, fake_key: str
) -> None:
    import cometnb
    from cometnb._core import session as _session
    from cometnb._notebook.cell_engine import CellClient

    made = cometnb._new_session()
    previous = _session.install(made)
    try:
        shell = new_magic_shell(base_url=sim.base_url, history_dir=str(history_dir))
        _settings.set_session_key(fake_key)
        _run(shell, sim, CELL, requests=1)
        client = made.part(CellClient)._client
        assert client is not None
        closed = _watch_close(client)
    finally:
        _session.install(previous)
        made.close()  # the client first, on its loop thread, then the loop thread
    assert closed == ["closed"]
