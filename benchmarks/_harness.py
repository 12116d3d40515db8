"""What every benchmark shares: results and goals, timing helpers, the machine description,
simulator start-up and clean subprocess workers.

A benchmark module exposes ``TITLE`` and ``run() -> Result``. It measures; it never asserts.
Goals are recorded as PASS/MISS with the measured figure and, when missed, why and what would
fix it — :mod:`benchmarks.report` turns that into the table and ``RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import importlib.metadata
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cometnb.sim import SimServer

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"  # git-ignored scratch space (history folders, notebooks)
PYTHON = sys.executable
# A placeholder key: the simulator accepts any key unless told otherwise.
BENCH_KEY = "sk-bench-0000000000000000"
PHOTO_MODEL = "gpt-image-1-mini"
PHOTO_SIZE = "1024x1024"


class NotRun(Exception):
    """The benchmark could not run (a module it measures has not landed yet)."""


@dataclass
class Goal:
    """One goal: what was promised, what was measured, and (if missed) why and the fix."""

    name: str
    target: str
    measured: str
    passed: bool
    why: str = ""

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"


@dataclass
class Result:
    """The outcome of one benchmark: a measurement table, its goals and free-form notes."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    error: str | None = None  # set when the benchmark could not run

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def goal(self, name: str, target: str, measured: str, passed: bool, why: str = "") -> None:
        self.goals.append(Goal(name, target, measured, passed, "" if passed else why))


# --- formatting ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def ratio(x: float) -> str:
    return f"{x:.2f}×"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once with the garbage collector paused; return (seconds, result)."""
    gc.collect()
    gc.disable()  # a collection mid-call would be charged to whichever path ran it
    try:
        start = time.perf_counter()
        value = fn()
        return time.perf_counter() - start, value
    finally:
        gc.enable()


def interleaved(
    paths: dict[str, Callable[[int], Any]],
    rounds: int,
    warmup: int = 2,
    settle: Callable[[], Any] | None = None,
) -> dict[str, list[float]]:
    """Time each path once per round, in an order shuffled per round (seeded, so every run
    shuffles alike): no path always runs first, nor always right after the same one (what a
    path leaves running, such as cometnb's background previews, lands on all the others).

    Warm-up rounds (not recorded) fill caches: the simulator's rendered image, TLS-free
    connection pools, imports made on first use. ``settle``, when given, runs untimed after
    every call, so that what one path leaves behind is not charged to the next.
    """
    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    order = random.Random(17)
    for r in range(warmup + rounds):
        for name in order.sample(names, len(names)):
            elapsed, _ = timed(lambda name=name, r=r: paths[name](r))  # type: ignore[misc]
            if r >= warmup:
                times[name].append(elapsed)
            if settle is not None:
                settle()
    return times


# --- the simulator ---------------------------------------------------------------------------


def sim_class() -> type[SimServer]:
    try:
        from cometnb.sim import SimServer
    except ImportError as exc:  # the simulator has not landed yet
        raise NotRun(f"cometnb.sim is not available ({exc})") from exc
    return SimServer


@contextlib.contextmanager
def simulator(**kwargs: Any) -> Iterator[SimServer]:
    """A started simulator on a free loopback port, stopped afterwards."""
    server = sim_class()(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def workdir(prefix: str, base: Path | None = None) -> Iterator[Path]:
    """A scratch folder under ``base`` (default ``benchmarks/_work``: on disk, git-ignored),
    removed afterwards."""
    base = base or WORK
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as tmp:
        try:
            yield Path(tmp)
        finally:
            drain_previews()  # previews made after each commit still write into the folder


def drain_previews(timeout: float = 120.0) -> None:
    """Wait until the history's background previews are made (when cometnb made any)."""
    queue = sys.modules.get("cometnb._storage.preview_queue")
    if queue is not None:
        queue.previews().drain(timeout)


def need(module: str) -> Any:
    """Import a cometnb module or raise :class:`NotRun` naming it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotRun(f"{module} is not available yet ({exc})") from exc


# --- clean subprocess workers ----------------------------------------------------------------


def run_worker(module: str, args: dict[str, Any], timeout: float = 240.0) -> dict[str, Any]:
    """Run ``python -m <module> '<json args>'`` in a fresh interpreter; return its JSON answer.

    Memory and start-up figures need a process that nothing else has touched. The worker
    prints one JSON object as its last stdout line.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [PYTHON, "-m", module, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        raise RuntimeError(f"worker {module} failed: " + " | ".join(tail))
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# --- the machine -----------------------------------------------------------------------------

PACKAGES = ("cometnb", "httpx", "Pillow", "openai", "ipython", "ipywidgets", "nbclient", "psutil")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "packages": ", ".join(versions),
    }
