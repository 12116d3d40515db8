"""The offline simulator: a loopback server that follows CometAPI's image API contract.

``python -m cometnb.sim`` runs one in a terminal; in Python::

    from cometnb.sim import SimServer
    with SimServer() as sim:
        client = Client(api_key="sim-any-key-for-the-simulator", base_url=sim.base_url)

It stands apart from the client: it imports only the core (for the capability table).
"""

from __future__ import annotations

from cometnb.sim.cli import main
from cometnb.sim.control import FAULT_KINDS, SimServer, leave_simulator, use_if_keyless

__all__ = ["FAULT_KINDS", "SimServer", "leave_simulator", "main", "use_if_keyless"]
