"""Prices and cost: what a request will cost and did cost, and the price table in force.

* :class:`Cost` (``usd`` ``None`` = unknown, never a silent 0) and how USD amounts are written.
* The shapes a price table's JSON may take, each section checked (one short ValidationError).
* The :class:`PriceTable` in force: the built-in ``prices.json`` (API_FACTS.md §8), overlaid by
  the newest catalog kept by ``cometnb.refresh_prices()``, overlaid by the user's JSON file.
* Reading CometAPI's public model catalog (``GET {root}/api/models``) tolerantly.
* The estimate before sending and the actual cost from ``usage`` (API_FACTS §8). A model
  without a price costs *unknown*, never $0. Whether a failure may have been billed is
  ``billing.py``'s rule.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cometnb._core.billing import status_may_be_billed
from cometnb._core.errors import ValidationError
from cometnb._core.model_registry import is_assumed, model_info

__all__ = [
    "BUILTIN_PATH",
    "CATALOG_DIR",
    "NANOS_PER_USD",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "active_table",
    "actual_cost",
    "alias",
    "bad",
    "builtin_table",
    "estimate",
    "estimate_all",
    "estimate_body",
    "extra",
    "failure_cost",
    "format_spend",
    "format_usd",
    "from_nanos",
    "generation_cost",
    "gpt_image_2_tokens",
    "image_price",
    "image_tokens",
    "kind",
    "load_table",
    "prices",
    "problems",
    "prompt_tokens",
    "section",
    "table_from_catalog",
    "text",
    "to_nanos",
    "token_tables",
    "usage_problem",
    "with_override",
]


# --- Cost and amounts of USD ------------------------------------------------------------------

# Sums of money are kept in whole nano-dollars (10⁻⁹ USD): integers add exactly, so a total is
# the same whatever the order (SQL's or Python's) and prints as 0.51842, not
# 0.5184200000000001. Each cost is counted to the nearest nano-dollar (a millionth of a cent:
# far below what any price table or bill shows); the total is exact to that.
NANOS_PER_USD = 1_000_000_000


_INT64_MAX = 2**63 - 1  # what SQLite's CAST AS INTEGER gives for a larger value


def to_nanos(usd: float) -> int:
    """``usd`` in whole nano-dollars, rounded half up, as the spend query's SQL rounds it
    (``CAST(u * 1e9 + 0.5 AS INTEGER)``: the same float operations, so the same integer)."""
    scaled = usd * float(NANOS_PER_USD) + 0.5
    if not math.isfinite(scaled) or abs(scaled) > _INT64_MAX:
        return _INT64_MAX if scaled > 0 else -_INT64_MAX
    return int(scaled)


def from_nanos(nanos: int | float) -> float:
    """Whole nano-dollars back to USD: the float nearest the exact decimal (so ``0.51842``)."""
    return int(nanos) / NANOS_PER_USD


@dataclass(frozen=True)
class Cost:
    """What a request cost, or will cost.

    ``usd`` is ``None`` when unknown (a model without a price): never a silent 0.
    ``estimated`` is True for a figure made before sending (or without ``usage``);
    ``basis`` says how it was reached, ``prices`` which table (``"built-in 2026-12-01"``).

    Example::

        >>> Cost(0.05268, False, "1756 image tokens").label
        '$0.053'
        >>> Cost(0.05268, True, "estimate").label, Cost(None, False, "no price").label
        ('≈ $0.05', 'cost unknown')
    """

    usd: float | None
    estimated: bool
    basis: str
    prices: str | None = None

    @property
    def known(self) -> bool:
        return self.usd is not None

    @property
    def label(self) -> str:
        """``$0.053``, ``≈ $0.05`` when estimated, or ``cost unknown``."""
        if self.usd is None:
            return "cost unknown"
        return f"≈ {format_usd(self.usd, rough=True)}" if self.estimated else format_usd(self.usd)

    def __str__(self) -> str:
        return self.label

    def __add__(self, other: Cost) -> Cost:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        return Cost(usd, self.estimated or other.estimated, "sum", self.prices or other.prices)

    def to_dict(self) -> dict[str, Any]:
        """What a history record stores (so a later price change does not rewrite history):
        every field, by name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        usd = data.get("usd")
        return cls(
            float(usd) if isinstance(usd, (int, float)) and not isinstance(usd, bool) else None,
            bool(data.get("estimated")),
            str(data.get("basis") or ""),
            str(data["prices"]) if data.get("prices") else None,
        )

    @staticmethod
    def total(costs: Iterable[Cost]) -> Cost:
        """The sum; unknown when any part is unknown."""
        out = Cost(0.0, False, "sum")
        for cost in costs:
            out = out + cost
        return out


def format_spend(usd: float, *, exact_below_cent: bool = False) -> str:
    """Money spent or left, to the cent: ``$0.52``, ``$1,204.10``; under a cent but not
    nothing, ``<$0.01`` (``exact_below_cent``: ``$0.003``, for a budget's remainder set
    against a sub-cent estimate). One request's cost keeps three decimals: :func:`format_usd`.

    Example::

        >>> format_spend(0.51842), format_spend(0.004), format_spend(0.0)
        ('$0.52', '<$0.01', '$0.00')
    """
    if 0 < usd < 0.01:  # "$0.01" would overstate it, "$0.00" say it was free
        return format_usd(usd) if exact_below_cent else "<$0.01"
    return f"${usd:,.2f}"


def format_usd(usd: float, *, rough: bool = False) -> str:
    """``$0.053`` (three decimals under $10); ``rough`` rounds to cents where cents say enough."""
    if rough:
        if usd >= 0.01 or usd == 0:
            return f"${usd:,.2f}"
        return f"${usd:.3f}" if usd >= 0.001 else f"${usd:.4f}"
    if usd >= 10:
        return f"${usd:,.2f}"
    return f"${usd:.3f}" if usd >= 0.001 or usd == 0 else f"${usd:.5f}"


# --- the price table's JSON shapes ------------------------------------------------------------

_SHAPES = {
    "models": '{"<model>": {...}}',
    "aliases": '{"<alias>": "<model>"}',
    "token_tables": '{"<table>": {"<quality>": {"<size>": tokens}}}',
    "extras": '{"<name>": number}',
    "learned": '{"<model>": "<where and when>"}',
}


def bad(key: str, allowed: str) -> ValidationError:
    return ValidationError(f"{key} must be {allowed}", field="prices")


def section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad(f'"{key}"', f"a JSON object such as {_SHAPES[key]}; got {kind(value)}")
    return value


def kind(value: Any) -> str:
    """A short name for a JSON value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"[:60]
    return "a list" if isinstance(value, list) else "an object"


def text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise bad(f'"{key}"', f"text; got {kind(value)}")
    return str(value)


def alias(name: Any, value: Any) -> str:
    if not isinstance(value, str):
        raise bad(f'aliases."{name}"', f"the name of a model (text); got {kind(value)}")
    return value


def extra(name: Any, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise bad(f'extras."{name}"', f"a number, 0 or more; got {kind(value)}")
    return float(value)


def problems(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad('"problems"', f"a list of texts; got {kind(value)}")
    return tuple(str(p) for p in value)


def token_tables(data: Mapping[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name, qualities in data.items():
        where = f'token_tables."{name}"'
        if not isinstance(qualities, Mapping):
            raise bad(where, f'{{"<quality>": {{"<size>": tokens}}}}; got {kind(qualities)}')
        out[str(name)] = {}
        for quality, sizes in qualities.items():
            if not isinstance(sizes, Mapping):
                raise bad(f"{where}.{quality}", f'{{"<size>": tokens}}; got {kind(sizes)}')
            out[str(name)][str(quality)] = {
                str(size): _token_count(f"{where}.{quality}.{size}", t) for size, t in sizes.items()
            }
    return out


def _token_count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad(where, f"a whole number of tokens, 0 or more; got {kind(value)}")
    return value


# --- the price table in force -----------------------------------------------------------------

BUILTIN_PATH = Path(__file__).with_name("prices.json")


CATALOG_DIR = "prices"  # below the history folder: catalogs kept by refresh_prices()


Billing = Literal["tokens", "per_image"]


_RATES = ("text_in", "image_in", "image_out", "text_out", "text_in_cached", "image_in_cached")


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
    # Cached-input rates (GPT Image 2.5 / 2.6): charged for the input tokens ``usage`` reports
    # as cached (``input_tokens_details.cached_tokens``); without that count, the full rates.
    text_in_cached: float | None = None
    image_in_cached: float | None = None
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
    # Model ids the catalog or ``GET /v1/models`` reported that took a family rule (a later
    # ``gpt-image-2.N-*``): id -> where and when it was learned. The registry's ``assumed`` rows.
    learned: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short name stored on records: ``"built-in 2026-12-01"``."""
        return f"{self.origin} {self.date}"

    def get(self, model: str) -> ModelPrice | None:
        """The prices of ``model`` (aliases followed, then the registry's family rule: a later
        ``gpt-image-2.N-*`` id is priced like its family), or ``None`` when it has none."""
        found = self.models.get(model) or self.models.get(self.aliases.get(model, ""))
        if found is None and (info := model_info(model)) is not None:
            found = self.models.get(info.price_id)
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
            learned={**self.learned, **other.learned},
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
            "learned": dict(self.learned),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str | None = None) -> PriceTable:
        """Parse the JSON form; raise one short :class:`ValidationError` naming the key at
        fault and what it may hold."""
        if not isinstance(data, Mapping):
            raise bad("the price table", 'a JSON object with "models": {"<model>": {...}}')
        models = {str(k): _model_price(str(k), v) for k, v in section(data, "models").items()}
        return cls(
            models=models,
            date=text(data, "date", "undated"),
            source=text(data, "source", "unnamed source"),
            origin=origin or text(data, "origin", "file"),
            aliases={str(k): alias(k, v) for k, v in section(data, "aliases").items()},
            token_tables=token_tables(section(data, "token_tables")),
            extras={str(k): extra(k, v) for k, v in section(data, "extras").items()},
            problems=problems(data.get("problems")),
            learned={str(k): str(v) for k, v in section(data, "learned").items()},
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
            str(s): _number("per_image", name, v) or 0.0
            for s, v in _size_prices(name, q, sz).items()
        }
        for q, sz in per_image.items()
    }
    billing, billing_given = _billing(name, data)
    rates = {k: _number(k, name, data.get(k)) for k in _RATES}
    output_tokens = data.get("output_tokens")
    if output_tokens is not None and not isinstance(output_tokens, str):
        raise bad(
            f"output_tokens of {name}",
            f'"gpt-image-2-formula" or the name of a token table; got {kind(output_tokens)}',
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise bad(f"defaults of {name}", f'{{"size": ..., "quality": ...}}; got {kind(defaults)}')
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
            raise bad(f"billing of {name}", f'"tokens" or "per_image"; got {kind(stated)}')
        return stated, True
    return ("tokens" if data.get("image_out") is not None else "per_image"), False


def _size_prices(name: str, quality: Any, sizes: Any) -> Mapping[str, Any]:
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


_cache: dict[tuple[Any, ...], PriceTable] = {}


_lock = threading.Lock()


@functools.cache  # the shipped file does not change while the process runs
def builtin_table() -> PriceTable:
    """The table shipped with cometnb (API_FACTS.md §8)."""
    data = json.loads(BUILTIN_PATH.read_text(encoding="utf-8"))
    return PriceTable.from_dict(data, origin="built-in")


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


# --- CometAPI's model catalog -----------------------------------------------------------------

_LIST_KEYS = ("data", "models", "items", "result", "list")


_ID_KEYS = ("id", "model", "name", "model_name")


def table_from_catalog(data: Any, base: PriceTable, *, source: str) -> PriceTable:
    """The prices the catalog states, as a table to overlay on ``base`` (dated today).

    Example::

        >>> from cometnb._core.prices import builtin_table
        >>> cat = {"data": [{"id": "qwen-image", "pricing": {"per_request": 0.03}}]}
        >>> table_from_catalog(cat, builtin_table(), source="test").get("qwen-image").per_image
        {'*': {'*': 0.03}}
    """
    models: dict[str, ModelPrice] = {}
    problems: list[str] = []
    learned: dict[str, str] = {}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    entries = _entries(data)
    if entries is None:
        problems.append("the catalog has no list of models (looked for 'data' or 'models')")
        entries = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = _name(entry)
        if name is None:
            problems.append(f"entry {index} names no model")
            continue
        if name in seen:
            problems.append(f"{name}: listed more than once; the first entry is used")
            continue
        seen.add(name)
        if is_assumed(name):
            learned[name] = f"CometAPI catalog, {day}"
        # A later gpt-image-2.N id takes its family's shape (token counts, cached rates).
        known = base.models.get(base.aliases.get(name, name)) or base.get(name)
        price, problem = _price(name, entry, known)
        if problem:
            problems.append(f"{name}: {problem}")
        if price is not None:
            models[name] = price
    return PriceTable(
        models=models,
        date=day,
        source=source,
        origin="catalog",
        problems=tuple(problems),
        learned=learned,
    )


def _entries(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if not isinstance(data, Mapping):
        return None
    for key in _LIST_KEYS:
        inner = data.get(key)
        if isinstance(inner, list):
            return inner
        if isinstance(inner, Mapping):
            found = _entries(inner)
            if found is not None:
                return found
            # {"data": {"gpt-image-2": {...}}}: a mapping by model id
            return [{"id": k, **v} for k, v in inner.items() if isinstance(v, Mapping)]
    return None


def _name(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return None
    for key in _ID_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _num(value: Any) -> float | None:
    """A positive finite number from a number or a numeric string; else ``None``.

    Zero is not read as a price: catalogs write 0 for "not priced this way" (output 0 beside
    a per_request price), and taking it would make the model's estimate $0.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _is_zero(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _price(
    name: str, entry: Mapping[str, Any], base: ModelPrice | None
) -> tuple[ModelPrice | None, str | None]:
    pricing = entry.get("pricing", entry)
    if not isinstance(pricing, Mapping):
        return None, "no pricing object"
    currency = str(pricing.get("currency") or "USD")
    if "USD" not in currency.upper():
        return None, f"prices in {currency!r}, not USD"
    scale = 1000.0 if "/ K" in currency.upper().replace("/K", "/ K") else 1.0
    raw_in, raw_out = pricing.get("input"), pricing.get("output")
    per_in, per_out = _num(raw_in), _num(raw_out)
    per_request = _num(pricing.get("per_request"))
    unread = [
        k
        for k in ("input", "output", "per_request")
        if pricing.get(k) is not None and _num(pricing.get(k)) is None
    ]
    zero = [k for k in unread if _is_zero(pricing.get(k))]
    others = [k for k in unread if k not in zero]
    notes = [f"could not read {', '.join(others)}"] if others else []
    if zero:
        notes.append(f"{', '.join(zero)} of 0 is not a price (left out)")
    note = "; ".join(notes) or None
    if per_out is not None:
        scaled_in = per_in * scale if per_in is not None else None
        return _catalog_price(name, scaled_in, per_out * scale, base), note
    if per_request is not None:
        return _flat(name, per_request, base), note
    return None, note or "no price it could read"


def _catalog_price(
    name: str, per_in: float | None, per_out: float, base: ModelPrice | None
) -> ModelPrice:
    """Token rates; an input rate the catalog did not give stays the built-in one (or none)."""
    if base is None or base.image_out is None:
        return ModelPrice(name, text_in=per_in, image_in=per_in, image_out=per_out)
    ratio = per_out / base.image_out
    per_image = {
        q: {s: round(v * ratio, 6) for s, v in row.items()} for q, row in base.per_image.items()
    }
    text_in = per_in if per_in is not None else base.text_in
    in_ratio = text_in / base.text_in if text_in is not None and base.text_in else ratio
    return ModelPrice(
        name,
        text_in=text_in,
        image_in=base.image_in * ratio if base.image_in is not None else per_in,
        image_out=per_out,
        text_out=base.text_out * ratio if base.text_out is not None else None,
        # The catalog states no cached rates: the built-in ones, scaled as the catalog scales.
        text_in_cached=_scaled(base.text_in_cached, in_ratio),
        image_in_cached=_scaled(base.image_in_cached, ratio),
        billing=base.billing,
        per_image=per_image,
        output_tokens=base.output_tokens,
        defaults=base.defaults,
    )


def _scaled(rate: float | None, ratio: float) -> float | None:
    return round(rate * ratio, 6) if rate is not None else None


def _flat(name: str, usd: float, base: ModelPrice | None) -> ModelPrice:
    if base is None or not base.per_image:
        return ModelPrice(name, billing="per_image", per_image={"*": {"*": usd}})
    # Keep the built-in's shape (hd dearer than standard), scaled so its cheapest is the figure.
    cheapest = min(v for row in base.per_image.values() for v in row.values())
    ratio = usd / cheapest if cheapest else 1.0
    per_image = {
        q: {s: round(v * ratio, 6) for s, v in row.items()} for q, row in base.per_image.items()
    }
    return ModelPrice(name, billing="per_image", per_image=per_image, defaults=base.defaults)


# --- estimates and actual cost ----------------------------------------------------------------

_SIZE = re.compile(r"(\d+)x(\d+)")


_FORMULA = "gpt-image-2-formula"


_FORMULA_FACTOR = {"low": 16, "medium": 48, "high": 96}


_STANDARD_SIZES = ("1024x1024", "1536x1024", "1024x1536")


# Qualities whose token counts are not published (GPT Image 2.5 / 2.6): estimated as high x
# the table's unpublished_quality_factor, an upper bound no smaller than high.
UNPUBLISHED_QUALITIES = ("xhigh", "max")


_QUALITY_ORDER = ("low", "standard", "medium", "high", "hd")


UNKNOWN_HINT = (
    "Add its price to a JSON file such as "
    '{"models": {"MODEL": {"per_image": 0.04}}} (or "text_in"/"image_in"/"image_out" USD per '
    "1M tokens) and set %config CometImg.prices_file = 'prices.json'; cometnb.refresh_prices() "
    "reads CometAPI's catalog."
)


def gpt_image_2_tokens(width: int, height: int, quality: str) -> int:
    """Output tokens of one gpt-image-2 image (community formula, API_FACTS §8).

    Example::

        >>> [gpt_image_2_tokens(1024, 1024, q) for q in ("low", "medium", "high")]
        [196, 1756, 7024]
    """
    f = _FORMULA_FACTOR[quality]
    long, short = max(width, height), min(width, height)
    s = (2 * f * short + long) // (2 * long)
    return math.ceil(f * s * (2_000_000 + width * height) / 4_000_000)


def prompt_tokens(prompt: str, table: PriceTable | None = None) -> int:
    """Text tokens of a prompt: about four characters a token, plus a few hidden ones."""
    table = table or active_table()
    per = table.extra("chars_per_text_token", 4.0) or 4.0
    return max(1, math.ceil(len(prompt) / per)) + int(table.extra("prompt_hidden_tokens", 0))


def _qualities(price: ModelPrice, table: PriceTable, quality: str | None) -> list[str]:
    """The qualities to price: the one asked for, or every one (``auto``/unknown: take the max)."""
    quality = quality or price.defaults.get("quality")
    known = _known_qualities(price, table)
    if quality in known:
        return [quality]
    return known or ["high"]


def _known_qualities(price: ModelPrice, table: PriceTable) -> list[str]:
    if price.billing == "per_image":
        return [q for q in price.per_image if q != "*"] or ["*"]
    if price.output_tokens == _FORMULA:
        return list(_FORMULA_FACTOR)
    return list(table.token_tables.get(price.output_tokens or "", {}))


def _sizes_to_price(size: str | None, price: ModelPrice, options: Sequence[str]) -> list[str]:
    size = size or price.defaults.get("size")
    if size and size in options:
        return [size]
    if size and _SIZE.fullmatch(size) and price.output_tokens == _FORMULA:
        return [size]
    return list(options) or list(_STANDARD_SIZES)


def image_tokens(
    model: str, size: str | None, quality: str | None, table: PriceTable | None = None
) -> int | None:
    """Output tokens one image of ``model`` will bill; ``None`` when the table cannot say.

    ``auto`` (or a missing quality or size) takes the most expensive choice: an upper bound.
    """
    table = table or active_table()
    price = table.get(model)
    if price is None or price.billing != "tokens":
        return None
    return _max_tokens(price, table, size, quality)


def _max_tokens(
    price: ModelPrice, table: PriceTable, size: str | None, quality: str | None
) -> int | None:
    if price.output_tokens == _FORMULA:
        best = 0
        for q in _qualities(price, table, quality):
            for s in _sizes_to_price(size, price, _STANDARD_SIZES):
                w, h = (int(x) for x in s.split("x"))
                best = max(best, gpt_image_2_tokens(w, h, q))
        if quality in UNPUBLISHED_QUALITIES:
            best = math.ceil(best * max(1.0, table.extra("unpublished_quality_factor", 1.0)))
        return best
    grid = table.token_tables.get(price.output_tokens or "")
    if not grid:
        return None
    best = 0
    for q in _qualities(price, table, quality):
        row = grid.get(q, {})
        for s in _sizes_to_price(size, price, tuple(row)):
            best = max(best, row.get(s, max(row.values(), default=0)))
    return best or None


def _per_image(
    price: ModelPrice, table: PriceTable, size: str | None, quality: str | None
) -> float:
    best = 0.0
    for q in _qualities(price, table, quality):
        row = price.per_image.get(q) or price.per_image.get("*") or {}
        if "*" in row:
            best = max(best, row["*"])
            continue
        for s in _sizes_to_price(size, price, tuple(row)):
            best = max(best, row.get(s, 0.0))
    return best


def _upper(size: str | None, quality: str | None, price: ModelPrice) -> bool:
    """True when the request left a choice to the server, so the figure is an upper bound."""
    if price.billing == "per_image" and set(price.per_image) <= {"*"}:
        return False  # one flat price: nothing left to choose changes it
    q = quality or price.defaults.get("quality")
    s = size or price.defaults.get("size")
    return q in (None, "auto") or s in (None, "auto")


def _input_images(fields: Mapping[str, Any]) -> int:
    images = fields.get("images", fields.get("image"))
    if images is None:  # an EditBody carries its inputs as an attribute, not a key
        images = getattr(fields, "images", None) or None
    if images is None:
        return 0
    return len(images) if isinstance(images, (list, tuple)) else 1


def estimate_body(body: Mapping[str, Any], table: PriceTable | None = None) -> Cost:
    """The estimate for a request body (``ImageRequest.to_body()`` or a record's request)."""
    table = table or active_table()
    model = str(body.get("model") or "")
    price = table.get(model)
    if price is None:
        return Cost(None, True, f"no price for {model or 'this model'}", table.label)
    n = _int(body.get("n"), 1)
    size, quality = _str(body.get("size")), _str(body.get("quality"))
    partials = _int(body.get("partial_images"), 0) if body.get("stream") else 0
    text_in = prompt_tokens(str(body.get("prompt") or ""), table)
    inputs = _input_images(body)
    image_in = inputs * int(table.extra("input_image_tokens"))
    if body.get("input_fidelity") == "high":
        image_in += inputs * int(table.extra("input_fidelity_high_tokens"))
    usd = _rate(price.text_in) * text_in + _rate(price.image_in) * image_in
    bound = _bound_note(price, table, size, quality)
    if price.billing == "per_image":
        each = _per_image(price, table, size, quality)
        usd += each * n
        basis = f"{n} × {format_usd(each)} per image{bound}"
    else:
        tokens = _max_tokens(price, table, size, quality)
        if tokens is None:
            return Cost(None, True, f"no token count for {model} images", table.label)
        out = (tokens + partials * int(table.extra("partial_image_tokens"))) * n
        usd += _rate(price.image_out) * out
        basis = f"{out} image tokens out, {text_in + image_in} in{bound}"
    return Cost(usd, True, basis, table.label)


def _bound_note(price: ModelPrice, table: PriceTable, size: str | None, quality: str | None) -> str:
    """`` (upper bound: …)`` when the figure is a bound rather than the price, else ``""``."""
    if quality in UNPUBLISHED_QUALITIES and price.output_tokens == _FORMULA:
        factor = _num_text(max(1.0, table.extra("unpublished_quality_factor", 1.0)))
        return f" (upper bound: {quality} token counts are not published; high × {factor})"
    return " (upper bound: auto)" if _upper(size, quality, price) else ""


def image_price(
    model: str, quality: str | None, size: str = "1024x1024", table: PriceTable | None = None
) -> Cost:
    """What one output image of ``model`` costs at ``quality`` and ``size`` (no prompt, no
    inputs): the figure a model list shows. Unknown prices give an unknown cost, never $0.

    Example::

        >>> image_price("gpt-image-2", "high").label
        '≈ $0.21'
    """
    table = table or active_table()
    price = table.get(model)
    if price is None:
        return Cost(None, True, f"no price for {model}", table.label)
    bound = _bound_note(price, table, size, quality)
    if price.billing == "per_image":
        each = _per_image(price, table, size, quality)
        return Cost(each, True, f"{format_usd(each)} per image{bound}", table.label)
    tokens = _max_tokens(price, table, size, quality)
    if tokens is None:
        return Cost(None, True, f"no token count for {model} images", table.label)
    usd = _rate(price.image_out) * tokens
    return Cost(usd, True, f"{tokens} image tokens out{bound}", table.label)


def _num_text(x: float) -> str:
    return str(int(x)) if x.is_integer() else f"{x:g}"


def estimate(request: Any, table: PriceTable | None = None) -> Cost:
    """The estimate for an :class:`~cometnb._core.generations.ImageRequest` (or a body dict)."""
    body = request.to_body() if hasattr(request, "to_body") else request
    images = getattr(request, "images", None)
    if images and "images" not in body:
        body = {**body, "images": images}
    return estimate_body(body, table)


def estimate_all(requests: Iterable[Any], table: PriceTable | None = None) -> list[Cost]:
    """Estimates for many requests with one price table (a grid's or a batch's budget check)."""
    table = table or active_table()
    return [estimate(r, table) for r in requests]


def actual_cost(
    body: Mapping[str, Any],
    usage: Mapping[str, Any] | None,
    images: int,
    meta: Mapping[str, Any] | None = None,
    table: PriceTable | None = None,
) -> Cost:
    """What a successful request cost: ``usage`` × the table; the estimate when it cannot be."""
    table = table or active_table()
    model = str(body.get("model") or "")
    price = table.get(model)
    if price is None:
        return Cost(None, False, f"no price for {model or 'this model'}", table.label)
    meta = meta or {}
    # What the server says it did beats what was asked (auto → the quality it chose).
    seen = {**body, **{k: meta[k] for k in ("size", "quality") if meta.get(k)}, "n": images}
    counts = _usage_counts(usage)
    if price.billing == "per_image":
        each = _per_image(price, table, _str(seen.get("size")), _str(seen.get("quality")))
        usd = each * images
        if counts is not None:
            usd += _rate(price.text_in) * counts[0] + _rate(price.image_in) * counts[1]
        upper = _upper(_str(seen.get("size")), _str(seen.get("quality")), price)
        return Cost(usd, upper, f"{images} × {format_usd(each)} per image", table.label)
    guess = estimate_body(seen, table)
    if counts is None:
        return Cost(guess.usd, True, f"no usage reported; {guess.basis}", table.label)
    problem = usage_problem(usage)
    if problem is not None:  # data from outside: never let it price a billed image below
        return Cost(guess.usd, True, f"usage implausible ({problem}); {guess.basis}", table.label)
    text_in, image_in, image_out, text_out = counts
    cached_text, cached_image = _cached_counts(usage, text_in, image_in, price)
    out_rate = price.text_out if price.text_out is not None else price.image_out
    usd = (
        _rate(price.text_in) * (text_in - cached_text)
        + _rate(price.text_in_cached) * cached_text
        + _rate(price.image_in) * (image_in - cached_image)
        + _rate(price.image_in_cached) * cached_image
        + _rate(price.image_out) * image_out
        + _rate(out_rate) * text_out
    )
    floor = _plausible_floor(seen, table, guess)
    if floor is not None and usd < floor * _IMPLAUSIBLY_LOW:
        low = f"usage says {format_usd(usd)}, far below the least it can cost"
        return Cost(guess.usd, True, f"usage implausible ({low}); {guess.basis}", table.label)
    basis = f"usage: {image_out} image tokens out, {text_in + image_in} in"
    if cached_text or cached_image:
        basis += f" ({cached_text + cached_image} of them cached)"
    return Cost(usd, False, basis, table.label)


# Usage pricing a request under half of the cheapest way it could have been made is not
# believed (a $0.0001 answer for a $0.166 image): the estimate stands, labelled.
_IMPLAUSIBLY_LOW = 0.5


def _plausible_floor(seen: Mapping[str, Any], table: PriceTable, guess: Cost) -> float | None:
    """The least ``seen`` can cost: at the lowest quality when the server chose (``auto``);
    else ``guess``, its estimate (already made: not made again)."""
    if seen.get("quality") not in (None, "auto"):
        return guess.usd
    return estimate_body({**seen, "quality": "low"}, table).usd


def _digits(value: object) -> bool:
    return isinstance(value, str) and value.strip().isdigit()


def usage_problem(usage: object) -> str | None:
    """Why ``usage`` (as the server sent it) cannot price a request; ``None`` when it can.

    A count that is missing (``output_tokens``), not a number, not finite or negative is a
    problem; so is ``usage`` that is not an object.

    Example::

        >>> usage_problem({"input_tokens": 10, "output_tokens": -5})
        'output_tokens is negative'
        >>> usage_problem({"input_tokens": 10, "output_tokens": 4160}) is None
        True
    """
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        return "usage is not an object"
    if "output_tokens" not in usage:
        return "no output_tokens"
    return _bad_count(usage, "")


def _bad_count(values: Mapping[str, Any], prefix: str) -> str | None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found = _bad_count(value, f"{name}.")
            if found:
                return found
        elif (
            not key.endswith("tokens")
            or value is None
            or (isinstance(value, str) and value.strip().isdigit())
        ):
            continue
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} is not a number"
        elif not math.isfinite(value):
            return f"{name} is not finite"
        elif value < 0:
            return f"{name} is negative"
    return None


def failure_cost(
    body: Mapping[str, Any],
    error_type: str,
    status: int | None,
    table: PriceTable | None = None,
    *,
    may_be_billed: bool | None = None,
) -> Cost:
    """What a failed request cost: nothing when it was refused, else (maybe billed) its estimate.

    The rule is the retry policy's (:mod:`cometnb._core.billing`): ``may_be_billed`` as the
    client found it, else from ``status`` (408, 409, 5xx but 503: maybe billed; 429, 503, 4xx:
    not). Refused before sending: $0. Timed out, cut off, an unusable answer or cancelled in
    flight: the server may have billed it, so the estimate.
    """
    table = table or active_table()
    if error_type in ("ValidationError", "BudgetError"):
        return Cost(0.0, False, "not sent", table.label)
    if may_be_billed is None and status is not None:
        may_be_billed = status_may_be_billed(int(status))
    if may_be_billed is False:
        why = f"refused by the server (HTTP {status})" if status is not None else "refused"
        if error_type == "CancelledError":
            why = "cancelled before sending"
        return Cost(0.0, False, f"{why}: not billed", table.label)
    guess = estimate_body(body, table)
    return Cost(guess.usd, True, f"may have been billed; {guess.basis}", table.label)


def generation_cost(gen: Any) -> Cost:
    """A :class:`~cometnb._core.generations.Generation`'s cost: priced now, stored by the client."""
    if gen.error is not None or gen.status != "ok":
        error = gen.error
        status = getattr(error, "status", None)
        billed = getattr(error, "may_be_billed", None)
        name = type(error).__name__ if error else ""
        return failure_cost(gen.request, name, status, may_be_billed=billed)
    return actual_cost(gen.request, gen.usage, len(gen.images), gen.meta)


def _usage_counts(usage: Mapping[str, Any] | None) -> tuple[int, int, int, int] | None:
    """(text in, image in, image out, text out) from ``usage``; ``None`` when it has none."""
    if not isinstance(usage, Mapping):
        return None
    total_in, total_out = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if total_in is None and total_out is None:
        return None
    in_d = usage.get("input_tokens_details")
    in_d = in_d if isinstance(in_d, Mapping) else {}
    image_in = _count(in_d.get("image_tokens")) or 0
    text_in = _count(in_d.get("text_tokens"))
    text_in = max(0, (total_in or 0) - image_in) if text_in is None else text_in
    out_d = usage.get("output_tokens_details")
    if not isinstance(out_d, Mapping):
        return text_in, image_in, total_out or 0, 0  # no details: all output is image tokens
    text_out = _count(out_d.get("text_tokens")) or 0
    image_out = _count(out_d.get("image_tokens"))
    image_out = max(0, (total_out or 0) - text_out) if image_out is None else image_out
    return text_in, image_in, image_out, text_out


def _cached_counts(
    usage: Mapping[str, Any] | None, text_in: int, image_in: int, price: ModelPrice
) -> tuple[int, int]:
    """(cached text, cached image) input tokens to charge at the cached rates; (0, 0) when the
    model has no cached rate or ``usage`` reports none.

    Two shapes are read (which one the images API sends is not documented): the split
    ``input_tokens_details.cached_tokens_details{text_tokens, image_tokens}``, or only the total
    ``input_tokens_details.cached_tokens``. A total is laid on the text tokens first (the
    smaller discount), so the cost is never below what the split would give.
    """
    details = usage.get("input_tokens_details") if isinstance(usage, Mapping) else None
    if not isinstance(details, Mapping):
        return 0, 0
    split = details.get("cached_tokens_details")
    if isinstance(split, Mapping):
        text = min(_count(split.get("text_tokens")) or 0, text_in)
        image = min(_count(split.get("image_tokens")) or 0, image_in)
    else:
        total = _count(details.get("cached_tokens")) or 0
        text = min(total, text_in)
        image = min(total - text, image_in)
    return (
        text if price.text_in_cached is not None else 0,
        image if price.image_in_cached is not None else 0,
    )


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return max(0, int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _rate(per_million: float | None) -> float:
    return (per_million or 0.0) / 1_000_000


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
