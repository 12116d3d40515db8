"""13. The blocking client's two designs, per image (issue 22, point 2).

``Client.generate`` can be a generated sync twin of the async engine (as httpcore does with
unasync: every I/O step written again without ``await``), or drive the async engine over the
session's private loop thread. Until commit ``TWIN_COMMIT`` the client *was* the hand-kept
sync twin, which is what a generated one would be at run time; so both designs are measured
side by side from real code: that commit's ``cometnb`` (``git archive``) and this tree's, each in
a worker process of its own, against one simulator, interleaved per round with the OpenAI SDK
path in this process — the per-image goal of §1 (within 1.2× of the SDK path).

Each worker times its own ``Client.generate`` call (gc paused, as :func:`timed` does), so the
pipe to the worker is not charged; untimed after every call, as in §1, the worker finishes its
previews and ``os.sync()`` runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from ._harness import (
    BENCH_KEY,
    PHOTO_MODEL,
    PHOTO_SIZE,
    PYTHON,
    ROOT,
    NotRun,
    Result,
    interleaved,
    median,
    ms,
    ratio,
    simulator,
    workdir,
)

TITLE = "Blocking client designs: sync twin vs the async engine over a loop thread (per image)"
TWIN_COMMIT = "4c47f8a"  # main before issue 22 point 2: the blocking client as a sync twin
ROUNDS = 41
PROMPT = "a harbour at dawn, photographed on film"
GOAL_RATIO_SDK = 1.2

# One Client per worker; "go" → one generate, timed here; "quit" → close and exit.
_WORKER = """
import gc, json, sys, time
from cometnb._client.client import Client
from cometnb._storage.preview_queue import previews
from cometnb.history import History
base_url, folder, key, model, size, prompt = sys.argv[1:7]
client = Client(api_key=key, base_url=base_url, history=History(folder))
design = "sync twin" if hasattr(Client, "_attempt") else "engine"
print(json.dumps({"ready": True, "client": design}), flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        break
    gc.collect(); gc.disable()
    start = time.perf_counter()
    gen = client.generate(prompt, model=model, size=size)
    elapsed = time.perf_counter() - start
    gc.enable()
    previews().drain(120)  # untimed, as in section 1: not charged to the next call
    print(json.dumps({"s": elapsed, "ok": gen.ok}), flush=True)
client.close()
previews().drain(120)
"""


class _Worker:
    """A Python process running one design's ``Client`` (its package first on the path)."""

    def __init__(self, package_root: Path, base_url: str, folder: Path) -> None:
        args = [base_url, str(folder), BENCH_KEY, PHOTO_MODEL, PHOTO_SIZE, PROMPT]
        self.proc = subprocess.Popen(
            [PYTHON, "-c", _WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=folder.parent,  # not the repository: its cometnb must not shadow the other
            env={**os.environ, "PYTHONPATH": str(package_root)},
        )
        self.design = str(self._answer()["client"])
        self.times: list[float] = []  # as the worker measured them

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a benchmark worker stopped")
        return dict(json.loads(line))

    def generate(self, _round: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        answer = self._answer()
        if not answer["ok"]:
            raise RuntimeError("a generation failed")
        self.times.append(float(answer["s"]))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(180)


@contextmanager
def _twin_tree() -> Iterator[Path]:
    """``cometnb`` as it was at :data:`TWIN_COMMIT`, in a scratch folder."""
    if shutil.which("git") is None:
        raise NotRun("git is needed to check out the sync-twin client")
    done = subprocess.run(
        ["git", "archive", "--format=tar", TWIN_COMMIT, "cometnb"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise NotRun(f"commit {TWIN_COMMIT} is not in this clone (the sync-twin client)")
    with tempfile.TemporaryDirectory(prefix="engine-twin-") as tmp:
        with tarfile.open(fileobj=BytesIO(done.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def run() -> Result:
    from openai import OpenAI

    result = Result(TITLE)
    with (
        _twin_tree() as twin_root,
        simulator(texture="photo") as sim,
        workdir("designs-") as tmp,
    ):
        (tmp / "sdk").mkdir()
        sdk = OpenAI(base_url=sim.base_url, api_key=BENCH_KEY, max_retries=0)
        twin = _Worker(twin_root, sim.base_url, tmp / "twin")
        engine = _Worker(ROOT, sim.base_url, tmp / "engine")
        if (twin.design, engine.design) != ("sync twin", "engine"):
            raise RuntimeError(f"workers ran {twin.design!r} and {engine.design!r}")

        def with_sdk(i: int) -> None:
            res = sdk.images.generate(model=PHOTO_MODEL, prompt=PROMPT, size=PHOTO_SIZE)
            raw = base64.b64decode((res.data or [])[0].b64_json or "")
            (tmp / "sdk" / f"{i}.png").write_bytes(raw)

        paths: dict[str, Callable[[int], None]] = {
            "sdk": with_sdk,
            "twin": twin.generate,
            "engine": engine.generate,
        }
        try:
            times = interleaved(paths, rounds=ROUNDS, settle=os.sync)
        finally:
            twin.close()
            engine.close()
            sdk.close()
    warm = 2  # the workers timed the warm-up rounds too
    _report(result, median(times["sdk"]), median(twin.times[warm:]), median(engine.times[warm:]))
    return result


def _report(result: Result, sdk: float, twin: float, engine: float) -> None:
    result.row("image", f"{PHOTO_SIZE} PNG, photo-like ({ROUNDS} rounds, interleaved)")
    result.row("OpenAI SDK + b64 + write (median)", ms(sdk))
    result.row(f"sync twin: Client.generate at {TWIN_COMMIT} (median)", ms(twin))
    result.row("engine over the loop thread: Client.generate now (median)", ms(engine))
    result.row("sync twin / SDK", ratio(twin / sdk))
    result.row("engine over the loop thread / SDK", ratio(engine / sdk))
    result.row("engine over the loop thread / sync twin", ratio(engine / twin))
    # The per-image goal (≤ 1.2× the SDK) is judged in §1, where every path runs in the same
    # process and the comparison is repeated in fresh processes; here the SDK runs in this
    # process and each design in a worker of its own, so a ratio to the SDK also carries the
    # processes' different memory states (0.9–1.9× from run to run on this VM, 2026-12-06).
    # What this benchmark decides is the design: the engine against the twin, reported as rows.
    for name, value in (("sync twin", twin), ("engine over the loop thread", engine)):
        verdict = "within" if value <= GOAL_RATIO_SDK * sdk else "over"
        result.row(
            f"{name} against §1's goal (≤ {GOAL_RATIO_SDK}× the SDK; not judged here)",
            f"{ratio(value / sdk)}: {verdict}",
        )
