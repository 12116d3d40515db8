"""``python -m cometnb`` prints the version and where the history lives."""

from __future__ import annotations

from cometnb._core.settings import resolve_base_url, resolve_history_dir
from cometnb._version import __version__

print(f"cometnb {__version__}: history in {resolve_history_dir()}, API at {resolve_base_url()}")
print("Start the offline simulator with: python -m cometnb.sim")
