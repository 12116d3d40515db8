"""``python -m cometnb`` prints the version and where the history lives."""

from __future__ import annotations

from . import __version__
from ._settings import resolve_base_url, resolve_history_dir

print(f"cometnb {__version__}: history in {resolve_history_dir()}, API at {resolve_base_url()}")
print("Start the offline simulator with: python -m cometnb.sim")
