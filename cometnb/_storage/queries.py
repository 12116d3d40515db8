"""History questions answered by SQLite, not by loading every record.

``len(h)``, ``h[i]``, ``h.get(id)`` and ``h.find(...)`` on a history of 100,000 records must not
build 100,000 :class:`Record` s: each is one indexed query (``id`` is the primary key and sorts
by time). ``find`` narrows in SQL — exact ``model`` / ``status`` / tag, ``LIKE`` on the
prompts and on the revised prompts (both through small indexes, ``Index.SEARCH_INDEXES``) —
and then checks the few rows found exactly in Python, so its answer is the same as a full
scan's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cometnb._storage.index import Index
from cometnb._storage.records import Record

__all__ = [
    "DOC_LIKE",
    "HAS_REVISED",
    "PROMPT_LIKE",
    "Narrowed",
    "doc_pattern",
    "find_records",
    "mentions",
    "narrow",
    "prompt_pattern",
    "record_at",
    "record_by_id",
]

# True for the rows whose document holds a revised prompt (the expression of their index).
HAS_REVISED = 'instr(doc, \'"revised_prompt":"\') > 0'
PROMPT_LIKE = "prompt LIKE ? ESCAPE '\\'"
DOC_LIKE = "doc LIKE ? ESCAPE '\\'"


def record_by_id(index: Index, root: Path, record_id: str) -> Record | None:
    rows = index.select("id = ?", (record_id,), limit=1)
    return Record._from_row(rows[0], root) if rows else None


def record_at(index: Index, root: Path, position: int) -> Record | None:
    """The record at ``position`` (oldest first; negative counts from the newest)."""
    if position >= 0:
        rows = index.select(offset=position, limit=1)
    else:
        rows = index.select(order="id DESC", offset=-position - 1, limit=1)
    return Record._from_row(rows[0], root) if rows else None


def find_records(
    index: Index,
    root: Path,
    *,
    text: str | None,
    model: str | None,
    tag: str | None,
    status: str | None,
    kind: str | None = None,
) -> list[Record]:
    """Records matching every given filter, oldest → newest (see ``History.find``)."""
    narrowed = narrow(index, model=model, tag=tag, status=status, text=text)
    rows = index.select(narrowed.where, narrowed.params)
    found = []
    for row in rows:
        rec = Record._from_row(row, root)
        if kind is not None and rec.kind != kind:
            continue
        if narrowed.needle is not None and not mentions(rec, narrowed.needle):
            continue
        found.append(rec)
    return found


@dataclass(frozen=True)
class Narrowed:
    """SQL that selects every record a filter may match (``where`` with ``params``); the
    rows it finds match exactly once :func:`mentions` accepts them for ``needle`` (the
    casefolded text, ``None`` without one). Model, status and tag are exact in SQL."""

    where: str
    params: tuple[Any, ...]
    needle: str | None


def narrow(
    index: Index,
    *,
    model: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    text: str | None = None,
) -> Narrowed:
    """The one narrowing rule of ``find`` (and of the Jupyter sidebar's pages)."""
    clauses: list[str] = []
    params: list[Any] = []
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if tag is not None:
        # Exact, on the decoded list: the column keeps non-ASCII tags unescaped.
        clauses.append("EXISTS (SELECT 1 FROM json_each(records.tags) WHERE value = ?)")
        params.append(tag)
    needle = text.casefold() if text else None
    if needle is not None and needle.isascii():
        # LIKE folds ASCII case only, so only an ASCII needle may narrow in SQL: prompts (a
        # scan of the small prompt index), or revised prompts, in the documents of the few
        # records that have one (their own index; the needle escaped as JSON escapes text).
        # mentions() then drops rows that matched elsewhere in a document.
        index.ensure_search_indexes()
        clauses.append(
            f"id IN (SELECT id FROM records WHERE {PROMPT_LIKE} UNION "
            f"SELECT id FROM records WHERE {HAS_REVISED} AND {DOC_LIKE})"
        )
        params += [prompt_pattern(needle), doc_pattern(needle)]
    return Narrowed(" AND ".join(clauses) or "1", tuple(params), needle)


def prompt_pattern(needle: str) -> str:
    """:data:`PROMPT_LIKE`'s parameter for an ASCII ``needle`` (LIKE folds ASCII case only,
    so every prompt it matches contains the needle, casefolded: no Python check needed)."""
    return f"%{_like(needle)}%"


def doc_pattern(needle: str) -> str:
    """:data:`DOC_LIKE`'s parameter: the needle as the JSON document spells it. It may match
    elsewhere in a document, so the rows it finds are checked with :func:`mentions`."""
    return f"%{_like(json.dumps(needle)[1:-1])}%"


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mentions(rec: Record, needle: str) -> bool:
    """True when ``needle`` (casefolded) is in the record's prompt or a revised prompt."""
    if needle in rec.prompt.casefold():
        return True
    return any(needle in p.casefold() for p in rec.revised_prompts)
