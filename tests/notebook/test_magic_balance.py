"""The account's balance as a guard: a cell or batch whose estimate is above what is left on the
account is refused before anything is sent, naming both figures; the balance is read once a
session (less the session's spend since), and an endpoint that fails never stops a cell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, assert_no_key_in_tree, new_magic_shell

import cometnb
from cometnb import BudgetError
from cometnb._client import lookups as _balance
from cometnb._core import settings as _settings
from cometnb._core.budget import account, ledger
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import estimate
from cometnb.sim import SimServer

HIGH = "-m gpt-image-2 -s 1024x1024 -q high"


def _each(quality: str = "high") -> float:
    usd = estimate(ImageRequest("x", "gpt-image-2", size="1024x1024", quality=quality)).usd
    assert usd is not None
    return usd


@pytest.fixture
def shell(sim: SimServer, history_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The magic's shell with the simulator's quota endpoint configured as the balance URL."""
    monkeypatch.setenv(_settings.KEY_ENV, FAKE_KEY)
    return new_magic_shell(
        base_url=sim.base_url, history_dir=str(history_dir), balance_url=sim.quota_url
    )


def test_a_cell_above_the_balance_is_refused_naming_both_figures(
    shell: Any, sim: SimServer
) -> None:
    sim.quota.total_usd = 1.5 * _each()
    result = shell.run_cell(f"%%cometimg {HIGH} -n 2\na lighthouse in a storm\n")
    assert not result.success and isinstance(result.error_in_exec, BudgetError)
    text = str(result.error_in_exec)
    assert f"would cost ≈ ${2 * _each():.2f}" in text
    assert f"more than the account's balance of ${1.5 * _each():.2f}" in text
    assert "nothing was sent" in text and "cometnb.balance()" in text
    assert sim.request_count == 0 and sim.quota.asked == 1
    # One image fits: sent, and the next check counts what it cost (the balance is not re-read).
    assert shell.run_cell(f"%%cometimg {HIGH}\na lighthouse at dawn\n").success
    assert sim.request_count == 1 and sim.quota.asked == 1
    left = account().left_usd(ledger().usd)
    assert left is not None and left == pytest.approx(0.5 * _each(), rel=0.05)
    again = shell.run_cell(f"%%cometimg {HIGH}\none more\n")
    assert not again.success and "account's balance" in str(again.error_in_exec)
    assert sim.request_count == 1


def test_a_grid_and_a_batch_cell_are_checked_whole(shell: Any, sim: SimServer) -> None:
    sim.quota.total_usd = 3.5 * _each("low")
    grid = shell.run_cell("%%cometimg -m gpt-image-2 -s 1024x1024 -q low,medium\na kite\n")
    assert not grid.success and "2 requests would cost" in str(grid.error_in_exec)
    lines = "\n".join(f"item {i}" for i in range(5))
    batch = shell.run_cell(
        f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low --each-line --batch shop\n{lines}\n"
    )
    assert not batch.success
    assert re.search(
        r"5 requests would cost .* more than the account's balance", str(batch.error_in_exec)
    )
    assert sim.request_count == 0
    # Within the balance, the same batch runs.
    sim.quota.total_usd = 50.0
    cometnb.balance()  # read again on demand
    assert shell.run_cell(
        f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low --each-line --batch shop\n{lines}\n"
    ).success
    assert sim.request_count == 5


def test_a_python_batch_is_checked_without_a_budget(
    sim: SimServer, hist: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_settings.KEY_ENV, FAKE_KEY)
    monkeypatch.setenv("COMETAPI_BALANCE_URL", sim.quota_url)
    sim.quota.total_usd = 0.02
    client = cometnb.Client(base_url=sim.base_url, history=hist)
    prompts = [f"product shot {i}" for i in range(40)]
    with pytest.raises(BudgetError, match=r"40 requests would cost .* balance of \$0\.02"):
        cometnb.batch(prompts, name="catalogue", model="gpt-image-2", quality="low", client=client)
    assert sim.request_count == 0 and sim.quota.asked == 1
    client.close()


def test_a_failing_endpoint_never_blocks_and_says_so_once(
    shell: Any, sim: SimServer, capfd: pytest.CaptureFixture[str]
) -> None:
    sim.quota.fault = "500"
    for prompt in ("a red fox", "a grey wolf", "a brown bear"):
        assert shell.run_cell(f"%%cometimg -m gpt-image-2 -q low\n{prompt}\n").success
    err = capfd.readouterr().err
    assert err.count("the account balance could not be read") == 1
    assert "HTTP 500" in err and "generation goes on" in err and FAKE_KEY not in err
    assert sim.request_count == 3 and sim.quota.asked == 1  # not asked again every cell


def test_a_slow_endpoint_is_given_up_on_quickly(
    shell: Any, sim: SimServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_balance, "QUIET_TIMEOUT_S", 0.3)
    sim.quota.fault, sim.quota.delay = "slow", 5.0
    assert shell.run_cell("%%cometimg -m gpt-image-2 -q low\na quiet harbour\n").success
    assert "ReadTimeout" in capfd.readouterr().err and sim.request_count == 1


def test_another_server_without_a_balance_url_is_not_asked(
    magic_shell: Any, sim: SimServer
) -> None:
    sim.quota.total_usd = 0.0  # would refuse everything if it were read
    assert magic_shell.run_cell("%%cometimg -m gpt-image-2 -q low\na plain cell\n").success
    assert sim.quota.asked == 0 and sim.request_count == 1


def test_the_key_is_in_no_output_or_file(
    shell: Any, sim: SimServer, history_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sim.quota.total_usd = 0.01
    refused = shell.run_cell(f"%%cometimg {HIGH}\na lighthouse\n")
    shell.user_ns["cometnb"] = cometnb
    value = shell.run_cell("b = cometnb.balance(); b")
    sim.quota.fault = "401"
    failed = shell.run_cell("cometnb.balance()")
    out = capfd.readouterr()
    assert not refused.success and value.success and not failed.success
    assert "Balance: $0.01 left on the account, $0.00 used, as of " in out.out  # as shown
    for text in (out.out, out.err, str(refused.error_in_exec), str(failed.error_in_exec)):
        assert FAKE_KEY not in text
    assert FAKE_KEY not in repr(shell.user_ns["b"]) and FAKE_KEY not in str(shell.user_ns["b"])
    cometnb.history(history_dir).export(tmp_path / "out.html")
    assert_no_key_in_tree(tmp_path)
