"""The one way cometnb builds a pandas DataFrame: pandas is optional (``cometnb[pandas]``), so it
is imported only here, on the first ``to_dataframe()`` call, with one clear message without it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cometnb._core.errors import CometError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["frame_by_id"]


def frame_by_id(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A DataFrame of ``rows`` indexed by their ``id`` column (kept as a column too).

    Example::

        >>> int(frame_by_id([{"id": "a", "n": 1}]).loc["a", "n"])
        1
    """
    try:
        import pandas as pd
    except ImportError:
        raise CometError(
            "to_dataframe() needs pandas, which is not installed",
            hint="Install it with: pip install cometnb[pandas]",
        ) from None
    frame = pd.DataFrame(list(rows), columns=list(columns) if columns is not None else None)
    indexed: pd.DataFrame = frame.set_index("id", drop=False)
    return indexed
