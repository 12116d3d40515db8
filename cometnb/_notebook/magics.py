"""``%%cometimg`` and ``%cometimg_key``: the IPython front end.

``CometImg`` is a ``Magics`` *and* a ``Configurable``: its settings are traitlets tagged
``config=True`` (so ``%config CometImg.model = "dall-e-3"`` works and ``%config CometImg``
lists them), mirrored into :func:`cometnb._core.settings.active` so the core never imports IPython.
The class only parses options (:mod:`cometnb._notebook.cell_options`) and drives a plain
:class:`~cometnb._notebook.cell_engine.CellEngine`; there are no module-level singletons.
"""

from __future__ import annotations

import contextlib
import math
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core import magic as _ipython_magic
from IPython.core import magic_arguments as _ipython_magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class, no_var_expand
from traitlets import Float, Int, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from cometnb._core import settings as _settings
from cometnb._core.budget import BUDGET_MEANING, budget_note
from cometnb._core.errors import redact
from cometnb._core.generations import Generation, Grid
from cometnb._core.session import current
from cometnb._core.settings import Settings
from cometnb._notebook.cell_engine import CellEngine
from cometnb._notebook.cell_options import (
    build_spec,
    edit_fields,
    expand_option_braces,
    parse_with_hints,
    plain_help,
)
from cometnb._notebook.key_prompt import ask_for_key

if TYPE_CHECKING:
    from cometnb._client.batch import Batch

__all__ = ["CometImg", "load_ipython_extension", "unload_ipython_extension"]

# Traits copied into _settings.active(); the key is deliberately not among them.
SETTING_NAMES = (
    "model",
    "size",
    "quality",
    "concurrency",
    "timeout",
    "max_retries",
    "thumbnail_px",
    "history_dir",
    "base_url",
    "budget",
    "confirm_above",
    "prices_file",
    "balance_url",
)
_OPTIONAL_TEXT = ("size", "quality", "history_dir", "base_url", "prices_file", "balance_url")

_F = TypeVar("_F", bound=Callable[..., Any])
# IPython's decorators are untyped (or typed as unions); these typed views keep mypy strict.
_MAGIC: Any = _ipython_magic
_ARGS: Any = _ipython_magic_arguments


def cell_magic(name: str) -> Callable[[_F], _F]:
    return _MAGIC.cell_magic(name)  # type: ignore[no-any-return]


def line_magic(name: str) -> Callable[[_F], _F]:
    return _MAGIC.line_magic(name)  # type: ignore[no-any-return]


def magic_arguments() -> Callable[[_F], _F]:
    return _ARGS.magic_arguments()  # type: ignore[no-any-return]


def argument(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    return _ARGS.argument(*args, **kwargs)  # type: ignore[no-any-return]


def parse_argstring(magic: Callable[..., Any], line: str) -> Any:
    """The magic's options, split the POSIX way: ``--tag "two words"`` is one value without
    its quotes, and ``--param user="ann smith"`` stays whole (IPython's default split keeps
    the quotes and cuts at the space). A mistyped option gains "Did you mean …?"."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # shlex: "No closing quotation"
        raise UsageError(f"the options have an unmatched quote ({exc})") from None
    return parse_with_hints(magic, line, argv)


@magics_class
class CometImg(Magics, Configurable):
    """Generate images from a notebook cell.

    Example::

        %load_ext cometnb
        %config CometImg.model = "gpt-image-2.6-flare"

        %%cometimg -s 1024x1024,1536x1024 -q low,high -o shots
        a lighthouse at dusk, {style}
    """

    model = Unicode(_settings.DEFAULT_MODEL, help="Model used when a cell gives no -m.").tag(
        config=True
    )
    size = Unicode(None, allow_none=True, help="Default size (WxH or auto).").tag(config=True)
    quality = Unicode(None, allow_none=True, help="Default quality.").tag(config=True)
    concurrency = Int(4, help="Requests of a grid in flight at once.").tag(config=True)
    timeout = Float(600.0, help="Read timeout per request, in seconds.").tag(config=True)
    max_retries = Int(2, help="Retries of requests that were never billed.").tag(config=True)
    thumbnail_px = Int(512, help="Longest side of inline previews, in pixels.").tag(config=True)
    history_dir = Unicode(
        None, allow_none=True, help="History folder (default ./cometnb-history)."
    ).tag(config=True)
    base_url = Unicode(
        None, allow_none=True, help="API base URL (default https://api.cometapi.com/v1)."
    ).tag(config=True)
    budget = Float(None, allow_none=True, help=BUDGET_MEANING).tag(config=True)
    confirm_above = Float(
        None, allow_none=True, help="USD: a cell estimated above it is sent only with --yes."
    ).tag(config=True)
    prices_file = Unicode(
        None, allow_none=True, help="JSON price table laid over the built-in prices."
    ).tag(config=True)
    balance_url = Unicode(
        None,
        allow_none=True,
        help="CometAPI's quota endpoint for cometnb.balance() (default "
        "https://query.cometapi.com/user/quota; $COMETAPI_BALANCE_URL); the key goes in its "
        "query string, added only when sending.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # The magic holds the session it was loaded into (made here when nothing made it yet):
        # its traits mirror that session's settings, from the first config applied below.
        self.session = current()
        # Magics.__init__ appends self to shell.configurables and makes the shell the parent,
        # so %config and the shell's config files reach these traits.
        super().__init__(shell=shell, **kwargs)
        self.engine = CellEngine(shell)
        self.pull_settings()

    # --- settings ----------------------------------------------------------------------------

    @validate("concurrency", "thumbnail_px")
    def _at_least_one(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"CometImg.{proposal['trait'].name} must be at least 1")
        return value

    @validate("max_retries")
    def _not_negative(self, proposal: Any) -> int:
        if int(proposal["value"]) < 0:
            raise TraitError("CometImg.max_retries must be 0 or more")
        return int(proposal["value"])

    @validate("timeout")
    def _positive(self, proposal: Any) -> float:
        if float(proposal["value"]) <= 0:
            raise TraitError("CometImg.timeout must be positive")
        return float(proposal["value"])

    @validate("budget", "confirm_above")
    def _usd(self, proposal: Any) -> float | None:
        value = proposal["value"]
        # NaN compares false with everything, so "< 0" alone would let it (and inf) through.
        if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
            raise TraitError(
                f"CometImg.{proposal['trait'].name} must be an amount of USD, 0 or more "
                f"(or None for no cap); got {value}"
            )
        return None if value is None else float(value)

    @validate("prices_file")
    def _readable_prices(self, proposal: Any) -> str | None:
        value = proposal["value"]
        if value:
            from cometnb._core.errors import ValidationError
            from cometnb._core.prices import load_table

            try:
                load_table(value)  # refuse a bad file now, not at the next cell
            except ValidationError as exc:
                raise TraitError(exc.message) from None
        return value  # type: ignore[no-any-return]

    @observe(*SETTING_NAMES)
    def _mirror(self, change: Any) -> None:
        self._copy_setting(change["name"])

    def _copy_setting(self, name: str) -> None:
        value = getattr(self, name)
        if name in _OPTIONAL_TEXT and not value:
            value = None  # %config CometImg.size = "" means "no default"
        if name == "model" and not value:
            value = _settings.DEFAULT_MODEL
        setattr(self.settings, name, value)

    @property
    def settings(self) -> Settings:
        """The settings in force in the session this magic holds."""
        return self.session.part(Settings)

    def pull_settings(self) -> None:
        """Make the traits show ``_settings.active()``, the one source of truth.

        Code may change the active settings directly (``cometnb.sim.use_if_keyless`` points
        ``base_url`` at the simulator), so the traits are refreshed from them on load, before
        each cell and before ``%config`` applies a change, instead of overwriting them.
        """
        active = self.settings
        for name in SETTING_NAMES:
            value = getattr(active, name)
            if getattr(self, name) != value:
                with contextlib.suppress(TraitError):  # a value the trait refuses: keep the trait
                    setattr(self, name, value)

    def update_config(self, config: Any) -> None:
        """``%config CometImg.x = …``: compare against the active settings, then apply.

        A budget set below what this session already spent is explained at once, in one line.
        """
        self.pull_settings()
        before = self.budget
        super().update_config(config)
        if self.budget != before:
            note = budget_note(self.budget, just_set=True)
            if note is not None:
                print(f"Note: {note}")

    # --- magics ------------------------------------------------------------------------------

    @magic_arguments()
    @argument("-m", "--model", help="model, or a comma list for a grid (default CometImg.model)")
    @argument("-s", "--size", help="size (e.g. 1024x1024, auto), or a comma list")
    @argument(
        "-q",
        "--quality",
        help="quality (low, medium, high, xhigh, max, auto, standard, hd), or a list",
    )
    @argument("-n", type=int, help="number of images per request")
    @argument(
        "-f", "--format", help="output_format: png, jpeg, webp; gif, svg (2.6) (or a comma list)"
    )
    @argument("--compression", type=int, help="output_compression 0-100 (jpeg/webp)")
    @argument("--background", help="background: transparent, opaque, auto (or a comma list)")
    @argument("--style", help="style: vivid or natural (dall-e-3)")
    @argument("--response-format", help="response_format: url or b64_json (dall-e models)")
    @argument("--moderation", help="moderation: low or auto")
    @argument("--complexity", help="complexity: low, medium or high (gpt-image-2.6-*)")
    @argument("--frames", type=int, metavar="N", help="frame_count 2-16 (-f gif, 2.6)")
    @argument("--frame-ms", type=int, metavar="MS", help="frame_duration_ms, 20+ (-f gif, 2.6)")
    @argument("--partial", type=int, metavar="K", help="stream with K partial previews (0-3)")
    @argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="any other API field (repeatable); VALUE is parsed as JSON when it parses",
    )
    @argument(
        "--image",
        action="append",
        metavar="SRC",
        help="input image to edit (repeatable): a path, @ID, @ID:K, @-1 or {name}",
    )
    @argument("--mask", metavar="SRC", help="mask PNG with alpha (transparent = edit here)")
    @argument(
        "--markup",
        metavar="SRC",
        help="annotations (arrows, circles) on a transparent PNG the size of the first image "
        "(gpt-image-2.6; not with --mask)",
    )
    @argument("--fidelity", metavar="low|high", help="input_fidelity (gpt-image-1 / 1.5)")
    @argument("--each-line", action="store_true", help="every non-empty line is its own prompt")
    @argument(
        "--batch",
        metavar="NAME",
        help="run the requests as the resumable batch NAME: run the cell again to send only "
        "what is not done yet (see cometnb.batch)",
    )
    @argument("-o", "--out", metavar="NAME", help="bind the result to NAME in the namespace")
    @argument("--tag", action="append", help="tag the history records (repeatable)")
    @argument(
        "--dry-run",
        action="store_true",
        help="show the request JSON and its estimated cost; send nothing",
    )
    @argument("--budget", type=float, metavar="USD", help="refuse what would cost this cell more")
    @argument("--yes", action="store_true", help="send even above CometImg.confirm_above")
    @argument("--no-display", action="store_true", help="render nothing")
    @cell_magic("cometimg")
    @no_var_expand  # {name} in --image must reach us as a name, not as str(value)
    def cometimg(self, line: str, cell: str) -> Generation | Grid | Batch | None:
        """Generate images: the cell body is the prompt.

        ``{name}`` in the prompt is replaced by the value of ``name`` in the notebook's
        namespace (``{obj.attr}`` and ``{d[key]}`` work too); write ``{{`` and ``}}`` for
        literal braces. A comma list in -m/-s/-q/-f/--background, or --each-line, builds a
        grid: every combination runs (CometImg.concurrency at a time) and shows as one
        labelled comparison grid. Every request is validated before anything is sent.
        ``--image SRC`` (repeatable) edits images instead: SRC is a path, ``@ID``, ``@ID:K``,
        ``@-1`` or ``{name}`` (bytes, a PIL image, a Path, a Generation, a Record…);
        ``--mask SRC`` limits the edit, ``--markup SRC`` (2.6) adds annotations that guide it,
        ``--fidelity high`` keeps details (gpt-image-1 / 1.5).

        The whole cell is priced before its first request: it is refused when it would pass
        CometImg.budget (this session) or --budget (this cell), or cost more than
        CometImg.confirm_above without --yes; --dry-run shows each estimate and the total.

        Returns a Generation (one request) or a Grid (several), so ``_`` holds it. Images
        are saved in the history (CometImg.history_dir) before they are shown. The API key is
        never an option: set COMETAPI_KEY or run %cometimg_key.
        """
        args = parse_argstring(self.cometimg, line)
        self.pull_settings()
        shell: Any = self.shell
        try:
            expand_option_braces(args, shell.user_ns)
            inputs = edit_fields(args, shell.user_ns, None)  # None: @-1 uses the active history
            spec = build_spec(args, cell, shell.user_ns, self.settings, inputs)
        except UsageError as exc:
            # Options may have been filled in from variables ({secret}): quote none of the key.
            raise UsageError(_without_key(str(exc))) from None
        return self.engine.run(spec)

    @magic_arguments()
    @argument("--clear", action="store_true", help="forget the key held in memory")
    @line_magic("cometimg_key")
    def cometimg_key(self, line: str) -> None:
        """Ask for the CometAPI key with a masked prompt; it is held in memory only.

        The key is never saved in the notebook, the history or any output. Where the
        frontend cannot answer input prompts, a password box is shown instead.
        """
        if line.strip() and line.strip() != "--clear":
            # Never echo the argument: it may be the key itself.
            raise UsageError(
                "%cometimg_key takes no arguments: run it alone and type the key at the "
                "masked prompt (a key written in a cell would be saved with the notebook)."
            )
        if parse_argstring(self.cometimg_key, line).clear:
            _settings.set_session_key(None)
            print("key cleared")
            return
        ask_for_key(self.shell)

    @magic_arguments()
    @argument("--off", action="store_true", help="leave the simulator (back to the real API)")
    @line_magic("cometimg_sim")
    def cometimg_sim(self, line: str) -> None:
        """Try cometnb without a key: a local simulator answers like the API (synthetic images,
        nothing billed). Does nothing when a key is configured; --off leaves it.
        """
        from cometnb.sim import leave_simulator, use_if_keyless

        if parse_argstring(self.cometimg_sim, line).off:
            print("left the simulator" if leave_simulator() else "the simulator was not in use")
            return
        if use_if_keyless() == "real":
            print("A CometAPI key is configured: cells call the real API (nothing changed).")

    @classmethod
    def class_get_help(cls, inst: Any = None) -> str:
        """``%config CometImg``: the traits, then the values a request would really use."""
        from cometnb._core.settings import effective_text

        help_text: str = super().class_get_help(inst)
        return help_text if inst is None else f"{help_text}\n{effective_text()}"


# ``%%cometimg?`` shows the docstring: plain text with a ``%%`` usage line, not the RST that
# magic_arguments writes (whose usage line says ``%cometimg``).
_CELL_MAGIC: Any = CometImg.cometimg
_CELL_MAGIC.__doc__ = plain_help(_CELL_MAGIC, "%%cometimg", _CELL_MAGIC.parser.description or "")


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics on ``ipython`` (``%load_ext cometnb``)."""
    magics = CometImg(shell=ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics.engine.forget_shown)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension` (``%unload_ext`` / ``%reload_ext``)."""
    manager = ipython.magics_manager
    magics = manager.registry.pop("CometImg", None)
    manager.magics["cell"].pop("cometimg", None)
    manager.magics["line"].pop("cometimg_key", None)
    manager.magics["line"].pop("cometimg_sim", None)
    if magics is None:
        return
    magics.engine.forget_shown()
    with contextlib.suppress(ValueError):  # already gone
        ipython.events.unregister("post_run_cell", magics.engine.forget_shown)
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)


def _without_key(text: str) -> str:
    """``text`` with the configured key (and every registered one) replaced by [REDACTED]."""
    with contextlib.suppress(Exception):  # no key configured, or a broken .env: nothing to hide
        _settings.resolve_key()  # resolving registers the key for redaction
    return redact(text)
