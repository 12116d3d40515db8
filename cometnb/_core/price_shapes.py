"""The shapes a price table's JSON may take: each section checked, so a malformed file is one
short :class:`ValidationError` naming the key at fault and what it may hold (never a raw
``TypeError`` from deep inside)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cometnb._core.errors import ValidationError

__all__ = ["alias", "bad", "extra", "kind", "problems", "section", "text", "token_tables"]

_SHAPES = {
    "models": '{"<model>": {...}}',
    "aliases": '{"<alias>": "<model>"}',
    "token_tables": '{"<table>": {"<quality>": {"<size>": tokens}}}',
    "extras": '{"<name>": number}',
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
                str(size): _tokens(f"{where}.{quality}.{size}", t) for size, t in sizes.items()
            }
    return out


def _tokens(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad(where, f"a whole number of tokens, 0 or more; got {kind(value)}")
    return value
