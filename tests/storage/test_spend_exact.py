"""``h.spend()`` on a 200-record mixed history: exact sums (whole nano-dollars, the same in SQL
and Python), spend shown to the cent, and models without a price shown as "unknown"."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from _history_helpers import api_result, body

from cometnb._core.errors import APIError, CancelledError
from cometnb._core.prices import format_spend
from cometnb._storage.spend import SpendTable, spend
from cometnb._views.common import total_html
from cometnb.history import History

MODELS = ("gpt-image-2", "gpt-image-1-mini", "dall-e-3", "gpt-image-1.5", "qwen-image-unpriced")
QUALITIES = ("low", "medium", "high")
USAGE = {"input_tokens": 37, "output_tokens": 1756, "total_tokens": 1793}


def _mixed(root: Path) -> History:
    """200 records: five models (one without a price), failures of both billing kinds,
    cancellations, long prompts and tags, as the client writes them."""
    hist = History(root)
    for i in range(200):
        model = MODELS[i % len(MODELS)]
        fields = {"size": ("1024x1024", "1536x1024")[i % 2]}
        if model == "dall-e-3":
            fields["quality"] = ("standard", "hd")[i % 2]
        elif not model.endswith("unpriced"):
            fields["quality"] = QUALITIES[i % 3]
        prompt = f"request {i}: " + "a lighthouse on a cliff at dusk, " * (1 + i % 7)
        req = body(prompt, model, **fields)
        tags = [("cover", "v2", "batch:catalog")[i % 3]] if i % 4 else []
        if i % 9 == 4:
            hist.record_failure(
                req, APIError("upstream error", status=500), elapsed_s=2.0, tags=tags
            )
        elif i % 9 == 7:
            hist.record_failure(
                req, CancelledError("stopped"), elapsed_s=1.0, tags=tags, status="cancelled"
            )
        else:
            usage = USAGE if i % 2 else {}
            hist.record_success(req, api_result(usage=usage), elapsed_s=9.0, tags=tags)
    return hist


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> History:
    return _mixed(tmp_path_factory.mktemp("spend") / "hist")


def test_total_is_the_exact_sum_and_reads_cleanly(mixed: History) -> None:
    recs = mixed.records()
    costs = [r.cost.usd for r in recs if r.cost.usd is not None]
    assert len(recs) == 200 and len(costs) < 200  # some unknown
    exact = sum(Decimal(repr(c)).quantize(Decimal("1e-9")) for c in costs)
    found = mixed.spend()
    assert found == float(exact) and Decimal(repr(found)) == exact.normalize()
    assert found == spend(recs)  # SQL and Python: equal, not merely close
    assert len(repr(found).split(".")[1]) <= 9  # no 0.5184200000000001


@pytest.mark.parametrize("by", ["model", "day", "tag"])
def test_tables_are_exact_and_equal_in_sql_and_python(mixed: History, by: str) -> None:
    found, expected = mixed.spend(by=by), spend(mixed.records(), by=by)
    assert isinstance(found, SpendTable) and isinstance(expected, SpendTable)
    assert dict(found) == dict(expected) and list(found) == list(expected)
    assert found.total == expected.total == mixed.spend()
    assert all(len(repr(v).split(".")[1]) <= 9 for v in found.values())


def test_by_model_shows_unknown_not_zero_and_the_total_says_what_it_excludes(
    mixed: History,
) -> None:
    table = mixed.spend(by="model")
    assert isinstance(table, SpendTable)
    unpriced = table.counts["qwen-image-unpriced"]
    assert table.unknown["qwen-image-unpriced"] == unpriced == 40
    page = table._repr_html_()
    (row,) = re.findall(r"<tr><td>qwen-image-unpriced</td>(.*?)</tr>", page)
    assert ">unknown<" in row and "$0.0" not in row
    total_row = page[page.index("<th>total</th>") :]
    assert f">{format_spend(table.total)}<" in total_row
    assert f"excludes {table.unknown_total} requests of unknown cost" in total_row
    for model in MODELS[:4]:  # priced models: their USD to the cent
        (cells,) = re.findall(rf"<tr><td>{re.escape(model)}</td>(.*?)</tr>", page)
        assert re.search(r">\$\d+\.\d\d<", cells), cells


def test_history_total_is_to_the_cent_and_names_the_unknown(mixed: History) -> None:
    text = total_html(mixed.records())
    assert f"Total {format_spend(mixed.spend())} over 200 requests" in text
    assert "excludes 40 of unknown cost" in text
    assert re.search(r"Total \$\d+\.\d\d ", text)


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (0.0, "$0.00"),
        (0.004, "<$0.01"),
        (0.0099, "<$0.01"),
        (0.01, "$0.01"),
        (0.51842, "$0.52"),
        (1204.1, "$1,204.10"),
    ],
)
def test_spend_is_shown_to_the_cent(usd: float, shown: str) -> None:
    assert format_spend(usd) == shown


def test_terminal_text_says_unknown_too(mixed: History) -> None:
    from IPython.lib.pretty import pretty

    text = pretty(mixed.spend(by="model"))
    assert "qwen-image-unpriced: unknown (40 requests)" in text
    assert text.splitlines()[-1].startswith("total: $") and "excluding 40 request(s)" in text
