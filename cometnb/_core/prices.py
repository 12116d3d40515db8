"""Prices as data: the :class:`PriceTable` in force.

The built-in table (``prices.json`` beside this module) holds API_FACTS.md §8: per-token rates
for the gpt-image models, per-image list prices for dall-e and gpt-image-1-mini, and the token
counts used to estimate before sending. It is dated and names its source. The table in force
(:func:`active_table`, ``cometnb.prices()``) is the built-in one, overlaid by the newest catalog
kept by ``cometnb.refresh_prices()`` in the history folder, overlaid by the user's JSON file
(``%config CometImg.prices_file``). A model with no price has an *unknown* cost, never $0.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cometnb._core import price_shapes as shapes
from cometnb._core.errors import ValidationError

__all__ = [
    "BUILTIN_PATH",
    "CATALOG_DIR",
    "ModelPrice",
    "PriceTable",
    "active_table",
    "builtin_table",
    "load_table",
    "prices",
    "with_override",
]

BUILTIN_PATH = Path(__file__).with_name("prices.json")
CATALOG_DIR = "prices"  # below the history folder: catalogs kept by refresh_prices()
Billing = Literal["tokens", "per_image"]
_RATES = ("text_in", "image_in", "image_out", "text_out")
_PER_M = 1_000_000


@dataclass(frozen=True)
class ModelPrice:
    """One model's prices: token rates (USD per 1M) and/or per-image list prices (USD).

    ``per_image`` maps quality → size → USD (``"*"`` matches any); ``billing`` says which of
    the two is charged. ``output_tokens`` names the estimator of image tokens
    (``"gpt-image-2-formula"`` or a key of ``PriceTable.token_tables``).
    """

    name: str
    text_in: float | None = None
    image_in: float | None = None
    image_out: float | None = None
    text_out: float | None = None
    billing: Billing = "tokens"
    per_image: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    output_tokens: str | None = None
    defaults: Mapping[str, str] = field(default_factory=dict)
    # The keys a price file stated for this model (billing included when it was stated or
    # implied), so an override changes only those fields of the built-in entry.
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def priced(self) -> bool:
        """True when this entry can price an image at all."""
        if self.billing == "per_image":
            return bool(self.per_image)
        return self.image_out is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _RATES if getattr(self, k) is not None}
        if self.billing != "tokens":
            out["billing"] = self.billing
        if self.per_image:
            out["per_image"] = {q: dict(s) for q, s in self.per_image.items()}
        if self.output_tokens:
            out["output_tokens"] = self.output_tokens
        if self.defaults:
            out["defaults"] = dict(self.defaults)
        return out


@dataclass(frozen=True)
class PriceTable:
    """Every model's prices, dated and naming where they came from.

    Example::

        >>> table = builtin_table()
        >>> table.get("gpt-image-2").image_out, table.date
        (30.0, '2026-12-01')
    """

    models: Mapping[str, ModelPrice]
    date: str
    source: str
    origin: str = "built-in"
    aliases: Mapping[str, str] = field(default_factory=dict)
    token_tables: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)
    extras: Mapping[str, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Short name stored on records: ``"built-in 2026-12-01"``."""
        return f"{self.origin} {self.date}"

    def get(self, model: str) -> ModelPrice | None:
        """The prices of ``model`` (aliases followed), or ``None`` when it has none."""
        found = self.models.get(model) or self.models.get(self.aliases.get(model, ""))
        return found if found is not None and found.priced else None

    def extra(self, name: str, default: float = 0.0) -> float:
        return float(self.extras.get(name, default))

    def merged(self, other: PriceTable) -> PriceTable:
        """This table with ``other``'s entries on top (``other`` names the date and source)."""
        models = dict(self.models)
        for name, price in other.models.items():
            base = models.get(name)
            models[name] = _overlay(base, price) if base is not None else price
        return PriceTable(
            models=models,
            date=other.date,
            source=f"{other.source}; otherwise {self.source}",
            origin=other.origin if self.origin == "built-in" else f"{other.origin}+{self.origin}",
            aliases={**self.aliases, **other.aliases},
            token_tables={**self.token_tables, **other.token_tables},
            extras={**self.extras, **other.extras},
            problems=self.problems + other.problems,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what ``prices.json``, a ``prices_file`` and kept catalogs hold)."""
        return {
            "format": 1,
            "date": self.date,
            "source": self.source,
            "origin": self.origin,
            "currency": "USD",
            "models": {name: p.to_dict() for name, p in self.models.items()},
            "aliases": dict(self.aliases),
            "token_tables": {
                k: {q: dict(s) for q, s in v.items()} for k, v in self.token_tables.items()
            },
            "extras": dict(self.extras),
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str | None = None) -> PriceTable:
        """Parse the JSON form; raise one short :class:`ValidationError` naming the key at
        fault and what it may hold."""
        if not isinstance(data, Mapping):
            raise shapes.bad("the price table", 'a JSON object with "models": {"<model>": {...}}')
        models = {
            str(k): _model_price(str(k), v) for k, v in shapes.section(data, "models").items()
        }
        return cls(
            models=models,
            date=shapes.text(data, "date", "undated"),
            source=shapes.text(data, "source", "unnamed source"),
            origin=origin or shapes.text(data, "origin", "file"),
            aliases={
                str(k): shapes.alias(k, v) for k, v in shapes.section(data, "aliases").items()
            },
            token_tables=shapes.token_tables(shapes.section(data, "token_tables")),
            extras={str(k): shapes.extra(k, v) for k, v in shapes.section(data, "extras").items()},
            problems=shapes.problems(data.get("problems")),
        )

    def __repr__(self) -> str:
        names = ", ".join(sorted(n for n in self.models if self.get(n)))
        return f"<PriceTable {self.label} ({self.source}): {names}>"


def _number(name: str, model: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(
            f"price {name} of {model} must be a number of USD; got {value!r}", field="prices"
        )
    if value < 0:
        raise ValidationError(f"price {name} of {model} must not be negative", field="prices")
    return float(value)


def _model_price(name: str, data: Any) -> ModelPrice:
    if not isinstance(data, Mapping):
        raise ValidationError(f"prices of {name} must be a JSON object", field="prices")
    per_image = data.get("per_image") or {}
    if isinstance(per_image, (int, float)) and not isinstance(per_image, bool):
        per_image = {"*": {"*": per_image}}  # one flat price for every size and quality
    if not isinstance(per_image, Mapping):
        raise ValidationError(f"per_image of {name} must be a number or an object", field="prices")
    table = {
        str(q): {
            str(s): _number("per_image", name, v) or 0.0 for s, v in _sizes(name, q, sz).items()
        }
        for q, sz in per_image.items()
    }
    billing, billing_given = _billing(name, data)
    rates = {k: _number(k, name, data.get(k)) for k in _RATES}
    output_tokens = data.get("output_tokens")
    if output_tokens is not None and not isinstance(output_tokens, str):
        raise shapes.bad(
            f"output_tokens of {name}",
            f'"gpt-image-2-formula" or the name of a token table; got {shapes.kind(output_tokens)}',
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise shapes.bad(
            f"defaults of {name}", f'{{"size": ..., "quality": ...}}; got {shapes.kind(defaults)}'
        )
    given = {k for k in (*_RATES, "per_image", "output_tokens") if data.get(k) is not None}
    return ModelPrice(
        name,
        **rates,
        billing=billing,
        per_image=table,
        output_tokens=output_tokens,
        defaults={str(k): str(v) for k, v in defaults.items()},
        given=frozenset(given | ({"billing"} if billing_given else set())),
    )


def _billing(name: str, data: Mapping[str, Any]) -> tuple[Billing, bool]:
    """How the entry bills, and whether the file said so. Unstated, a new model bills per
    token when it gives ``image_out``, else per image; an override keeps the built-in kind."""
    stated = data.get("billing")
    if stated is not None:
        if stated not in ("tokens", "per_image"):
            raise shapes.bad(
                f"billing of {name}", f'"tokens" or "per_image"; got {shapes.kind(stated)}'
            )
        return stated, True
    return ("tokens" if data.get("image_out") is not None else "per_image"), False


def _sizes(name: str, quality: Any, sizes: Any) -> Mapping[str, Any]:
    if isinstance(sizes, (int, float)) and not isinstance(sizes, bool):
        return {"*": sizes}
    if not isinstance(sizes, Mapping):
        raise ValidationError(
            f"per_image.{quality} of {name} must map sizes to USD", field="prices"
        )
    return sizes


def _overlay(base: ModelPrice, top: ModelPrice) -> ModelPrice:
    """``top``'s figures where it has them, ``base``'s elsewhere (field by field: a file that
    gives only ``text_in`` keeps the built-in billing kind, image rates and token counts)."""
    given = top.given or frozenset(
        k for k in (*_RATES, "per_image", "output_tokens", "billing") if _has(top, k)
    )
    rates = {k: getattr(top, k) if k in given else getattr(base, k) for k in _RATES}
    per_image = {q: dict(s) for q, s in base.per_image.items()}
    if "*" in top.per_image:
        per_image = {}  # one price for every quality replaces the built-in ones
    for quality, sizes in top.per_image.items():  # per quality, per size
        row = {} if "*" in sizes else per_image.get(quality, {})  # likewise for every size
        per_image[quality] = {**row, **sizes}
    return replace(
        base,
        **rates,
        billing=top.billing if "billing" in given else base.billing,
        per_image=per_image,
        output_tokens=top.output_tokens or base.output_tokens,
        defaults={**base.defaults, **top.defaults},
        given=base.given | given,
    )


def _has(price: ModelPrice, key: str) -> bool:
    """For an entry built in code (not parsed): does it state ``key``?"""
    if key == "billing":
        return True  # code that builds a ModelPrice chooses its billing
    value = getattr(price, key)
    return bool(value) if key == "per_image" else value is not None


# --- loading and the table in force ----------------------------------------------------------

_builtin: PriceTable | None = None
_cache: dict[tuple[Any, ...], PriceTable] = {}
_lock = threading.Lock()


def builtin_table() -> PriceTable:
    """The table shipped with cometnb (API_FACTS.md §8)."""
    global _builtin
    if _builtin is None:
        data = json.loads(BUILTIN_PATH.read_text(encoding="utf-8"))
        _builtin = PriceTable.from_dict(data, origin="built-in")
    return _builtin


def load_table(path: str | Path, *, origin: str | None = None) -> PriceTable:
    """Read a price table from a JSON file; a short :class:`ValidationError` when unreadable."""
    where = Path(path).expanduser()
    try:
        data = json.loads(where.read_text(encoding="utf-8-sig"))  # a BOM is harmless
    except OSError as exc:
        raise ValidationError(
            f"cannot read the price file {where}: {exc.strerror or exc}",
            field="prices_file",
            hint="Fix the path in %config CometImg.prices_file, or set it to None.",
        ) from None
    except ValueError as exc:
        raise ValidationError(
            f"the price file {where} is not valid JSON ({exc})",
            field="prices_file",
            hint=_FIX_HINT,
        ) from None
    try:
        return PriceTable.from_dict(data, origin=origin or where.name)
    except ValidationError as exc:
        raise ValidationError(
            f"the price file {where}: {exc.message}", field="prices_file", hint=_FIX_HINT
        ) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape not foreseen
        raise ValidationError(
            f"the price file {where} has a value of the wrong kind ({exc})",
            field="prices_file",
            hint=_FIX_HINT,
        ) from None


_FIX_HINT = (
    "Fix the file (see cometnb.prices().to_dict() for the shape), or set "
    "%config CometImg.prices_file = None."
)


_newest: dict[Path, tuple[float, Path | None]] = {}


def newest_catalog(history_dir: Path) -> Path | None:
    """The newest catalog ``refresh_prices()`` kept in ``history_dir`` (names sort by time).

    The folder is listed again only when its modification time changes (a new catalog).
    """
    folder = history_dir / CATALOG_DIR
    try:
        mtime = folder.stat().st_mtime
    except OSError:
        return None
    cached = _newest.get(folder)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        found = sorted(folder.glob("catalog-*.json"))
    except OSError:
        return None
    newest = found[-1] if found else None
    _newest[folder] = (mtime, newest)
    return newest


def _stamp(path: Path | None) -> tuple[str, float] | None:
    if path is None:
        return None
    try:
        return (str(path), path.stat().st_mtime)
    except OSError:
        return (str(path), -1.0)


def prices() -> PriceTable:
    """The price table in force (``cometnb.prices()``): built-in, dated, naming its source.

    Example::

        >>> cometnb.prices().get("gpt-image-2").image_out  # doctest: +SKIP
        30.0
    """
    return active_table()


def with_override(table: PriceTable, path: Path | None = None) -> PriceTable:
    """``table`` with the user's ``prices_file`` laid on top (it always wins)."""
    if path is None:
        from cometnb._core import settings

        override = getattr(settings.active(), "prices_file", None)
        path = Path(override).expanduser() if override else None
    return table if path is None else table.merged(load_table(path))


def active_table() -> PriceTable:
    """The prices in force: built-in, then the newest kept catalog, then ``prices_file``.

    Re-read only when one of those files changes (checked by modification time).
    """
    from cometnb._core import settings

    override = getattr(settings.active(), "prices_file", None)
    override_path = Path(override).expanduser() if override else None
    catalog = newest_catalog(settings.resolve_history_dir())
    key = (_stamp(catalog), _stamp(override_path))
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    table = builtin_table()
    if catalog is not None:
        # A damaged kept catalog must not stop generation: the built-in table still holds.
        with contextlib.suppress(ValidationError):
            table = table.merged(load_table(catalog, origin="catalog"))
    table = with_override(table, override_path)
    with _lock:
        _cache.clear()
        _cache[key] = table
    return table
