"""The HTML view of ``cometnb.models()``: status, what each model takes, prices, source."""

from __future__ import annotations

import datetime as dt
import re

import cometnb
from cometnb._core.model_table import models
from cometnb._core.prices import builtin_table
from cometnb._views.model_table import models_html

TODAY = dt.date(2026, 12, 5)


def test_html_view_a_person_can_scan() -> None:
    table = models(["gpt-image-2.7-flare"], today=TODAY)
    page = cometnb.models(today=TODAY)._repr_html_()
    assert page == models_html(cometnb.models(today=TODAY))  # registered as the "models" view
    html = models_html(table)
    assert "<script" not in html and html.count("<tr>") == len(table) + 1
    rows = re.findall(r"<tr>.*?</tr>", html)[1:]
    first, mini = rows[0], next(r for r in rows if "gpt-image-1-mini<" in r)
    assert "gpt-image-2<" in first and ">live<" in first
    assert ">retired<" in mini and "shut down 2026-12-01; use gpt-image-2" in mini
    flare = next(r for r in rows if "gpt-image-2.6-flare<" in r)
    assert "xhigh ≤ $0.843" in flare and "png, jpeg, webp, gif, svg" in flare
    assert "low, medium, high</td>" in flare  # complexity
    assert ">mask / markup</td>" in flare and ">mask / markup</th>" in html
    two = next(r for r in rows if "gpt-image-2<" in r)
    assert ">mask</td>" in two  # gpt-image-2 takes a mask, no markup
    assert table.row("gpt-image-2.6-flare")["markup"] and not table.row("gpt-image-2")["markup"]
    assumed = next(r for r in rows if "gpt-image-2.7-flare<" in r)
    assert ">assumed<" in assumed and "family rule" in assumed
    assert builtin_table().date in html and "≤ marks an upper bound" in html
