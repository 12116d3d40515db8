"""The plain engine behind ``%%cometimg``: cell spec → grid → validate → run → show → result.

The ``CometImg`` magics class only parses options and holds one :class:`CellEngine`; the engine
holds no configuration (it reads :func:`cometnb._core.settings.active` on every cell) and no
module-level state, so tests drive it through a real ``InteractiveShell``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cometnb._client.lookups import explain_missing_model
from cometnb._client.response import KEY_HINT
from cometnb._client.runner import expand_grid, run_grid, validate_grid
from cometnb._core import settings as _settings
from cometnb._core.errors import AuthenticationError, CancelledError, CometError, ValidationError
from cometnb._core.models import Generation, Grid
from cometnb._core.protocols import CellView
from cometnb._notebook.cell_views import LiveView, NullView, TextView, dry_run_text
from cometnb._notebook.magic_args import CellSpec
from cometnb._notebook.spend_check import check_cell, check_requests, dry_run_costs, skipped_note

if TYPE_CHECKING:
    from cometnb._client.batch import Batch
    from cometnb._core.budget import SpendGuard
    from cometnb._core.protocols import AsyncRunner
    from cometnb._storage.folder import History

__all__ = ["NO_KEY_HINT", "CellEngine"]

# Outside the demo a newcomer has no key yet: say how to try everything offline first.
NO_KEY_HINT = (
    KEY_HINT.rstrip(".") + ", or try it offline first with %cometimg_sim "
    "(synthetic images from a local simulator, nothing billed)."
)
ORIGIN = "magic"

ClientFactory = Callable[["History"], "AsyncRunner"]


def _default_client(history: History) -> AsyncRunner:
    from cometnb._client.async_client import AsyncClient

    settings = _settings.active()
    return AsyncClient(timeout=settings.timeout, max_retries=settings.max_retries, history=history)


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
        if spec.dry_run:
            self._dry_run(spec, grid)
            return None
        validate_grid(grid)
        _warn_model_typos(grid.cells)
        if _settings.resolve_api_key() is None:
            # Checked here too so a grid fails once, before any request, not once per cell.
            raise AuthenticationError("No CometAPI key is configured.", hint=NO_KEY_HINT)
        history = _writable_history()
        if spec.batch is not None:  # checks what it will send, not the items already done
            return self._batch(spec, grid, history)
        # The whole cell's estimate against the budgets, before the first request.
        guard = check_cell(grid, budget=spec.budget, yes=spec.yes)
        view = self._view(spec, grid)
        result = self._execute(spec, grid, view, history, guard)
        if spec.out:
            self.shell.user_ns[spec.out] = result
        if view.shows_result:
            self._suppress_display(result)
        return result

    def _batch(self, spec: CellSpec, grid: Grid, history: History) -> Batch:
        """``--batch NAME``: the cell's requests as a resumable batch with a progress bar."""
        from cometnb._client.batch_run import run_batch
        from cometnb._client.sync_client import Client

        settings = _settings.active()
        client = Client(timeout=settings.timeout, max_retries=settings.max_retries, history=history)
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
        guard: SpendGuard | None = None,
    ) -> Generation | Grid:
        settings = _settings.active()
        client = self.client_factory(history)
        try:
            run_grid(
                client,
                grid,
                settings.concurrency,
                view.update,
                tags=spec.tags,
                origin=ORIGIN,
                guard=guard,
            )
        except CancelledError:
            self._show_partial_result(spec, grid, view)
            raise
        finally:
            _close(client)
        if not spec.is_grid:
            return self._single_result(grid, view)
        result = self._grid_result(grid, view)
        note = skipped_note(grid, guard)
        if note:
            print(note)
        return result

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


def _close(client: object) -> None:
    """Close the client's connections on the loop thread they were opened on."""
    aclose = getattr(client, "aclose", None)
    if aclose is None:
        return
    from cometnb._client.loop import loop_thread

    # Best effort: the results are already stored.
    with contextlib.suppress(Exception):
        loop_thread().submit(aclose()).result(timeout=5.0)


def _warn_model_typos(cells: Iterable[Any]) -> None:
    """One line per unknown model that is nearly a known one (it would come back a 404)."""
    from cometnb._core.capabilities import CAPABILITIES, KNOWN_MODELS
    from cometnb._core.suggest import model_typo_warning

    for model in dict.fromkeys(str(c.request.model) for c in cells):
        if model in CAPABILITIES:
            continue
        warning = model_typo_warning(model, KNOWN_MODELS)
        if warning:
            print(warning, file=sys.stderr, flush=True)
