"""A real Jupyter server (a subprocess, as users run it) over a root holding seeded histories.

The server is this venv's ``jupyter server``: the cometnb extension is on because the install
put ``etc/jupyter/jupyter_server_config.d/cometnb.json`` there, not because a test enabled it.
Its Jupyter folders (config, data, runtime) are the test's own; it listens on loopback only,
and every wait is bounded (start, each request, stop).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

START_S = 90.0


@dataclass
class Server:
    """A running server: its URL, token, root folder and the ids the seeding returned."""

    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]
    ids: dict[str, Any] = field(default_factory=dict)

    def client(
        self, *, token: bool = True, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Client:
        sent = {"Authorization": f"token {self.token}"} if token else {}
        return httpx.Client(
            base_url=self.url, headers={**sent, **(headers or {})}, timeout=30.0, **kwargs
        )

    def history_id(self, path: str) -> str:
        with self.client() as c:
            found = c.get("/cometnb/api/histories").json()["histories"]
        return next(h["id"] for h in found if h["path"] == path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    root: Path, home: Path, *, token: str, env: dict[str, str] | None = None
) -> Server:
    """Start ``jupyter server`` over ``root`` with Jupyter's state under ``home``."""
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("COMETAPI_", "COMETNB_"))}
    environ.update(
        JUPYTER_CONFIG_DIR=str(home / "cfg"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "rt"),
        JUPYTER_PLATFORM_DIRS="1",
        **(env or {}),
    )
    cmd = [
        *("timeout", "600"),  # bounds the server's life even if pytest is killed
        *(sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root"),
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    log = home / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=home, env=environ, stdout=out, stderr=out)
    server = Server(f"http://127.0.0.1:{port}", token, root, log, proc)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("jupyter server exited:\n" + log.read_text())
        try:
            httpx.get(f"{server.url}/api/status", timeout=2.0)
            return server
        except httpx.TransportError:
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError("jupyter server did not start:\n" + log.read_text())


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)
