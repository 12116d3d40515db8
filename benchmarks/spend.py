"""8. Spend: estimating a 1,000-request batch before it is sent.

A batch or a big grid is estimated as a whole before its first request (the budget check), so
the estimate must cost nothing noticeable. Timed: pricing 1,000 varied requests (every seed
model, sizes, qualities, n, streamed partials, ``auto``) with the price table in force, plus
the whole-batch budget check; and, for comparison, the same with the table looked up once.
Medians of several rounds, garbage collector paused.
"""

from __future__ import annotations

import itertools
from typing import Any

from ._harness import Result, median, ms, need, timed

TITLE = "Estimating a 1,000-request batch (price table in force, budget check)"
REQUESTS = 1_000
ROUNDS = 15
GOAL_S = 0.050

_VARIANTS: tuple[dict[str, Any], ...] = (
    {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"},
    {"model": "gpt-image-2", "size": "1536x1024", "quality": "medium"},
    {"model": "gpt-image-2", "size": "2048x1152", "quality": "high", "n": 2},
    {"model": "gpt-image-2", "quality": "auto", "stream": True, "partial_images": 2},
    {"model": "gpt-image-1.5", "size": "1024x1536", "quality": "medium"},
    {"model": "gpt-image-1", "size": "auto", "quality": "high"},
    {"model": "gpt-image-1-mini", "size": "1024x1024", "quality": "medium", "n": 4},
    {"model": "dall-e-3", "size": "1792x1024", "quality": "hd"},
    {"model": "dall-e-2", "size": "512x512"},
)


def _requests() -> list[Any]:
    models = need("cometnb._core.generations")
    prompts = (
        "a lighthouse on a cliff at dusk, oil painting",
        "product photo of a ceramic mug on oak, soft window light",
        "isometric pixel-art city block at night, neon signs, rain",
    )
    combos = itertools.cycle(itertools.product(prompts, _VARIANTS))
    out = []
    for _ in range(REQUESTS):
        prompt, fields = next(combos)
        out.append(models.ImageRequest(prompt, **fields))
    return out


def run() -> Result:
    costing = need("cometnb._core.prices")
    budget = need("cometnb._core.budget")
    result = Result(TITLE)
    requests = _requests()

    def batch_check() -> Any:
        estimates = costing.estimate_all(requests)  # what a cell or a batch does
        return budget.check_before(
            estimates,
            session_budget=10_000.0,
            cell_budget=None,
            confirm_above=None,
            yes=True,
            ledger=budget.Ledger(),
        )

    def table_each_time() -> Any:
        return [costing.estimate(r) for r in requests]  # the table in force resolved per request

    batch_check()  # warm: the built-in table is read and parsed once per process
    full = median([timed(batch_check)[0] for _ in range(ROUNDS)])
    each = median([timed(table_each_time)[0] for _ in range(ROUNDS)])
    total = batch_check()
    result.row(f"{REQUESTS} estimates + budget check (median of {ROUNDS})", ms(full))
    result.row("estimates alone, price table resolved per request", ms(each))
    result.row("per request", f"{full / REQUESTS * 1e6:.1f} µs")
    result.row("estimated total of the batch", total.label)
    result.goal(
        f"estimate a {REQUESTS:,}-request batch",
        f"< {ms(GOAL_S)}",
        ms(full),
        full < GOAL_S,
        why="profile costing.estimate_body: the per-size/quality maxima are recomputed for "
        "every request; cache them per (model, size, quality)",
    )
    result.notes.append(
        "The first call in a process also reads and parses the built-in prices.json "
        "(not counted: it is warmed first)."
    )
    return result
