"""Budgets in ``%%cometimg``: refused before sending, stopped midway, confirm_above + --yes,
unknown prices, --dry-run estimates and the cost in every cell's footer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_magic import Recorder, assert_short_error, configure, recorder, run

from cometnb._core import settings as _settings
from cometnb._core.budget import session
from cometnb._core.errors import BudgetError
from cometnb._core.generations import Generation, Grid
from cometnb._core.prices import builtin_table, gpt_image_2_tokens, prompt_tokens

if TYPE_CHECKING:
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ip(sim: SimServer, history_dir: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """test_magic's shell: a session key, displays recorded, shown as in a notebook."""
    from conftest import new_magic_shell

    shell = new_magic_shell(base_url=sim.base_url, history_dir=str(history_dir))
    _settings.set_session_key(fake_key)
    shown = Recorder()
    shown.history_dir = history_dir
    monkeypatch.setattr(shell, "display_pub", shown)
    shell.magics_manager.registry["CometImg"].engine.rich = True
    return shell


# Nine requests, about $0.70: the example of a grid that multiplies the bill.
NINE = "%%cometimg -m gpt-image-2 -s 1024x1024,1536x1024,1024x1536 -q low,medium,high"
PROMPT = "a paper boat on a pond at sunrise"


def _low(prompt: str = PROMPT, extra_tokens: int = 0) -> float:
    text = prompt_tokens(prompt, builtin_table())
    return text * 5e-6 + (gpt_image_2_tokens(1024, 1024, "low") + extra_tokens) * 30e-6


def test_grid_over_the_budget_is_refused_with_nothing_sent(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(ip, budget=0.50)
    result, out = run(ip, capsys, f"{NINE}\n{PROMPT}")
    line = assert_short_error(result, out, BudgetError, "9 requests would cost", "$0.50 left")
    assert "≈ $0.69" in line and "nothing was sent" in line  # 23,012 image tokens at $30/M
    assert sim.request_count == 0


def test_cell_budget_refuses_too(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, f"{NINE} --budget 0.25\n{PROMPT}")
    assert_short_error(result, out, BudgetError, "--budget", "$0.25 left")
    assert sim.request_count == 0
    result, out = run(ip, capsys, f"{NINE} --budget 1\n{PROMPT}")
    assert result.success, result.error_in_exec
    assert sim.request_count == 9


def test_grid_that_runs_out_midway_keeps_its_images_and_says_how_many_were_skipped(
    ip: Any, sim: SimServer, history_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real service can bill more than the formula says (CometAPI's 1024² low sample
    # reports 208 output tokens, not 196); here 400 more per image.
    sim.extra_output_tokens = 400
    configure(ip, concurrency=1)
    prompts = [f"{PROMPT}, take {i}" for i in range(1, 6)]
    estimate = sum(_low(p) for p in prompts)  # ≈ $0.030: the whole cell fits the budget
    assert estimate < 0.035
    body = "\n".join(prompts)
    result, out = run(
        ip,
        capsys,
        f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low --each-line --budget 0.035\n{body}",
    )
    assert result.success, result.error_in_exec
    grid = ip.user_ns["_"]
    assert isinstance(grid, Grid)
    sent = sim.request_count
    assert sent == 2  # $0.018 each: after two, the $0.006 estimate of a third no longer fits
    made = [g for g in grid.generations if g.ok]
    assert len(made) == 2 and all(g.image.path and g.image.path.is_file() for g in made)
    skipped = [g for g in grid.generations if not g.ok]
    assert len(skipped) == 3 and all(isinstance(g.error, BudgetError) for g in skipped)
    assert "Budget reached: 3 of 5 requests were not sent" in out
    assert "the 2 images already made are kept" in out
    assert "Raise --budget to send the rest." in out  # the cap that stopped them
    assert "3 not sent (budget)" in recorder(ip).htmls()[-1]
    from cometnb.history import History

    assert len(History(history_dir)) == 2  # nothing was recorded for what was not sent
    # Read the same everywhere: the cell's badge, the Grid's repr, the Generation's repr.
    html = recorder(ip).htmls()[-1]
    assert html.count(">not sent (budget)</span>") == 3 and ">cancelled</span>" not in html
    assert repr(grid).endswith("5/5 done, 0 failed, 3 not sent (budget)>")
    assert all(g.state == "not sent (budget)" for g in skipped)
    assert "not sent (budget): not sent: its estimate" in repr(skipped[0])


def test_budget_stopped_cells_read_not_sent_in_the_progress_line() -> None:
    from cometnb._client.runner import _failed, _finish
    from cometnb._core.generations import GridCell, ImageRequest
    from cometnb._core.progress import CellProgress

    cell = GridCell({"prompt": "x"}, ImageRequest(PROMPT, "gpt-image-2"))
    progress = CellProgress()
    _finish(cell, progress, _failed(cell.request, BudgetError("not sent"), status="cancelled"))
    assert progress.state == "not sent (budget)" and progress.finished
    assert progress.text() == "not sent (budget)"


def test_session_budget_spans_cells(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(ip, budget=0.015)
    cell = f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low\n{PROMPT}"
    assert run(ip, capsys, cell)[0].success
    assert run(ip, capsys, cell)[0].success
    result, out = run(ip, capsys, cell)  # $0.0118 spent: $0.0032 is not enough for a third
    assert_short_error(result, out, BudgetError, "session budget", "$0.003 left")
    assert sim.request_count == 2
    assert session.usd == pytest.approx(2 * _low())


def test_confirm_above_needs_yes(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(ip, confirm_above=0.01)
    cell = "%%cometimg -m gpt-image-2 -s 1024x1024 -q low,medium\n" + PROMPT
    result, out = run(ip, capsys, cell)
    assert_short_error(result, out, BudgetError, "above CometImg.confirm_above", "--yes")
    assert sim.request_count == 0
    result, _ = run(ip, capsys, cell.replace("-q low,medium", "-q low,medium --yes"))
    assert result.success, result.error_in_exec
    assert sim.request_count == 2
    # a cell under the threshold needs no --yes
    assert run(ip, capsys, f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low\n{PROMPT}")[0].success


def test_unknown_price_is_refused_while_a_budget_is_set(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(ip, budget=5.0)
    result, out = run(ip, capsys, f"%%cometimg -m qwen-image\n{PROMPT}")
    assert_short_error(result, out, BudgetError, "unknown", "prices_file")
    assert sim.request_count == 0
    configure(ip, budget=None)
    result, _ = run(ip, capsys, f"%%cometimg -m qwen-image\n{PROMPT}")
    assert result.success, result.error_in_exec
    assert "cost unknown" in recorder(ip).htmls()[-1]


def test_dry_run_shows_each_estimate_and_the_total(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out = run(ip, capsys, f"{NINE} --dry-run\n{PROMPT}")
    assert result.success, result.error_in_exec
    assert sim.request_count == 0
    lines = re.findall(r"^\s+\[\s*\d+\] (≈ \$[0-9.]+)", out, re.MULTILINE)
    assert len(lines) == 9, out
    assert "Estimated cost (built-in 2026-12-01 prices):" in out
    total = re.search(r"total: ≈ \$([0-9.]+) for 9 request\(s\)", out)
    assert total is not None and float(total.group(1)) == pytest.approx(0.69)


def test_footers_show_actual_cost(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result, _ = run(ip, capsys, f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low\n{PROMPT}")
    gen = result.result
    assert isinstance(gen, Generation) and gen.cost.label == "$0.006"
    assert 'class="cometnb-cost"' in recorder(ip).htmls()[-1]
    assert "$0.006" in recorder(ip).htmls()[-1]
    result, _ = run(ip, capsys, f"%%cometimg -m dall-e-3,gpt-image-2 -s 1024x1024\n{PROMPT}")
    final = recorder(ip).htmls()[-1]
    assert "$0.040" in final  # dall-e-3 standard square, per image
    assert final.count('class="cometnb-cost"') >= 2


def test_bad_budget_and_price_settings_are_refused_clearly(
    ip: Any,
    sim: SimServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from IPython.core.error import UsageError

    result, out = run(ip, capsys, f"%%cometimg --budget -1\n{PROMPT}")
    assert isinstance(result.error_in_exec, UsageError) and "--budget" in out
    bad = tmp_path / "prices.json"
    bad.write_text('{"models": {"gpt-image-2": {"image_out": "cheap"}}}')
    result, out = run(ip, capsys, f"%config CometImg.prices_file = {str(bad)!r}")
    # %config reports a refused trait value through logging, as for CometImg.concurrency = 0
    assert "price image_out of gpt-image-2 must be a number" in caplog.text
    magics = ip.magics_manager.registry["CometImg"]
    assert magics.prices_file is None and _settings.active().prices_file is None
    result, out = run(ip, capsys, "%config CometImg.budget = -5")
    assert "CometImg.budget must be an amount of USD, 0 or more" in caplog.text
    assert _settings.active().budget is None
    assert sim.request_count == 0


def test_prices_file_setting_changes_the_estimate(
    ip: Any, sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "prices.json"
    mine.write_text('{"date": "2027-01-01", "models": {"gpt-image-2": {"image_out": 60}}}')
    configure(ip, prices_file=str(mine))
    result, out = run(
        ip, capsys, f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low --dry-run\n{PROMPT}"
    )
    assert result.success, result.error_in_exec
    # 196 image tokens at the file's $60/M: twice the built-in ≈ $0.006
    assert "(prices.json 2027-01-01 prices)" in out and "[1] ≈ $0.01 " in out


@pytest.mark.parametrize(
    "text",
    [
        '{"models": {}, "extras": {"chars_per_text_token": "four"}}',
        '{"models": {}, "token_tables": [1]}',
        '{"models": {}, "aliases": ["a"]}',
        '{"models": {"gpt-image-2": {"image_out": "30"}}}',
        "{models: ",
    ],
)
def test_a_malformed_prices_file_is_refused_and_does_not_stick(
    ip: Any,
    sim: SimServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    text: str,
) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"models": {"qwen-image": {"per_image": 0.03}}}', encoding="utf-8")
    configure(ip, prices_file=str(good))
    bad = tmp_path / "bad.json"
    bad.write_text(text, encoding="utf-8")
    result, out = run(ip, capsys, f"%config CometImg.prices_file = {str(bad)!r}")
    said = [r.getMessage() for r in caplog.records]  # %config reports a refusal as a log line
    assert len(said) == 1 and said[0].startswith(f"the price file {bad}")
    assert "\n" not in said[0] and "Traceback" not in out + said[0]
    magic = ip.magics_manager.registry["CometImg"]
    assert magic.prices_file == str(good) and _settings.active().prices_file == str(good)
    # later cells keep working with the prices in force before
    result, out = run(ip, capsys, f"%%cometimg -m qwen-image --dry-run\n{PROMPT}")
    assert result.success and "≈ $0.03" in out and "Traceback" not in out


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "-1.0"])
def test_a_session_budget_that_is_not_an_amount_is_refused(
    ip: Any, sim: SimServer, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    configure(ip, budget=1.0)
    ip.run_cell(f"%config CometImg.budget = {value}")
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "CometImg.budget must be an amount of USD, 0 or more" in said
    assert _settings.active().budget == 1.0  # the previous cap holds
    assert ip.magics_manager.registry["CometImg"].budget == 1.0


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_cell_budget_that_is_not_an_amount_is_refused(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    result, out = run(ip, capsys, f"%%cometimg -m gpt-image-2 -q low --budget {value}\n{PROMPT}")
    assert not result.success and "--budget needs an amount of USD" in out
    assert sim.request_count == 0


def test_a_budget_set_below_what_the_session_spent_is_explained_in_one_line(
    ip: Any, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: $0.10 spent, then ``%config CometImg.budget = 0.05``."""
    for _ in range(2):
        run(ip, capsys, f"%%cometimg -m gpt-image-2 -s 1024x1024 -q medium\n{PROMPT}")
    spent = session.usd
    assert 0.10 <= spent < 0.12 and sim.request_count == 2
    result, out = run(ip, capsys, "%config CometImg.budget = 0.05")
    assert result.success
    (note,) = [line for line in out.splitlines() if line.strip()]
    assert note.startswith(f"Note: budget $0.05 set after ${spent:.2f} was already spent")
    assert "nothing left" in note and "%config CometImg.budget = None" in note
    result, out = run(ip, capsys, f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low\n{PROMPT}")
    line = assert_short_error(result, out, BudgetError, "budget $0.05 used up", "nothing left")
    assert "$0.000" not in line and "nothing was sent" in line
    assert sim.request_count == 2
    # Raised above what was spent, the budget covers the next request again.
    result, out = run(ip, capsys, "%config CometImg.budget = 0.20")
    assert out.strip() == ""
    result, _ = run(ip, capsys, f"%%cometimg -m gpt-image-2 -s 1024x1024 -q low\n{PROMPT}")
    assert result.success and sim.request_count == 3


def test_the_budget_trait_says_what_it_counts(ip: Any) -> None:
    from cometnb._core.budget import BUDGET_MEANING

    trait = ip.magics_manager.registry["CometImg"].traits()["budget"]
    assert trait.help == BUDGET_MEANING and "before the budget was set counts" in trait.help
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert "counts what this kernel session spent before it was set" in readme
