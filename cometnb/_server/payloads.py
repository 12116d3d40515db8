"""The JSON the routes answer with: records, one record in full, histories and facets.

Shapes are the contract of DESIGN.md §1 (the sidebar and code outside this repository read
them); fields may be added, none renamed. Every value comes from the stored record as
``History`` reads it (``Record``): user text is sent as text, never as markup.
"""

from __future__ import annotations

from typing import Any

from cometnb._server.catalog import FoundHistory
from cometnb._storage.browse import Facets, Revision
from cometnb._storage.export import record_values
from cometnb._storage.records import Record

__all__ = ["facets_json", "history_json", "record_detail", "record_summary", "revision_json"]


def record_summary(rec: Record) -> dict[str, Any]:
    """One row of ``GET cometnb/api/records``."""
    return {
        **record_values(rec),
        "created_at": rec.created_at.isoformat(),
        "timestamp": rec.timestamp,
        "meta": rec.meta,
        "images": [
            {
                "index": k,
                "width": img.width,
                "height": img.height,
                "format": img.format,
                "revised_prompt": img.revised_prompt,
            }
            for k, img in enumerate(rec.images)
        ],
    }


def record_detail(rec: Record, lineage: list[Record], children: list[str]) -> dict[str, Any]:
    """``GET cometnb/api/records/ID``: the summary plus everything a detail view shows."""
    return {
        **record_summary(rec),
        "error_info": rec.error_info,
        "cost_basis": rec.cost.basis,
        "usage": rec.usage,
        "version": rec.version,
        "revised_prompts": rec.revised_prompts,
        "sources": [
            {**src.to_dict(), "position": k, "available": src.path is not None}
            for k, src in enumerate(rec.sources)
        ],
        # Ancestors by ``parent``, oldest first, ending with this record (as h.lineage()).
        "lineage": [record_summary(r) for r in lineage],
        "children": children,
    }


def revision_json(rev: Revision) -> dict[str, Any]:
    return {"records": rev.count, "revision": rev.token, "newest": rev.newest}


def history_json(found: FoundHistory, rev: Revision) -> dict[str, Any]:
    """One entry of ``GET cometnb/api/histories``."""
    return {"id": found.id, "path": found.path, **revision_json(rev)}


def facets_json(facets: Facets) -> dict[str, Any]:
    def counted(values: dict[str, int]) -> list[dict[str, Any]]:
        return [{"value": k, "count": n} for k, n in sorted(values.items())]

    return {
        "models": counted(facets.models),
        "tags": counted(facets.tags),
        "statuses": counted(facets.statuses),
        "first": facets.first,
        "last": facets.last,
    }
