"""``python -m cometnb.sim``: run the simulator in the foreground."""

from __future__ import annotations

import sys

from cometnb.sim.cli import main

sys.exit(main())
