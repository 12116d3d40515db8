"""Budget guards without a kernel: the whole-cell check and the in-run guard."""

from __future__ import annotations

import threading

import pytest

from cometnb._core.budget import BudgetLimits, Ledger, SpendGuard, check_before
from cometnb._core.errors import BudgetError, ValidationError
from cometnb._core.prices import Cost

# gpt-image-2 1024x1024 medium, as estimated (1756 image tokens at $30/M, plus the prompt)
MEDIUM = Cost(0.0528, True, "1756 image tokens out")


def _check(estimates: list[Cost], ledger: Ledger | None = None, **caps: object) -> Cost:
    args: dict[str, object] = {
        "session_budget": None,
        "cell_budget": None,
        "confirm_above": None,
        "yes": False,
        **caps,
    }
    return check_before(estimates, ledger=ledger or Ledger(), **args)  # type: ignore[arg-type]


def test_no_caps_passes_and_totals() -> None:
    total = _check([MEDIUM] * 9)
    assert total.usd == pytest.approx(9 * 0.0528) and total.estimated


def test_over_the_cell_budget_is_refused_with_estimate_and_left() -> None:
    with pytest.raises(BudgetError) as info:
        _check([MEDIUM] * 9, cell_budget=0.25)
    err = info.value
    assert isinstance(err, ValidationError)  # refused before any network call
    assert err.estimate_usd == pytest.approx(0.4752) and err.left_usd == pytest.approx(0.25)
    text = str(err)
    assert "9 requests would cost ≈ $0.48" in text
    assert "the cell's --budget has $0.25 left" in text
    assert "nothing was sent" in text and "--budget" in text


def test_session_budget_counts_what_was_already_spent() -> None:
    ledger = Ledger()
    ledger.add(Cost(0.90, False, "earlier cells"))
    with pytest.raises(BudgetError, match=r"session budget \(CometImg.budget\) has \$0.10 left"):
        _check([MEDIUM, MEDIUM], ledger, session_budget=1.0)
    assert _check([MEDIUM], ledger, session_budget=1.0).usd == pytest.approx(0.0528)


def test_the_tighter_cap_is_named() -> None:
    ledger = Ledger()
    ledger.add(Cost(0.95, False, ""))
    with pytest.raises(BudgetError, match="the session budget has"):
        _check([MEDIUM, MEDIUM], ledger, session_budget=1.0, cell_budget=0.5)


def test_unknown_cost_is_refused_while_a_budget_is_set() -> None:
    unknown = Cost(None, True, "no price for qwen-image")
    assert _check([unknown]).usd is None  # no budget: allowed, shown as unknown
    with pytest.raises(BudgetError, match="cost of this request is unknown") as info:
        _check([unknown], session_budget=5.0)
    assert "prices_file" in str(info.value) and "qwen-image" in str(info.value)
    with pytest.raises(BudgetError, match="cost of 1 of the 3 requests is unknown"):
        _check([MEDIUM, unknown, MEDIUM], cell_budget=5.0)


def test_confirm_above_needs_yes() -> None:
    with pytest.raises(BudgetError, match=r"above CometImg\.confirm_above") as info:
        _check([MEDIUM] * 30, confirm_above=1.0)
    assert "--yes" in str(info.value)
    assert _check([MEDIUM] * 30, confirm_above=1.0, yes=True).usd == pytest.approx(30 * 0.0528)
    # --yes does not lift a budget
    with pytest.raises(BudgetError, match="budget"):
        _check([MEDIUM] * 30, confirm_above=1.0, yes=True, cell_budget=1.0)


def test_guard_admits_until_the_budget_cannot_cover_the_next() -> None:
    ledger = Ledger()
    guard = SpendGuard(BudgetLimits(cell_budget=0.20), ledger=ledger)
    sent = 0
    for _ in range(6):
        if guard.admit(MEDIUM) is not None:
            continue
        sent += 1
        actual = Cost(0.08, False, "billed more than estimated")
        ledger.add(actual)  # the client adds each cost to the session ledger
        guard.settle(MEDIUM, actual)
    # 0.08 + 0.08 = 0.16; 0.16 + 0.0528 > 0.20 → the third and later are not sent
    assert sent == 2 and guard.skipped == 4
    assert guard.spent == pytest.approx(0.16)


def test_guard_reserves_requests_in_flight() -> None:
    guard = SpendGuard(BudgetLimits(cell_budget=0.12), ledger=Ledger())
    assert guard.admit(MEDIUM) is None and guard.admit(MEDIUM) is None
    refused = guard.admit(MEDIUM)  # two in flight already hold 0.1056 of 0.12
    assert refused is not None and "≈ $0.05" in str(refused) and "($0.01)" in str(refused)


def test_guard_charges_an_unknown_actual_at_its_estimate() -> None:
    guard = SpendGuard(BudgetLimits(cell_budget=0.10), ledger=Ledger())
    assert guard.admit(MEDIUM) is None
    guard.settle(MEDIUM, Cost(None, False, "no usage"))
    assert guard.spent == pytest.approx(0.0528)
    assert guard.admit(MEDIUM) is not None


def test_guard_without_caps_admits_everything() -> None:
    guard = SpendGuard(BudgetLimits(), ledger=Ledger())
    assert all(guard.admit(Cost(None, True, "")) is None for _ in range(3))


def test_ledger_is_thread_safe_and_labels() -> None:
    ledger = Ledger()
    threads = [
        threading.Thread(target=lambda: [ledger.add(Cost(0.001, False, "")) for _ in range(500)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert ledger.requests == 2000 and ledger.usd == pytest.approx(2.0)
    ledger.add(Cost(None, False, ""))
    assert ledger.label == "$2.00 this session and 1 request of unknown cost"


def test_a_cell_budget_refusal_says_to_raise_budget_not_the_session_setting() -> None:
    with pytest.raises(BudgetError) as info:
        _check([MEDIUM] * 9, cell_budget=0.25)
    assert info.value.hint is not None
    assert "--budget" in info.value.hint and "CometImg.budget" not in info.value.hint
    with pytest.raises(BudgetError) as info:
        _check([MEDIUM] * 9, session_budget=0.25)
    assert info.value.hint is not None and "%config CometImg.budget" in info.value.hint
    guard = SpendGuard(BudgetLimits(cell_budget=0.06), ledger=Ledger())
    assert guard.admit(MEDIUM) is None
    refused = guard.admit(MEDIUM)
    assert refused is not None and refused.hint is not None
    assert "--budget" in refused.hint and "CometImg.budget" not in refused.hint


def test_in_flight_reservations_count_against_the_session_across_guards() -> None:
    ledger = Ledger()
    one = SpendGuard(BudgetLimits(session_budget=0.08), ledger=ledger)
    two = SpendGuard(BudgetLimits(session_budget=0.08), ledger=ledger)
    assert one.admit(MEDIUM) is None
    assert ledger.reserved == pytest.approx(0.0528)
    # Another run (another thread's generate) sees what is in flight: $0.027 left, not $0.08.
    refused = two.admit(MEDIUM)
    assert refused is not None and refused.left_usd == pytest.approx(0.0272)
    ledger.add(Cost(0.05, False, "actual"))  # what the client books when it ends
    one.settle(MEDIUM, Cost(0.05, False, "actual"))
    assert ledger.reserved == 0.0 and one.left() == pytest.approx(0.03)


def test_a_budget_below_the_session_spend_is_explained_not_shown_as_zero_left() -> None:
    from cometnb._core.budget import budget_note

    ledger = Ledger()
    for usd in (0.05268, 0.05268):  # two gpt-image-2 medium images: $0.10537
        ledger.add(Cost(usd, False, "1756 image tokens"))
    note = budget_note(0.05, ledger, just_set=True)
    assert note is not None
    assert note.startswith("budget $0.05 set after $0.11 was already spent this session")
    assert "nothing left; raise it above $0.11" in note
    with pytest.raises(BudgetError) as info:
        _check([Cost(0.006, True, "low")], ledger, session_budget=0.05)
    # Refused later, it cannot tell when the budget was set: it says what it counts instead.
    text = str(info.value)
    assert "budget $0.05 used up: $0.11 was spent this session: nothing left" in text
    assert "before it was set too" in text and "$0.000" not in text
    assert info.value.left_usd == 0.0
    assert budget_note(0.20, ledger) is None and budget_note(None, ledger) is None
    # A cell's --budget that leaves less than the session's is named as usual.
    with pytest.raises(BudgetError, match="the cell's --budget has"):
        _check([MEDIUM], ledger, session_budget=0.2, cell_budget=0.01)


def test_the_ledger_sums_exactly() -> None:
    ledger = Ledger()
    costs = [0.05268, 0.40986, 0.05588] * 70  # float addition drifts over 210 of these
    for usd in costs:
        ledger.add(Cost(usd, False, ""))
    assert sum(costs) != 36.2894  # what plain float addition gives instead
    assert ledger.usd == 36.2894 and repr(ledger.usd) == "36.2894"
    assert ledger.label == "$36.29 this session"
