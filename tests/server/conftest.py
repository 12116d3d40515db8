"""Fixtures of the server tests: one real server over seeded histories for the session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from _seed_history import seed, seed_mixed

from server.jupyter import Server, start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the route tests. Its root holds the main seeded history
    (``proj/cometnb-history``: 220 mixed records and the extras of ``seed_mixed``), one three
    levels down, ones the walk must skip, and ``$COMETNB_HISTORY`` outside the root."""
    base = tmp_path_factory.mktemp("server")
    root = base / "root"
    ids = seed_mixed(root / "proj" / "cometnb-history", 220)
    seed(root / "a" / "b" / "c" / "cometnb-history", 3)  # deepest found
    seed(root / "a" / "b" / "c" / "d" / "cometnb-history", 2)  # too deep
    seed(root / ".hidden" / "cometnb-history", 2)
    seed(root / "node_modules" / "pkg" / "cometnb-history", 2)
    (root / "venv").mkdir()
    (root / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    seed(root / "venv" / "cometnb-history", 2)
    seed(root / "live" / "cometnb-history", 5)  # the one tests write to while serving
    outside = base / "elsewhere" / "cometnb-history"
    seed(outside, 4)
    secret = base / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n not for the browser")
    srv = start_server(
        root, base / "home", token=secrets.token_hex(16), env={"COMETNB_HISTORY": str(outside)}
    )
    srv.ids = {**ids, "outside": str(outside), "secret": str(secret)}
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="session")
def main_id(server: Server) -> str:
    return server.history_id("proj/cometnb-history")


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
