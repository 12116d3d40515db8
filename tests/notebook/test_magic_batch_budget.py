"""``%%cometimg --batch NAME`` under a budget: the cell's --budget, CometImg.budget and
CometImg.confirm_above apply to the items the cell is about to send, not to those done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cometnb._core import settings as _settings
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import estimate

if TYPE_CHECKING:
    from cometnb.sim import SimServer

PROMPTS = ["a ceramic mug with a fox glaze", "a brass desk lamp", "a pair of wool socks"]
OPTIONS = "-m gpt-image-2 -s 1024x1024 -q low --each-line --batch shop -o shop"


def _each() -> float:
    usd = estimate(ImageRequest(PROMPTS[0], "gpt-image-2", size="1024x1024", quality="low")).usd
    assert usd is not None
    return usd


def _cell(prompts: list[str], extra: str = "") -> str:
    return f"%%cometimg {OPTIONS} {extra}\n" + "\n".join(prompts) + "\n"


def test_the_cell_budget_refuses_a_batch_before_anything_is_sent(
    magic_shell: Any, sim: SimServer
) -> None:
    result = magic_shell.run_cell(_cell(PROMPTS, f"--budget {2.5 * _each():.4f}"))
    assert not result.success
    text = str(result.error_in_exec)
    assert "3 requests would cost" in text and "--budget" in text and "nothing was sent" in text
    assert sim.request_count == 0


def test_a_rerun_is_checked_on_what_is_left_to_send(magic_shell: Any, sim: SimServer) -> None:
    result = magic_shell.run_cell(_cell(PROMPTS[:2]))
    assert result.success, result.error_in_exec
    sent = sim.request_count
    # The whole cell (3 items) is over this budget; the one item left to send is not.
    result = magic_shell.run_cell(_cell(PROMPTS, f"--budget {1.5 * _each():.4f}"))
    assert result.success, result.error_in_exec
    assert sim.request_count == sent + 1
    assert magic_shell.user_ns["shop"].counts()["done"] == 3


def test_confirm_above_asks_for_yes_on_what_is_left(magic_shell: Any, sim: SimServer) -> None:
    _settings.active().confirm_above = 1.5 * _each()
    result = magic_shell.run_cell(_cell(PROMPTS))
    assert not result.success and "--yes" in str(result.error_in_exec)
    assert sim.request_count == 0
    result = magic_shell.run_cell(_cell(PROMPTS, "--yes"))
    assert result.success, result.error_in_exec
    assert sim.request_count == 3
