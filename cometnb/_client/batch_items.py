"""A batch's input, read into keyed requests: prompts, dicts, ImageRequests, a DataFrame, a file.

Every item becomes a :class:`BatchItem` with a stable key — the item's own ``id`` when it has
one, else a hash of the request it sends — so running the same input again finds the same
items. Identical requests without ids are told apart by their occurrence (``…#2``).

Rows (dicts, DataFrame rows, CSV / JSONL lines): ``prompt`` is required; ``id`` names the item;
``tags`` (a list, or text split on ``,``) tags its record; columns that are API fields
(``model``, ``size``, ``quality``, ``n`` …) go into the request; any other column becomes a tag
``column=value``, so a catalogue's ``sku`` column is searchable with ``h.find(tag="sku=A1")``.
CSV cells are text: those of API fields are read as JSON when they parse (``n`` = ``2``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from cometnb._core.capabilities import CAPABILITIES
from cometnb._core.errors import ValidationError
from cometnb._core.models import ImageRequest

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchItem", "BatchItems", "load_items", "request_key"]

# What ``cometnb.batch`` reads: a .csv / .jsonl path, a DataFrame, or prompts, dicts (a
# ``prompt``, an optional ``id``, API fields, other columns as tags) and ImageRequests.
BatchItems: TypeAlias = (
    "str | os.PathLike[str] | pd.DataFrame | Iterable[str | Mapping[str, Any] | ImageRequest]"
)

_API_FIELDS = frozenset({"prompt", "model"}).union(*(c.fields for c in CAPABILITIES.values()))
_TEXT_FIELDS = frozenset({"prompt", "model", "id", "tags"})  # never JSON-parsed
_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch: its key, where it is in the input, the request and its tags."""

    key: str
    position: int
    request: ImageRequest
    tags: tuple[str, ...] = ()


def request_key(body: Mapping[str, Any]) -> str:
    """A short stable hash of a request body (the key of an item without an id).

    Example::

        >>> request_key({"prompt": "a fox", "model": "gpt-image-2"})
        'r-e972011acf714e51'
    """
    text = json.dumps(dict(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "r-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_items(items: BatchItems, defaults: Mapping[str, Any]) -> list[BatchItem]:
    """Read ``items`` into keyed requests; ``defaults`` fill fields an item does not set.

    Raises :class:`ValidationError` naming the item (its position and id) that is unusable.
    """
    rows = list(_rows(items))
    base_tags = _tags(defaults.get("tags"))
    fields = {k: v for k, v in defaults.items() if k != "tags" and v is not None}
    loaded: list[BatchItem] = []
    seen: dict[str, int] = {}
    for position, row in enumerate(rows):
        try:
            request, given, tags = _parse(row, fields)
            request.validate()
        except ValidationError as exc:
            raise ValidationError(
                f"item {position}{_named(row)}: {exc.message}", field=exc.field, hint=exc.hint
            ) from None
        key = given or request_key(request.to_body())
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            if given:
                raise ValidationError(
                    f"item {position}: id {given!r} is used twice; ids name items, so each "
                    "must be unique within the batch"
                )
            key = f"{key}#{seen[key]}"
        loaded.append(BatchItem(key, position, request, (*base_tags, *tags)))
    return loaded


def _named(row: object) -> str:
    if isinstance(row, Mapping) and row.get("id") not in (None, ""):
        return f" (id {row['id']!r})"
    return ""


def _rows(items: object) -> Iterable[object]:
    if isinstance(items, (str, os.PathLike)) and _is_table_path(items):
        return _read_file(Path(items))
    if _is_dataframe(items):
        frame: Any = items
        return [dict(zip(frame.columns, values, strict=True)) for values in frame.itertuples(False)]
    if isinstance(items, (str, bytes, Mapping, ImageRequest)):
        raise ValidationError(
            f"batch items must be a list (of prompts, dicts or ImageRequests), a DataFrame, or "
            f"a .csv / .jsonl path; got a single {type(items).__name__}",
            hint="Wrap one prompt in a list: cometnb.batch(['a red fox'], name=...).",
        )
    if not isinstance(items, Iterable):
        raise ValidationError(
            f"batch items must be a list, a DataFrame or a .csv / .jsonl path; got "
            f"{type(items).__name__}"
        )
    return items


def _is_table_path(value: str | os.PathLike[str]) -> bool:
    text = os.fspath(value)
    return "\n" not in text and text.lower().endswith(_SUFFIXES)


def _is_dataframe(value: object) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "itertuples")


def _read_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ValidationError(f"batch input file {path} does not exist (or is not a file)")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if path.suffix.lower() == ".csv":
            return [{k: _cell(k, v) for k, v in row.items() if k} for row in csv.DictReader(handle)]
        rows = []
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                raise ValidationError(f"{path.name} line {number} is not valid JSON") from None
            rows.append(value if isinstance(value, dict) else {"prompt": value})
        return rows


def _cell(column: str, text: str | None) -> Any:
    """A CSV cell: empty means absent; an API field's text is JSON when it parses."""
    if text is None or text == "":
        return None
    if column in _TEXT_FIELDS or column not in _API_FIELDS:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse(
    row: object, defaults: Mapping[str, Any]
) -> tuple[ImageRequest, str | None, tuple[str, ...]]:
    """(request, the item's own id, its tags) for one row."""
    if isinstance(row, ImageRequest):
        missing = {k: v for k, v in defaults.items() if k not in row.to_body()}
        return (row.with_overrides(**missing) if missing else row), None, ()
    if isinstance(row, str):
        return ImageRequest.from_dict({**defaults, "prompt": row}), None, ()
    if not isinstance(row, Mapping):
        raise ValidationError(
            f"is a {type(row).__name__}; items are prompts, dicts or ImageRequests"
        )
    values = {str(k): _plain(v) for k, v in row.items()}
    values = {k: v for k, v in values.items() if v is not None}
    given = values.pop("id", None)
    tags = list(_tags(values.pop("tags", None)))
    fields = dict(defaults)
    for name, value in values.items():
        if name in _API_FIELDS:
            fields[name] = value
        else:
            tags.append(f"{name}={value}")
    if not isinstance(fields.get("prompt"), str) or not fields["prompt"].strip():
        raise ValidationError("has no prompt (a non-empty 'prompt' column or key)", field="prompt")
    return ImageRequest.from_dict(fields), (None if given is None else str(given)), tuple(tags)


def _plain(value: Any) -> Any:
    """numpy scalars to Python; NaN (pandas' empty cell) to None; 2.0 to 2."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a pandas int column with gaps is float; no API field is
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return tuple(str(t) for t in value)
