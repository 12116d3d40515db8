"""Grid expansion, validation and the concurrent runner (against the simulator)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from conftest import FAKE_KEY

from cometnb._client.runner import cell_label, expand_grid, run_grid, validate_grid
from cometnb._core.errors import CancelledError, ValidationError
from cometnb._core.generations import ClientEvent, Generation, Grid, ImageRequest
from cometnb._core.progress import CellProgress, describe_event
from cometnb._core.settings import Settings

if TYPE_CHECKING:
    from cometnb._client.client import AsyncClient
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

MINI = "gpt-image-1-mini"


@pytest.fixture
def aclient(sim: SimServer, hist: History) -> Iterator[AsyncClient]:
    from cometnb._client.client import AsyncClient
    from cometnb._client.loop import loop_thread

    client = AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, timeout=5.0)
    yield client
    loop_thread().submit(client.aclose()).result(timeout=5)


def grid_of(*prompts: str, **fields: object) -> Grid:
    return expand_grid(ImageRequest("x", MINI, **fields), {"prompt": list(prompts)})


# --- expansion -------------------------------------------------------------------------------


def test_expand_grid_is_the_cartesian_product_in_axis_order() -> None:
    base = ImageRequest("a kite", MINI, n=1)
    axes = {"size": ["1024x1024", "1536x1024"], "format": ["png", "jpeg", "webp"]}
    grid = expand_grid(base, axes)
    assert grid.shape == (2, 3) and len(grid) == 6
    assert grid.cells[1].coords == {"size": "1024x1024", "format": "jpeg"}
    assert grid.cells[1].request.to_body() == {
        "model": MINI,
        "prompt": "a kite",
        "n": 1,
        "size": "1024x1024",
        "output_format": "jpeg",
    }
    assert grid.cell(size="1536x1024", format="webp").request.fields["output_format"] == "webp"


def test_no_axes_gives_one_cell() -> None:
    grid = expand_grid(ImageRequest("a kite", MINI), {})
    assert len(grid) == 1 and grid.cells[0].coords == {}


def test_prompt_and_model_axes_replace_the_base_values() -> None:
    grid = expand_grid(ImageRequest("p0", "m0"), {"prompt": ["p1", "p2"], "model": [MINI]})
    assert [(c.request.prompt, c.request.model) for c in grid.cells] == [
        ("p1", MINI),
        ("p2", MINI),
    ]


def test_setting_defaults_apply_only_where_the_model_takes_them() -> None:
    grid = expand_grid(ImageRequest("a kite", MINI), {"model": ["dall-e-3", MINI]})
    grid.cells.append(expand_grid(ImageRequest("b", MINI, size="auto"), {}).cells[0])
    for cell in grid.cells:
        cell.request = cell.request.with_session_defaults(Settings(size="1536x1024"))
    dalle, mini, explicit = (c.request.fields.get("size") for c in grid.cells)
    assert dalle is None  # dall-e-3 cannot take 1536x1024: the default is skipped
    assert mini == "1536x1024"
    assert explicit == "auto"  # a value the cell names wins


def test_cell_label_clips_long_values() -> None:
    grid = grid_of("p" * 100, "short")
    label = cell_label(grid.cells[0], limit=10)
    assert label == "prompt=ppppppppp…"


# --- validation ------------------------------------------------------------------------------


def test_validate_grid_names_the_invalid_cells() -> None:
    grid = expand_grid(
        ImageRequest("a kite", MINI), {"model": ["dall-e-3", MINI], "size": ["1536x1024", "auto"]}
    )
    with pytest.raises(ValidationError) as info:
        validate_grid(grid)
    text = str(info.value)
    assert text.startswith("2 of 4 requests are invalid")
    assert "[model=dall-e-3, size=1536x1024]" in text and "[model=dall-e-3, size=auto]" in text
    assert text.endswith("Nothing was sent.")
    assert info.value.field == "size"


def test_validate_grid_lists_a_few_and_counts_the_rest() -> None:
    grid = expand_grid(ImageRequest("a kite", "dall-e-3", n=3), {"size": ["a", "b", "c", "d"]})
    with pytest.raises(ValidationError, match="and 1 more"):
        validate_grid(grid)


def test_a_single_invalid_request_keeps_its_own_message() -> None:
    grid = expand_grid(ImageRequest("a kite", "dall-e-3", n=2), {})
    with pytest.raises(ValidationError) as info:
        validate_grid(grid)
    assert str(info.value).startswith("dall-e-3") and "n=2" in str(info.value)


def test_validate_grid_passes_valid_grids() -> None:
    validate_grid(grid_of("a", "b"))


# --- progress text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (ClientEvent("waiting", 2, 2.0, "HTTP 429"), "waiting 2 s after HTTP 429"),
        (ClientEvent("waiting", 2, 0.25, None), "waiting 0.2 s"),
        (ClientEvent("sending"), "sending"),
        (ClientEvent("sending", attempt=3), "retrying (attempt 3)"),
        (ClientEvent("partial", partial_index=1), "partial image 2 received"),
        (ClientEvent("received"), "decoding the image"),
        (ClientEvent("downloading"), "downloading the image"),
        (ClientEvent("storing"), "saving to history"),
    ],
)
def test_describe_event(event: ClientEvent, text: str) -> None:
    assert describe_event(event) == text


def test_progress_text_shows_elapsed_seconds_and_the_latest_event() -> None:
    progress = CellProgress(state="running", started=100.0, note="waiting 2 s after HTTP 429")
    assert progress.text(now=103.4) == "3 s · waiting 2 s after HTTP 429"
    assert CellProgress(state="failed").text() == "failed"
    assert CellProgress(state="done").finished and not CellProgress().finished


# --- running ---------------------------------------------------------------------------------


def test_run_grid_fills_every_cell_and_reports_on_the_calling_thread(
    aclient: AsyncClient, sim: SimServer, hist: History
) -> None:
    grid = grid_of("a fox", "an owl", "an elk")
    threads: set[int] = set()
    seen: list[list[str]] = []

    def on_update(progress: Sequence[CellProgress]) -> None:
        threads.add(threading.get_ident())
        seen.append([p.state for p in progress])

    result = run_grid(aclient, grid, 2, on_update, tags=("t1",), origin="test")
    assert result is grid
    assert [g.prompt for g in grid.generations] == ["a fox", "an owl", "an elk"]
    assert all(g.ok and g.images[0].path.exists() for g in grid.generations)  # type: ignore[union-attr]
    assert threads == {threading.get_ident()}
    assert seen[-1] == ["done", "done", "done"]
    assert sim.request_count == 3
    assert [list(r.tags) for r in hist] == [["t1"]] * 3


def test_concurrency_is_bounded(aclient: AsyncClient, sim: SimServer) -> None:
    sim.latency = 0.3
    run_grid(aclient, grid_of("a", "b", "c", "d", "e"), 2)
    spans = sim.spans
    assert len(spans) == 5
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap <= 2


class StoringClient:
    """An AsyncRunner whose responses arrive at once and whose storing waits for a gate."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.stored = asyncio.Event()

    async def send_checked(self, request: ImageRequest, **kwargs: Any) -> Generation:
        self.sent.append(request.prompt)
        kwargs["on_event"](ClientEvent("received"))
        kwargs["on_event"](ClientEvent("storing"))
        if len(self.sent) == 1:
            await asyncio.wait_for(self.stored.wait(), 5)  # the next cell must start meanwhile
        else:
            self.stored.set()
        return Generation(request=request.to_body(), status="ok")


def test_a_cell_frees_its_slot_once_its_response_is_read() -> None:
    client = StoringClient()
    grid = run_grid(client, grid_of("a", "b"), 1)
    assert client.sent == ["a", "b"]
    assert [g.status for g in grid.generations] == ["ok", "ok"]


class BrokenClient:
    """An AsyncRunner with a bug: it raises the builtin TimeoutError (not a CometError)."""

    async def send_checked(self, request: ImageRequest, **kwargs: Any) -> Generation:
        raise TimeoutError("a bug in the client")


def test_a_timeout_error_from_the_job_is_raised_not_taken_for_a_poll() -> None:
    # concurrent.futures.TimeoutError is the builtin TimeoutError: waiting with
    # future.result(timeout=...) mistook the job's own error for "not done yet" and spun.
    with pytest.raises(TimeoutError, match="a bug in the client"):
        run_grid(BrokenClient(), grid_of("a", "b"), 1, poll_s=0.01)


def test_a_failed_cell_does_not_stop_the_others(aclient: AsyncClient, sim: SimServer) -> None:
    sim.fault("500")
    grid = run_grid(aclient, grid_of("a", "b", "c"), 1)
    statuses = [g.status for g in grid.generations]
    assert statuses == ["error", "ok", "ok"]
    error = grid.generations[0].error
    assert error is not None and "500" in str(error)
    assert sim.request_count == 3  # the billed 500 was not retried


def test_waiting_after_429_is_reported(aclient: AsyncClient, sim: SimServer) -> None:
    sim.fault("429", retry_after=1)
    notes: list[str | None] = []
    run_grid(aclient, grid_of("a"), 1, lambda progress: notes.append(progress[0].note))
    assert "waiting 1 s after HTTP 429" in notes
    assert sim.request_count == 2


def test_partial_images_reach_the_progress(aclient: AsyncClient, sim: SimServer) -> None:
    grid = grid_of("a", stream=True, partial_images=2)
    partials: list[int | None] = []

    def on_update(progress: Sequence[CellProgress]) -> None:
        if progress[0].partial is not None:
            partials.append(progress[0].partial_index)

    sim.latency = 0.3
    run_grid(aclient, grid, 1, on_update)
    assert grid.generations[0].ok
    assert partials and partials[-1] is not None


def test_interrupt_cancels_in_flight_requests(
    aclient: AsyncClient, sim: SimServer, hist: History
) -> None:
    """A KeyboardInterrupt while waiting (as Ctrl-C delivers it) cancels every request."""
    sim.fault("hang", times=3, seconds=30)
    calls = 0

    def on_update(progress: Sequence[CellProgress]) -> None:
        nonlocal calls
        calls += 1
        if calls > 0 and sim.request_count >= 2:  # both first requests in flight: "Ctrl-C"
            calls = -1_000_000  # only once
            raise KeyboardInterrupt

    grid = grid_of("a", "b", "c")
    with pytest.raises(CancelledError) as info:
        run_grid(aclient, grid, 2, on_update)
    assert "interrupted: 3 of 3 requests cancelled" in str(info.value)
    assert [c.generation.status for c in grid.cells] == ["cancelled"] * 3  # type: ignore[union-attr]
    assert sim.request_count == 2  # the queued third never started
    assert sorted(r.status for r in hist) == ["cancelled", "cancelled"]
    sent = [c.generation.error.sent for c in grid.cells]  # type: ignore[union-attr]
    assert sent == [True, True, False]  # two were in flight (may be billed), one never left
    assert "1 cancelled before sending (nothing billed)" in str(info.value)
    assert "2 cancelled after sending (may be billed)" in str(info.value)


def test_a_broken_progress_display_does_not_lose_results(
    aclient: AsyncClient, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    sim.latency = 0.3
    calls = 0

    def broken(progress: Sequence[CellProgress]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("render bug")

    grid = run_grid(aclient, grid_of("a", "b"), 2, broken)
    assert all(g.ok for g in grid.generations) and len(grid.generations) == 2
    assert calls == 2  # given up after the first failure (plus the final update)
    assert "progress display failed" in caplog.text


def test_core_runner_loads_no_frontend() -> None:
    import json
    import subprocess
    import sys

    code = "import sys, json, cometnb._client.runner; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & {"IPython", "ipywidgets", "ipykernel"}


def test_interrupting_one_request_says_it_may_be_billed(
    aclient: AsyncClient, sim: SimServer
) -> None:
    sim.fault("hang", seconds=30)

    def press_ctrl_c(progress: Sequence[CellProgress]) -> None:
        if sim.request_count == 1 and progress[0].state == "running":
            raise KeyboardInterrupt

    grid = grid_of("a")
    with pytest.raises(CancelledError) as info:
        run_grid(aclient, grid, 1, press_ctrl_c)
    assert str(info.value).startswith("interrupted: the request was cancelled.")
    assert "billed" in str(info.value)
    assert grid.generations[0].status == "cancelled"


# --- the one runner (issue 22, point 3) --------------------------------------------------------


class CountingHooks:
    """Hooks for a run of priced requests (several models and qualities, long and short
    prompts) that answer after a short wait and cost their estimate; they count what the runner
    did with each item (and how many were in flight at once)."""

    def __init__(self, count: int, *, hang: bool = False) -> None:
        from cometnb._core.prices import estimate

        models = ("gpt-image-2", MINI, "gpt-image-2", "gpt-image-1")
        qualities = ("low", "medium", "high")
        self.requests = [
            ImageRequest(
                f"item {i}: " + "a long, detailed prompt " * (i % 7),
                models[i % 4],
                quality=qualities[i % 3],
            )
            for i in range(count)
        ]
        self.costs = [estimate(r) for r in self.requests]
        self.hang = hang
        self.in_flight = self.most = 0
        self.patient: set[bool] = set()
        self.refused_items: list[int] = []
        self.started_items: list[int] = []
        self.cancelled_items: dict[int, bool] = {}
        self.finished_items: dict[int, Generation] = {}

    # The RunHooks interface, by duck typing (RunHooks' defaults are tested through the grid).
    def request(self, item: int) -> ImageRequest:
        return self.requests[item]

    def hold(self, item: int) -> bool:
        return False

    def refused(self, item: int, error: Exception) -> None:
        self.refused_items.append(item)

    def started(self, item: int) -> None:
        self.started_items.append(item)

    def event(self, item: int, event: ClientEvent) -> None:
        pass

    async def send(self, item: int, on_event: Any, patient: bool) -> Generation:
        self.patient.add(patient)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            on_event(ClientEvent("sending", attempt=1))
            await asyncio.sleep(3600 if self.hang else 0.001 * (item % 3))
            on_event(ClientEvent("received"))
        finally:
            self.in_flight -= 1
        body = self.requests[item].to_body()
        return Generation(request=body, status="ok", _cost=self.costs[item])

    def cancelled(self, item: int, sent: bool) -> None:
        self.cancelled_items[item] = sent

    def finished(self, item: int, gen: Generation) -> None:
        assert item not in self.finished_items
        self.finished_items[item] = gen


def test_one_run_bounds_concurrency_admits_each_request_and_settles_the_budget() -> None:
    from cometnb._client.loop import loop_thread
    from cometnb._client.runner import Run
    from cometnb._core.budget import BudgetLimits, Ledger, SpendGuard

    hooks = CountingHooks(240)
    costs = [c.usd or 0.0 for c in hooks.costs]
    assert len(set(costs)) > 3 and all(costs)
    ledger = Ledger()
    guard = SpendGuard(BudgetLimits(cell_budget=5.0), ledger=ledger)
    loop_thread().run(Run(range(240), hooks, 6, guard).run())  # type: ignore[arg-type]
    assert hooks.most == 6  # the limit was reached, never passed
    assert hooks.patient == {True}  # a run of several waits out rate-limit 429s
    sent = sorted(hooks.finished_items)
    assert sent == sorted(hooks.started_items)
    assert set(sent).isdisjoint(hooks.refused_items)
    assert len(sent) + len(hooks.refused_items) == 240
    assert hooks.refused_items and sent  # the budget stopped the rest, not the first ones
    spent = sum(costs[i] for i in sent)
    assert guard.spent == pytest.approx(spent) and spent <= 5.0 + 1e-9
    assert guard.skipped == len(hooks.refused_items)
    assert ledger.reserved == 0  # every admission settled


def test_a_lone_request_is_not_a_patient_run() -> None:
    from cometnb._client.loop import loop_thread
    from cometnb._client.runner import Run

    hooks = CountingHooks(1)
    loop_thread().run(Run((0,), hooks, 4).run())  # type: ignore[arg-type]
    assert hooks.patient == {False}  # keeps the max_retries bound
    assert list(hooks.finished_items) == [0]


def test_ctrl_c_cancels_a_run_and_gives_back_every_reservation() -> None:
    from cometnb._client.runner import Run, drive
    from cometnb._core.budget import BudgetLimits, Ledger, SpendGuard

    hooks = CountingHooks(30, hang=True)
    ledger = Ledger()
    guard = SpendGuard(BudgetLimits(session_budget=100.0), ledger=ledger)
    run = Run(range(30), hooks, 4, guard)

    def press_ctrl_c() -> None:
        if hooks.in_flight == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(run, press_ctrl_c, poll_s=0.01)  # type: ignore[arg-type]
    assert run.settled.is_set()  # every task recorded itself within the grace
    assert hooks.cancelled_items == {i: True for i in hooks.started_items}  # all had left
    assert len(hooks.cancelled_items) == 4 and not hooks.finished_items
    assert ledger.reserved == 0  # nothing in flight keeps a reservation
    # A cancelled request that had left is charged at its estimate: it may be billed.
    charged = sum(hooks.costs[i].usd or 0.0 for i in hooks.cancelled_items)
    assert guard.spent == pytest.approx(charged)


def test_no_context_variable_carries_a_runs_state() -> None:
    """Run state travels as arguments (the runner's ``patient``, its guard), not through
    context variables a task might inherit or lose."""
    from pathlib import Path

    import cometnb

    root = Path(cometnb.__file__).parent
    for path in (root / "_client").glob("*.py"):
        assert "ContextVar" not in path.read_text(encoding="utf-8"), path.name
    assert "ContextVar" not in (root / "_core" / "budget.py").read_text(encoding="utf-8")


@pytest.mark.timeout(120)
def test_a_grid_and_a_batch_at_a_busy_account_fail_nothing(tmp_path: Any) -> None:
    """With max_retries=0, only the run's patience lets a rate-limit 429 be retried: a grid
    and a batch (not only generate_many) both get it from the runner."""
    from cometnb._client.batch_run import batch
    from cometnb._client.client import AsyncClient, Client
    from cometnb._client.loop import loop_thread
    from cometnb.history import History
    from cometnb.sim import SimServer

    prompts = [f"a paper lantern, variant {i}" for i in range(6)]
    with SimServer(latency=0.05, rpm=120, burst=2) as sim:
        aclient = AsyncClient(
            api_key=FAKE_KEY,
            base_url=sim.base_url,
            history=History(tmp_path / "g"),
            max_retries=0,
        )
        try:
            grid = run_grid(aclient, grid_of(*prompts), 6)
        finally:
            loop_thread().submit(aclient.aclose()).result(timeout=5)
        with Client(
            api_key=FAKE_KEY,
            base_url=sim.base_url,
            history=History(tmp_path / "b"),
            max_retries=0,
        ) as client:
            result = batch(
                prompts, name="lanterns", client=client, concurrency=6, progress=False, model=MINI
            )
        limited = len(sim.rate_limited)
    assert [g.status for g in grid.generations] == ["ok"] * 6
    assert len(result.done) == 6 and not result.failed and not result.uncertain
    assert limited > 0  # the account really was busy
