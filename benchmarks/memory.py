"""4. Memory: RSS growth of a process holding 500 generations (Generation objects in a list)
vs holding PIL images of the same 500 results.

The client runs in a fresh worker process (``python -m benchmarks.memory '<json>'``) and the
simulator in this one, so the simulator's buffers and render cache are not charged to the
client. Images are 1024² PNGs with the simulator's smooth texture: a decoded PIL image costs
width × height × bands whatever the texture, and this keeps 500 downloads quick.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

from ._harness import (
    BENCH_KEY,
    PHOTO_MODEL,
    PHOTO_SIZE,
    Result,
    mb,
    need,
    rss_bytes,
    run_worker,
    secs,
    simulator,
    workdir,
)

TITLE = "Memory (500 generations held)"
COUNT = 500
WARMUP = 5
GOAL_BYTES = 150e6


def run() -> Result:
    need("cometnb._client.client")
    need("cometnb.history")
    result = Result(TITLE)
    with simulator() as sim, workdir("memory-") as tmp:
        args = {"base_url": sim.base_url, "history": str(tmp / "h"), "count": COUNT}
        answer = run_worker("benchmarks.memory", args)
    gens, pil = answer["generations_growth"], answer["pil_growth"]
    result.row("generations (each 1024² PNG, smooth texture)", f"{answer['ok']} ok of {COUNT}")
    result.row("time to generate (concurrency 4)", secs(answer["seconds"]))
    result.row("RSS before (client warmed up)", mb(answer["rss_start"]))
    result.row("RSS growth holding 500 Generation objects", mb(gens))
    result.row("RSS growth holding 500 PIL images as well", mb(pil))
    result.row(
        "  per Generation / per PIL image", f"{gens / COUNT / 1e3:.1f} KB / {mb(pil / COUNT)}"
    )
    result.notes.append(
        "Client in a fresh worker process, simulator in the parent; one prompt with 500 "
        "different `user` values (one render), held as the list generate_many returns."
    )
    result.goal(
        "RSS growth after 500 generations < 150 MB",
        f"< {mb(GOAL_BYTES)}",
        mb(gens),
        gens < GOAL_BYTES and answer["ok"] == COUNT,
        "Generation/GeneratedImage objects must not keep image bytes, previews or response "
        "text alive; fix: keep only paths and read bytes lazily (GeneratedImage.data already "
        "does), and drop the parsed response once stored",
    )
    return result


# --- the worker (a fresh process) -----------------------------------------------------------


def _worker(args: dict[str, Any]) -> dict[str, Any]:
    import time

    from cometnb._client.client import Client
    from cometnb._core.generations import ImageRequest
    from cometnb.history import History

    client = Client(api_key=BENCH_KEY, base_url=args["base_url"], history=History(args["history"]))

    def batch(n: int, tag: str) -> list[Any]:
        # One prompt (distinct ``user`` values) so the simulator renders once and serves
        # from its cache: it runs in the parent process, on the same 2 cores.
        reqs = [
            ImageRequest(tag, model=PHOTO_MODEL, size=PHOTO_SIZE, user=f"u{i}") for i in range(n)
        ]
        return list(client.generate_many(reqs, concurrency=4))

    batch(WARMUP, "warm-up")  # imports, connection pool, SQLite, Pillow codecs
    gc.collect()
    rss_start = rss_bytes()
    start = time.perf_counter()
    gens = batch(args["count"], "memory test")
    seconds = time.perf_counter() - start
    gc.collect()
    rss_gens = rss_bytes()
    pils = [g.images[0].pil() for g in gens if g.ok]
    gc.collect()
    rss_pil = rss_bytes()
    client.close()
    return {
        "ok": sum(1 for g in gens if g.ok),
        "seconds": seconds,
        "rss_start": rss_start,
        "generations_growth": rss_gens - rss_start,
        "pil_growth": rss_pil - rss_gens,
        "pil_count": len(pils),
    }


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
