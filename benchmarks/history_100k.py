"""10. History at scale: a 100,000-record history answers len, h[-1], get, find, spend by SQL.

Built once (not timed): 1,000 records through ``History.record_success`` (64² PNGs, a failed
record every 50th), then their index rows copied with new ids until there are 100,000 (the
copies name the same small image files: this measures the index, not the disk). A fresh worker
process then opens the history and times each question alone, and the RSS growth over all of
them: nothing may load every record.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from ._harness import Result, mb, ms, need, rss_bytes, run_worker, secs, workdir
from .history_scale import SHM, _build

TITLE = "History at scale (100,000 records: open, len, h[-1], get, find, spend)"
RECORDS = 100_000
SEED = 1_000
GOAL_S = 0.100
GOAL_BYTES = 50e6
CALLS = (
    "open History(path)",
    "len(h)",
    "h[-1]",
    "h.get(id)",
    "h.find(text=...)",
    "h.spend()",
    'h.spend(by="model")',
)


def run() -> Result:
    history_mod = need("cometnb.history")
    need("cometnb._storage.queries")
    result = Result(TITLE)
    with workdir("history100k-", base=SHM if SHM.is_dir() else None) as tmp:
        start = time.perf_counter()
        _build(history_mod, tmp / "h", records=SEED)
        _copy_rows(tmp / "h" / "index.sqlite3", RECORDS)
        build_s = time.perf_counter() - start
        answer = run_worker("benchmarks.history_100k", {"history": str(tmp / "h")})
    result.row("records", f"{answer['count']:,}")
    result.row("time to build (not a goal)", secs(build_s))
    for name in CALLS:
        result.row(name, ms(answer["times"][name]))
    result.row("find(text=...) matches", str(answer["found"]))
    result.row("spend() (USD)", f"{answer['spent']:,.2f}")
    result.row("spend() equals spend(h.records()) (checked after)", str(answer["same"]))
    result.row("RSS growth over all of the above", mb(answer["growth"]))
    for name in CALLS:
        spent = answer["times"][name]
        result.goal(
            f"{name} < 100 ms at 100,000 records",
            f"< {ms(GOAL_S)}",
            ms(spent),
            spent < GOAL_S and answer["count"] == RECORDS and answer["same"],
            "the call loads every record; fix: answer it with one SQL query",
        )
    result.goal(
        "RSS growth < 50 MB",
        f"< {mb(GOAL_BYTES)}",
        mb(answer["growth"]),
        answer["growth"] < GOAL_BYTES,
        "records are held in memory; fix: answer from the index",
    )
    result.notes.append(
        "spend() reads the records_spend index, not the documents; the history was made by "
        "this code, so the index exists (an older folder makes it on its first spend question)."
    )
    return result


def _copy_rows(db: Path, total: int) -> None:
    """Copy the seed rows with new ids (same time prefix order) until ``total`` rows exist."""
    conn = sqlite3.connect(db)
    try:
        seed = conn.execute("SELECT COUNT(*), MAX(seq) FROM records").fetchone()
        count, top = int(seed[0]), int(seed[1])
        with conn:
            for copy in range(1, -(-total // count)):
                take = min(count, total - copy * count)
                conn.execute(
                    "INSERT INTO records (id, seq, created_at, prompt, model, status, tags, doc) "
                    "SELECT id || printf('-c%05d', ?), seq + ?, created_at, "
                    "prompt || printf(' copy %d', ?), model, status, tags, "
                    "json_set(doc, '$.request.prompt', prompt || printf(' copy %d', ?)) "
                    "FROM records WHERE seq <= ? ORDER BY seq LIMIT ?",
                    (copy, copy * top, copy, copy, top, take),
                )
    finally:
        conn.close()


# --- the worker (a fresh process) -----------------------------------------------------------


def _worker(args: dict[str, Any]) -> dict[str, Any]:
    from cometnb.history import History

    History(args["history"] + "-warmup")  # import what opening touches first
    gc.collect()
    before = rss_bytes()
    times: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        value = fn()
        times[name] = time.perf_counter() - start
        return value

    hist = timed(CALLS[0], lambda: History(args["history"]))
    count = timed(CALLS[1], lambda: len(hist))
    last = timed(CALLS[2], lambda: hist[-1])
    timed(CALLS[3], lambda: hist.get(last.id))
    found = timed(CALLS[4], lambda: hist.find(text="record 777: a kite over dunes copy 42"))
    spent = timed(CALLS[5], hist.spend)
    timed(CALLS[6], lambda: hist.spend(by="model"))
    gc.collect()
    growth = rss_bytes() - before
    # After the timings (this loads every record): the same answer as the Python ledger.
    from cometnb._storage.spend import spend

    same = abs(spend(hist.records()) - spent) < 1e-6
    return {
        "count": count,
        "found": len(found),
        "spent": spent,
        "same": same,
        "times": times,
        "growth": growth,
    }


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
