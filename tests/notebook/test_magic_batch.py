"""``%%cometimg --each-line --batch NAME``: a cell run as a resumable batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from cometnb._client.batch import Batch

if TYPE_CHECKING:
    from cometnb.sim import SimServer

CELL = (
    "%%cometimg -m gpt-image-1-mini --each-line --batch shop --tag catalogue -o shop\n"
    "a ceramic mug with a fox glaze\n\na brass desk lamp\na pair of wool socks\n"
)


def test_a_batch_cell_runs_once_and_a_rerun_sends_only_what_is_left(
    magic_shell: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.fault("moderation")  # the first request is refused: not done, not billed
    result = magic_shell.run_cell(CELL)
    assert result.success, result.error_in_exec
    shop = magic_shell.user_ns["shop"]
    assert isinstance(shop, Batch) and shop.counts()["done"] == 2
    assert all("catalogue" in r.tags and "batch:shop" in r.tags for r in shop.done)
    err = capsys.readouterr().err
    assert "batch shop" in err and "3/3" in err
    sent = sim.request_count
    result = magic_shell.run_cell(CELL)
    assert result.success, result.error_in_exec
    again = magic_shell.user_ns["shop"]
    assert sim.request_count == sent + 1  # only the refused one again
    assert [r.prompt for r in again.results if r is not None] == [
        "a ceramic mug with a fox glaze",
        "a brass desk lamp",
        "a pair of wool socks",
    ]
    assert repr(again) == "<Batch 'shop': 3 done, 0 failed, 0 uncertain, 0 pending of 3>"


def test_batch_needs_a_name(magic_shell: Any, sim: SimServer) -> None:
    result = magic_shell.run_cell("%%cometimg --each-line --batch=\na fox\n")
    assert not result.success and "--batch needs a name" in str(result.error_in_exec)
    assert sim.request_count == 0
