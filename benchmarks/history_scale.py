"""7. History: open a 5,000-record history and iterate it, in a fresh process.

The history is built first (not timed; on /dev/shm when present) through
``History.record_success`` with small 64² PNGs
and a failed record every 50th, which is what the client itself calls. The worker then opens
it, takes ``len``, iterates every record reading the fields a history view shows, and runs one
text search; time and RSS growth are measured around that.
"""

from __future__ import annotations

import gc
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from ._harness import Result, mb, ms, need, rss_bytes, run_worker, secs, workdir

SHM = Path("/dev/shm")
TITLE = "History (5,000 records: open + iterate)"
RECORDS = 5000
GOAL_S = 1.0
GOAL_BYTES = 50e6


def run() -> Result:
    history_mod = need("cometnb.history")
    result = Result(TITLE)
    # On a tmpfs when there is one: fsync is free there, so building 5,000 records takes
    # seconds instead of a minute; reading is from the page cache either way.
    with workdir("history-", base=SHM if SHM.is_dir() else None) as tmp:
        where = "tmpfs" if tmp.is_relative_to(SHM) else "benchmarks/_work"
        build_s = _build(history_mod, tmp / "h")
        answer = run_worker("benchmarks.history_scale", {"history": str(tmp / "h")})
    result.row("records (1 in 50 failed), built via record_success", f"{answer['count']:,}")
    result.row(f"time to build (not a goal; in {where})", secs(build_s))
    result.row("open History(path)", ms(answer["open_s"]))
    result.row("iterate all records (prompt, params, status, images, tags)", ms(answer["iter_s"]))
    result.row("open + iterate", ms(answer["open_s"] + answer["iter_s"]))
    result.row("find(text=...) over all records", ms(answer["find_s"]))
    result.row("RSS growth (open + iterate, records kept)", mb(answer["growth"]))
    total = answer["open_s"] + answer["iter_s"]
    ok_count = answer["count"] == RECORDS
    result.goal(
        "load + iterate 5,000 records < 1 s",
        f"< {ms(GOAL_S)}",
        ms(total),
        total < GOAL_S and ok_count,
        "per-record cost is too high (one SQL query or file read per record?); fix: fetch "
        "rows in one query and build Records lazily",
    )
    result.goal(
        "added memory < 50 MB",
        f"< {mb(GOAL_BYTES)}",
        mb(answer["growth"]),
        answer["growth"] < GOAL_BYTES and ok_count,
        "records hold more than their row (images or previews loaded?); fix: keep paths "
        "only and parse params JSON on demand",
    )
    return result


def _build(history_mod: Any, path: Any, records: int = RECORDS) -> float:
    from PIL import Image

    models = need("cometnb._core.generations")
    errors = need("cometnb._core.errors")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 140, 200)).save(buf, "PNG")
    png = buf.getvalue()
    hist = history_mod.History(path)
    start = time.perf_counter()
    _fill(hist, models, errors, png, records)
    return time.perf_counter() - start


def _fill(hist: Any, models: Any, errors: Any, png: bytes, records: int) -> None:
    for i in range(records):
        body = {"model": "gpt-image-1-mini", "prompt": f"record {i}: a kite over dunes"}
        body["size"] = "1024x1024"
        if i % 50 == 49:
            err = errors.APIError("upstream failed", status=502)
            hist.record_failure(body, err, elapsed_s=0.1, tags=("bench",))
            continue
        api = models.ApiResult(images=[models.ApiImage(png, "png", 64, 64)], usage={"n": 1})
        hist.record_success(body, api, elapsed_s=0.1, tags=("bench",))


# --- the worker (a fresh process) -----------------------------------------------------------


def _worker(args: dict[str, Any]) -> dict[str, Any]:
    from cometnb.history import History

    # Import what opening touches first, so the growth is the records, not the modules.
    History(args["history"] + "-warmup")
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    hist = History(args["history"])
    count = len(hist)
    opened = time.perf_counter()
    kept = []
    for rec in hist:
        _ = (rec.prompt, rec.params, rec.status, rec.images, rec.tags, rec.created_at)
        kept.append(rec)
    done = time.perf_counter()
    found = len(list(hist.find(text="record 4999")))
    find_s = time.perf_counter() - done
    gc.collect()
    return {
        "count": count,
        "iterated": len(kept),
        "found": found,
        "open_s": opened - start,
        "iter_s": done - opened,
        "find_s": find_s,
        "growth": rss_bytes() - before,
    }


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
