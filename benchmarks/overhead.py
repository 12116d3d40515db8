"""1. Per-image overhead at zero latency for a 1024² photo-like PNG (~3 MB).

Three ways to get one image from the same simulator onto disk, interleaved in rounds:

* **floor** — the least any client can do: httpx POST, ``json`` parse, base64 decode, write file;
* **SDK** — ``OpenAI(base_url=sim).images.generate(...)`` + base64 decode + write file;
* **cometnb** — ``Client.generate`` (decode, sniff, store original + preview, commit the record),
  then ``generation_html`` (what the magic renders).

All three write to the same disk (``benchmarks/_work``), as a user's loop would: a 3 MB write
into the page cache costs about 1 ms on a tmpfs but several on an ext4 disk, so a floor on a
tmpfs would charge the disk to cometnb alone. So that no path pays for another's dirty pages
(an fsync or a journal commit flushing them inside someone else's timed call), ``os.sync()``
runs untimed after every call. A fourth path, the floor writing to a tmpfs (/dev/shm), is
timed alongside for reference only: it shows what the disk itself costs on this machine.

Every request asks for the same prompt so the simulator serves its cached render: server time is
then only the transfer, which makes the ratios as strict as they can be.

The whole comparison runs in :data:`PROCESSES` fresh interpreters (``python -m
benchmarks.overhead`` is one), and the goals read the median of their ratios: on this VM a
process draws a cheap or a dear state for fresh memory, and one process's medians follow it.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._harness import (
    BENCH_KEY,
    PHOTO_MODEL,
    PHOTO_SIZE,
    Result,
    drain_previews,
    interleaved,
    median,
    ms,
    need,
    ratio,
    run_worker,
    simulator,
    timed,
    workdir,
)

SHM = Path("/dev/shm")
TITLE = "Per-image overhead (1024² photo-like PNG, zero latency)"
ROUNDS = 41  # the disk write varies by a few ms from call to call: many rounds steady the medians
PROMPT = "a harbour at dawn, photographed on film"
GOAL_RATIO_FLOOR = 1.5
GOAL_RATIO_SDK = 1.2
GOAL_OVERHEAD_S = 0.060
STEP_JSON = "json parse of the response (floor does it too)"
STEP_B64 = "base64 decode (strict)"
STEP_PREVIEW = "preview (512 px WebP; made after the commit, off the request path)"
STEP_STORE = "history store (original, row; preview queued)"
STEP_FSYNC = "fsync"
FSYNC_CALLS = "fsync calls"
# Each path's median moves by several ms between processes on this VM (touching fresh memory
# costs a page fault per 4 KB that is dear here: the same 2.8 MB write took 0.6 ms in one process
# and 19 ms in the next), and the ratio follows whichever path drew the dear state; so the
# comparison runs in several fresh processes and the goals read the median of their ratios.
PROCESSES = 7
PATHS = ("floor", "sdk", "cometnb", "floor-tmpfs")
NOTE = (
    "Same prompt every time, so the simulator serves one cached render. The floor, the SDK "
    "and cometnb all write to the same disk folder, as a user's loop would, and os.sync() "
    "runs untimed after every call so that no path's dirty pages are flushed inside "
    "another's timed call. (Until 2026-12-02 the floor and SDK wrote to a tmpfs, which "
    "charged the disk's write cost to cometnb alone; the floor on a tmpfs is still timed, "
    "for reference, and is not a goal.) cometnb's previews are made on a background "
    "thread after each commit; since 2026-12-06 they are finished untimed after each "
    "call, with os.sync(), instead of landing on whichever path ran next (they slowed the "
    "floor and the SDK path by up to 10 ms and cometnb's next call alike, so the ratios "
    "moved by 0.3 from run to run). A preview's own cost is the 'step alone' row below; "
    "the job is queued at the commit, inside cometnb's call, and starts once the call "
    "has returned (as in real use)."
)


def run() -> Result:
    """The comparison in :data:`PROCESSES` fresh interpreters, one after another; the goals are
    judged on the median of their ratios (see the module's docstring)."""
    need("cometnb._client.client")
    result = Result(TITLE)
    runs = [run_worker("benchmarks.overhead", {}, timeout=600) for _ in range(PROCESSES)]
    _report(result, runs)
    result.notes.append(NOTE)
    return result


def measure() -> dict[str, Any]:
    """One process's measurement: every path's times, the render time and the step breakdown."""
    client_mod = need("cometnb._client.client")
    history_mod = need("cometnb.history")
    cards = need("cometnb._views.cards")
    import httpx
    from openai import OpenAI

    with (
        simulator(texture="photo") as sim,
        workdir("overhead-") as tmp,
        workdir("overhead-plain-") as plain,
        workdir("overhead-shm-", base=SHM if SHM.is_dir() else None) as shm,
    ):
        body = {"model": PHOTO_MODEL, "prompt": PROMPT, "size": PHOTO_SIZE}
        http = httpx.Client(headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=60)
        sdk = OpenAI(base_url=sim.base_url, api_key=BENCH_KEY, max_retries=0)
        hist = history_mod.History(tmp / "hist")
        comet = client_mod.Client(api_key=BENCH_KEY, base_url=sim.base_url, history=hist)
        url = f"{sim.base_url}/images/generations"
        (plain / "floor").mkdir()
        (plain / "sdk").mkdir()
        gens: list[Any] = []

        def floor_into(folder: Path) -> Callable[[int], None]:
            def floor(i: int) -> None:
                data = json.loads(http.post(url, json=body).content)
                raw = base64.b64decode(data["data"][0]["b64_json"])
                (folder / f"{i}.png").write_bytes(raw)

            return floor

        def with_sdk(i: int) -> None:
            res = sdk.images.generate(model=PHOTO_MODEL, prompt=PROMPT, size=PHOTO_SIZE)
            raw = base64.b64decode((res.data or [])[0].b64_json or "")
            (plain / "sdk" / f"{i}.png").write_bytes(raw)

        def with_cometnb(i: int) -> None:
            gens.append(comet.generate(PROMPT, model=PHOTO_MODEL, size=PHOTO_SIZE))

        try:
            times = interleaved(
                {
                    "floor": floor_into(plain / "floor"),
                    "sdk": with_sdk,
                    "cometnb": with_cometnb,
                    "floor-tmpfs": floor_into(shm),
                },
                rounds=ROUNDS,
                settle=_settle,
            )
            image_bytes = next((plain / "floor").iterdir()).read_bytes()
            # What the magic renders for each result (previews read back from the history).
            render_times = [timed(lambda g=g: cards.generation_html(g))[0] for g in gens]
            breakdown = _breakdown(image_bytes, hist)
        finally:
            comet.close()
            http.close()
            sdk.close()
    return {
        "times": times,
        "render_s": median(render_times),
        "n_bytes": len(image_bytes),
        "steps": breakdown,
    }


def _settle() -> None:
    """Untimed, after every call of every path: cometnb's previews (made on a background thread
    after its commit, once ``generate`` has returned) are finished, then everyone's dirty pages
    are written. Neither is then charged to whichever path happens to run next."""
    drain_previews()
    os.sync()


def _breakdown(image: bytes, hist: Any) -> dict[str, float]:
    """Where cometnb's time goes: each step alone, on the same bytes (median of 5)."""
    decode = need("cometnb._core.images")
    previews = need("cometnb._core.images")
    models = need("cometnb._core.generations")
    text = base64.b64encode(image).decode()
    body = json.dumps({"data": [{"b64_json": text}]})
    fmt, width, height = decode.inspect_image(image)

    def store() -> None:
        api = models.ApiResult(images=[models.ApiImage(image, fmt, width, height)])
        hist.record_success({"model": PHOTO_MODEL, "prompt": PROMPT}, api, elapsed_s=0.0)

    steps = {
        STEP_JSON: lambda: json.loads(body),
        STEP_B64: lambda: decode.decode_b64_image(text),
        "inspect header": lambda: decode.inspect_image(image),
        STEP_PREVIEW: lambda: previews.make_preview(image, 512, encode="webp"),
        STEP_STORE: store,
    }
    found = {name: median([timed(fn)[0] for _ in range(5)]) for name, fn in steps.items()}
    found[STEP_FSYNC], found[FSYNC_CALLS] = _fsyncs(store)
    return found


def _fsyncs(fn: Callable[[], Any]) -> tuple[float, float]:
    """Time spent in ``os.fsync`` during one call of ``fn``, and how many calls."""
    real = os.fsync
    spent: list[float] = []

    def counting(fd: int) -> None:
        start = time.perf_counter()
        real(fd)
        spent.append(time.perf_counter() - start)

    os.fsync = counting
    try:
        fn()
    finally:
        os.fsync = real
    return sum(spent), float(len(spent))


def _report(result: Result, runs: list[dict[str, Any]]) -> None:
    """Rows and goals from every process's medians; a goal reads the median over processes."""
    per = [{k: median(run["times"][k]) for k in run["times"]} for run in runs]
    floor, sdk, comet, shm = (median([p[k] for p in per]) for k in PATHS)
    to_sdk = median([p["cometnb"] / p["sdk"] for p in per])
    to_floor = median([p["cometnb"] / p["floor"] for p in per])
    render_s = median([run["render_s"] for run in runs])
    steps = {k: median([run["steps"][k] for run in runs]) for k in runs[0]["steps"]}
    overhead = median([p["cometnb"] - p["floor"] for p in per]) + render_s
    result.row(
        "image",
        f"{PHOTO_SIZE} PNG, {runs[0]['n_bytes'] / 1e6:.2f} MB "
        f"({ROUNDS} rounds, interleaved, in each of {len(runs)} fresh processes)",
    )
    for n, p in enumerate(per, 1):
        result.row(
            f"process {n}: floor / SDK / cometnb (medians)",
            f"{ms(p['floor'])} / {ms(p['sdk'])} / {ms(p['cometnb'])} → cometnb / SDK "
            f"{ratio(p['cometnb'] / p['sdk'])}, / floor {ratio(p['cometnb'] / p['floor'])}",
        )
    result.row("floor: httpx + json + b64 + write (median of the processes' medians)", ms(floor))
    result.row("OpenAI SDK + b64 + write (median of the processes' medians)", ms(sdk))
    result.row("reference only: the floor writing to a tmpfs (median)", ms(shm))
    result.row("cometnb Client.generate (median of the processes' medians)", ms(comet))
    result.row("cometnb render: generation_html (median)", ms(render_s))
    result.row("cometnb / floor (median of the processes' ratios)", ratio(to_floor))
    result.row("cometnb / SDK (median of the processes' ratios)", ratio(to_sdk))
    result.row("reference only: cometnb / the floor on a tmpfs", ratio(comet / shm))
    result.row("cometnb client-side overhead (generate + render − floor)", ms(overhead))
    for step in (STEP_JSON, STEP_B64, "inspect header", STEP_PREVIEW, STEP_STORE):
        result.row(f"step alone: {step}", ms(steps[step]))
    result.row(
        "  of which os.fsync (one store)",
        f"{ms(steps[STEP_FSYNC])} in {steps[FSYNC_CALLS]:.0f} calls",
    )
    why = (
        f"beyond the floor's work cometnb stores the image in the history on the request path: "
        f"{ms(steps[STEP_STORE])} per store, of which {ms(steps[STEP_FSYNC])} is "
        f"{steps[FSYNC_CALLS]:.0f} fsync calls (the image and its folder) and the SQLite "
        f"commit; strict base64 costs {ms(steps[STEP_B64])}. The preview "
        f"({ms(steps[STEP_PREVIEW])}) is made after the call returns, on a background thread"
    )
    result.goal(
        "cometnb within 1.5× of the floor (same disk)",
        f"≤ {GOAL_RATIO_FLOOR}× floor",
        ratio(to_floor),
        to_floor <= GOAL_RATIO_FLOOR,
        why,
    )
    result.goal(
        f"cometnb within {GOAL_RATIO_SDK}× of the SDK path",
        f"≤ {GOAL_RATIO_SDK:.2f}× SDK",
        ratio(to_sdk),
        to_sdk <= GOAL_RATIO_SDK,
        why,
    )
    result.goal(
        "client-side overhead per image (decode, store, preview, render)",
        f"< {ms(GOAL_OVERHEAD_S)}",
        ms(overhead),
        overhead < GOAL_OVERHEAD_S,
        why,
    )


if __name__ == "__main__":  # a worker of :func:`run`: one process's measurement as JSON
    print(json.dumps(measure()))
