"""The plain engine behind ``%%cometimg``: cell spec → grid → validate → run → show → result,
with the cell's side of spend.

The ``CometImg`` magics class only parses options and holds one :class:`CellEngine`; the engine
holds no configuration (it reads :func:`cometnb._core.settings.active` on every cell) and no
module-level state, so tests drive it through a real ``InteractiveShell``.

The ``%%cometimg`` side of spend: check a cell's estimate before it sends anything, guard the
run, and say afterwards what the budget stopped; ``--dry-run``'s estimate lines.

Settings: ``CometImg.budget`` (USD this session), ``CometImg.confirm_above`` (USD per cell);
cell options: ``--budget USD`` and ``--yes``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cometnb._client.exchange import KEY_HINT
from cometnb._client.lookups import explain_missing_model, read_once
from cometnb._client.runner import expand_grid, run_grid, validate_grid
from cometnb._core import settings as _settings
from cometnb._core.budget import SpendGuard, confirm_above, guard_requests, session_budget
from cometnb._core.errors import AuthenticationError, CancelledError, CometError, ValidationError
from cometnb._core.generations import Generation, Grid
from cometnb._core.prices import Cost, active_table, estimate_all, format_spend
from cometnb._core.protocols import CellView
from cometnb._core.session import current
from cometnb._core.validation import check_no_key
from cometnb._notebook.cell_options import CellSpec
from cometnb._notebook.cell_views import LiveView, NullView, TextView, dry_run_text

__all__ = [
    "NO_KEY_HINT",
    "CellClient",
    "CellEngine",
    "check_requests",
    "dry_run_costs",
    "skipped_note",
]


if TYPE_CHECKING:
    from cometnb._client.batch import Batch
    from cometnb._core.protocols import AsyncRunner
    from cometnb._core.secret import Secret
    from cometnb._storage.folder import History


# Outside the demo a newcomer has no key yet: say how to try everything offline first.
NO_KEY_HINT = (
    KEY_HINT.rstrip(".") + ", or try it offline first with %cometimg_sim "
    "(synthetic images from a local simulator, nothing billed)."
)
ORIGIN = "magic"

ClientFactory = Callable[["History", "Secret"], "AsyncRunner"]


def _default_client(history: History, key: Secret) -> AsyncRunner:
    from cometnb._client.client import AsyncClient

    settings = _settings.active()
    return AsyncClient(
        api_key=key, timeout=settings.timeout, max_retries=settings.max_retries, history=history
    )


class CellEngine:
    """Runs ``%%cometimg`` cells for one shell.

    ``rich`` chooses live HTML views (``None``: yes inside a kernel, text in a terminal).

    Example::

        >>> engine = CellEngine(get_ipython())  # doctest: +SKIP
        >>> engine.run(spec)  # doctest: +SKIP
        <Generation gpt-image-2 1 image(s) in 41.2s record=...>
    """

    def __init__(
        self,
        shell: Any,
        *,
        rich: bool | None = None,
        client_factory: ClientFactory = _default_client,
    ) -> None:
        self.shell = shell
        self.rich = rich
        self.client_factory = client_factory
        # Results already shown by the cell's live view, held until the cell ends so IPython's
        # displayhook can be told not to show them a second time.
        self._shown: dict[int, object] = {}

    # --- entry point -------------------------------------------------------------------------

    def run(self, spec: CellSpec) -> Generation | Grid | Batch | None:
        """Run one cell; returns what the cell evaluates to (``None`` for a dry run)."""
        grid = expand_grid(spec.base, spec.axes)
        for cell in grid.cells:  # per cell: whether a default applies depends on the model
            cell.request = cell.request.with_session_defaults()
        # The key is looked up once per cell (session, .env, Colab, environment) and handed to
        # the client, so a grid fails once, before any request, and no request looks it up again.
        # Where it is resolved, no request may carry it (a dry run's output neither).
        key = _settings.resolve_key()
        for cell in grid.cells:
            check_no_key({"prompt": cell.request.prompt, **cell.request.fields}, key)
        if spec.dry_run:
            self._dry_run(spec, grid)
            return None
        validate_grid(grid, key=key)  # the key resolved above: no request looks it up again
        _warn_model_typos(grid.cells)
        if key is None:
            raise AuthenticationError("No CometAPI key is configured.", hint=NO_KEY_HINT)
        history = _writable_history()
        read_once()  # the account's balance, once a session, for the budget check below
        if spec.batch is not None:  # checks what it will send, not the items already done
            return self._batch(spec, grid, history, key)
        # The whole cell's estimate against the budgets, before the first request.
        requests = [cell.request for cell in grid.cells]
        guard = check_requests(requests, budget=spec.budget, yes=spec.yes)
        view = self._view(spec, grid)
        result = self._execute(spec, grid, view, history, key, guard)
        if spec.out:
            self.shell.user_ns[spec.out] = result
        if view.shows_result:
            self._suppress_display(result)
        return result

    def _batch(self, spec: CellSpec, grid: Grid, history: History, key: Secret) -> Batch:
        """``--batch NAME``: the cell's requests as a resumable batch with a progress bar."""
        from cometnb._client.batch_run import run_batch
        from cometnb._client.client import Client

        settings = _settings.active()
        client = Client(
            api_key=key, timeout=settings.timeout, max_retries=settings.max_retries, history=history
        )
        requests = [cell.request for cell in grid.cells]
        try:
            result = run_batch(
                requests,
                name=spec.batch or "",
                client=client,
                progress=spec.display,
                check=lambda todo: check_requests(todo, budget=spec.budget, yes=spec.yes),
                defaults={"tags": spec.tags},
            )
        finally:
            client.close()
        if spec.out:
            self.shell.user_ns[spec.out] = result
        return result

    def _execute(
        self,
        spec: CellSpec,
        grid: Grid,
        view: CellView,
        history: History,
        key: Secret,
        guard: SpendGuard | None = None,
    ) -> Generation | Grid:
        settings = _settings.active()
        client = self._client(history, key, settings)
        try:
            run_grid(
                client,
                grid,
                settings.concurrency,
                view.update,
                tags=spec.tags,
                origin=ORIGIN,
                guard=guard,
                key=key,  # validated above, the history checked: once per cell
            )
        except CancelledError:
            self._show_partial_result(spec, grid, view)
            raise
        if not spec.is_grid:
            return self._single_result(grid, view)
        result = self._grid_result(grid, view)
        note = skipped_note(grid, guard)
        if note:
            print(note)
        return result

    def _client(self, history: History, key: Secret, settings: _settings.Settings) -> AsyncRunner:
        """The client cells share while what it was made from holds (the key, the history, the
        settings it reads): one connection pool, and a pacer that remembers the account's rate
        limit from one cell to the next."""
        made_from = (
            self.client_factory,
            key,
            history,
            settings.timeout,
            settings.connect_timeout,
            settings.max_retries,
            settings.limits,
            _settings.resolve_base_url(),
        )
        cells = current().part(CellClient)
        return cells.get(made_from, lambda: self.client_factory(history, key))

    def _single_result(self, grid: Grid, view: CellView) -> Generation:
        gen = grid.cells[0].generation
        assert gen is not None
        if gen.error is not None:
            view.clear()
            explain_missing_model(gen.error, str(gen.request.get("model", "")))
            raise gen.error
        view.finish(gen)
        return gen

    def _grid_result(self, grid: Grid, view: CellView) -> Grid:
        failed = [g for g in grid.generations if not g.ok]
        explained: set[str] = set()
        for gen in failed:  # one GET /v1/models per missing model, not per cell
            model = str(gen.request.get("model", ""))
            known = model in explained
            if gen.error is not None and not known and explain_missing_model(gen.error, model):
                explained.add(model)
        view.finish(grid)
        if failed and len(failed) == len(grid.cells):
            raise _all_failed(failed[0].error, len(grid.cells))
        return grid

    def _show_partial_result(self, spec: CellSpec, grid: Grid, view: CellView) -> None:
        if spec.is_grid:
            view.finish(grid)
        else:
            view.clear()

    # --- dry run -----------------------------------------------------------------------------

    def _dry_run(self, spec: CellSpec, grid: Grid) -> None:
        problems: dict[int, str] = {}
        for i, cell in enumerate(grid.cells):
            try:
                cell.request.validate()
            except ValidationError as exc:
                problems[i] = exc.message
        if spec.display:
            print(dry_run_text(grid, _settings.generations_url(), problems))
            print(dry_run_costs([c.request for c in grid.cells]))
        if spec.out:
            self.shell.user_ns[spec.out] = [c.request.to_body() for c in grid.cells]
        if problems:
            validate_grid(grid)  # raises the usual short message naming the cells

    # --- display -----------------------------------------------------------------------------

    def _view(self, spec: CellSpec, grid: Grid) -> CellView:
        if not spec.display:
            return NullView()
        if not self._is_rich():
            return TextView(grid)
        from IPython.display import display

        return LiveView(grid, display, thumbnail_px=_settings.active().thumbnail_px)

    def _is_rich(self) -> bool:
        if self.rich is not None:
            return self.rich
        return getattr(self.shell, "kernel", None) is not None

    def _suppress_display(self, result: object) -> None:
        """Make IPython's displayhook skip ``result`` once (it is already on screen).

        A per-object printer in the ``_ipython_display_`` formatter wins over every mime
        formatter and does nothing; ``_`` and ``Out`` still get the object.
        """
        printers = self._display_printers()
        if printers is None:
            return
        self._shown[id(result)] = result
        printers[id(result)] = _show_nothing

    def forget_shown(self, *_args: Any) -> None:
        """After each cell (``post_run_cell``): displaying those objects works normally again."""
        printers = self._display_printers()
        for key in list(self._shown):
            if printers is not None and printers.get(key) is _show_nothing:
                del printers[key]
            del self._shown[key]

    def _display_printers(self) -> dict[int, Any] | None:
        formatter = getattr(self.shell, "display_formatter", None)
        hook = getattr(formatter, "ipython_display_formatter", None)
        printers = getattr(hook, "singleton_printers", None)
        return printers if isinstance(printers, dict) else None


def _writable_history() -> History:
    """The active history, opened once per cell on the kernel's thread (not by every request
    of a grid); the cell is refused, once and before any request, when it cannot hold images."""
    from cometnb._storage.folder import history

    found = history()
    found.check_writable()
    return found


def _show_nothing(obj: object) -> None:
    """The printer that makes IPython's displayhook show nothing for an object."""


def _all_failed(error: CometError | None, count: int) -> CometError:
    """The error a grid raises when every cell failed: the first cell's, same class."""
    if error is None:
        return CometError(f"all {count} requests failed")
    keys = ("status", "code", "param", "type", "request_id", "body", "field")
    kwargs = {k: getattr(error, k) for k in keys if k in vars(error)}
    try:
        return type(error)(
            f"all {count} requests failed; the first: {error.message}",
            hint=error.hint,
            **kwargs,
        )
    except TypeError:  # a subclass with another signature: raise it as it is
        return error


class CellClient:
    """The session's client for ``%%cometimg`` cells (a session part): kept across cells and
    made again when what it was made from changes; closed, on the loop thread, when the
    session stops (before its loop thread: this part is made after it)."""

    def __init__(self) -> None:
        from cometnb._client.loop import loop_thread

        self._loop = loop_thread()  # the session's loop part exists first, so it stops last
        self._client: AsyncRunner | None = None
        self._made_from: tuple[object, ...] = ()

    def get(self, made_from: tuple[object, ...], make: Callable[[], AsyncRunner]) -> AsyncRunner:
        if self._client is None or made_from != self._made_from:
            self.stop()
            self._client, self._made_from = make(), made_from
        return self._client

    def stop(self, timeout: float = 5.0) -> None:
        """Close the client's connections on the loop thread they were opened on."""
        client, self._client = self._client, None
        aclose = getattr(client, "aclose", None)
        if aclose is None:
            return
        # Best effort: every result is already stored.
        with contextlib.suppress(Exception):
            self._loop.submit(aclose()).result(timeout=timeout)


def _warn_model_typos(cells: Iterable[Any]) -> None:
    """One line per unknown model that is nearly a known one (it would come back a 404), or
    that cometnb gives a family's rules (assumed)."""
    from cometnb._core.model_registry import CAPABILITIES, KNOWN_MODELS, assumed_note
    from cometnb._core.text import model_typo_warning

    for model in dict.fromkeys(str(c.request.model) for c in cells):
        if model in CAPABILITIES:
            continue
        warning = assumed_note(model) or model_typo_warning(model, KNOWN_MODELS)
        if warning:
            print(warning, file=sys.stderr, flush=True)


def check_requests(
    requests: Sequence[Any], *, budget: float | None, yes: bool
) -> SpendGuard | None:
    """Check a cell's requests before the first is sent (a ``--batch`` cell checks what it
    will send: the items an earlier run did not finish); returns the run's guard (``None``
    when no budget is set). Raises :class:`~cometnb._core.errors.BudgetError` to refuse them."""
    return guard_requests(
        requests,
        session_budget=session_budget(),
        cell_budget=budget,
        confirm_above=confirm_above(),
        yes=yes,
    )


def skipped_note(grid: Grid, guard: SpendGuard | None) -> str | None:
    """``Budget reached: 3 of 9 requests were not sent…`` when the guard stopped some."""
    if guard is None or not guard.skipped:
        return None
    total = len(grid.cells)
    made = sum(len(g.images) for g in grid.generations if g.ok)
    kept = f"the {made} image{'s' if made != 1 else ''} already made are kept"
    left = guard.left() or 0.0
    return (
        f"Budget reached: {guard.skipped} of {total} requests were not sent ({kept}; "
        f"{format_spend(left, exact_below_cent=True)} left). {guard.raise_hint} to send the rest."
    )


def dry_run_costs(requests: Sequence[Any]) -> str:
    """One line per request with its estimate, then the total, for ``--dry-run``."""
    table = active_table()
    estimates = estimate_all(requests, table)
    width = len(str(len(estimates)))
    lines = [
        f"  [{i:>{width}}] {cost.label:<14} {cost.basis}" for i, cost in enumerate(estimates, 1)
    ]
    total = Cost.total(estimates)
    unknown = sum(1 for c in estimates if c.usd is None)
    known = Cost.total(c for c in estimates if c.usd is not None)
    summary = total.label if not unknown else f"{known.label} + {unknown} of unknown cost"
    head = f"Estimated cost ({table.label} prices):"
    return "\n".join([head, *lines, f"  total: {summary} for {len(estimates)} request(s)"])


def generation_cost(gen: Generation) -> Cost | None:
    """A finished generation's cost for the guard (``None`` when it has none to say)."""
    cost = getattr(gen, "cost", None)
    return cost if isinstance(cost, Cost) else None
