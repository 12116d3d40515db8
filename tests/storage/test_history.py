"""The history: durable records and files, lazy images, search, crash and concurrency safety."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from _history_helpers import api_result, body, image_bytes
from conftest import FAKE_KEY, assert_no_key_in_tree

from cometnb._core import settings as _settings
from cometnb._core.errors import (
    APIError,
    CancelledError,
    CometError,
    RateLimitError,
    ValidationError,
    register_secret,
)
from cometnb._storage import files as _files
from cometnb._storage.preview_queue import previews
from cometnb._storage.records import new_record_id
from cometnb._storage.writer import HistoryWriter
from cometnb.history import History, Record, history

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=REPO,
    )


# --- writing ---------------------------------------------------------------------------------


def test_success_stores_original_bytes_preview_and_metadata(hist: History) -> None:
    original = image_bytes(1024, 768, "PNG")
    result = api_result(original, usage={"total_tokens": 224}, size="1024x768", quality="low")
    rec = hist.record_success(
        body(size="1024x768", quality="low"), result, elapsed_s=2.5, tags=["foxes"]
    )

    assert rec.status == "ok" and rec.ok and rec.error is None
    assert (rec.prompt, rec.model) == ("a red fox in snow", "gpt-image-2")
    assert rec.params == {"size": "1024x768", "quality": "low"}
    assert rec.request == body(size="1024x768", quality="low")
    assert rec.usage == {"total_tokens": 224}
    assert rec.meta == {"size": "1024x768", "quality": "low", "created": 1_795_000_000}
    assert rec.elapsed_s == 2.5 and rec.tags == ("foxes",) and rec.origin is None
    assert rec.version and not rec.synthetic

    (img,) = rec.images
    assert img.path is not None and img.path.read_bytes() == original  # not re-encoded
    assert (img.format, img.width, img.height) == ("png", 1024, 768)
    assert img.preview_path is not None and img.preview_path.parent.name == "previews"
    assert previews().drain(10)  # made after the commit, off the request path
    preview = img.preview_path.read_bytes()
    assert len(preview) < len(original) or max(img.width, img.height) <= 512
    from cometnb._core.images import inspect_image

    assert max(inspect_image(preview)[1:]) <= _settings.active().thumbnail_px


def test_file_names_sort_by_time_and_carry_the_prompt(hist: History) -> None:
    recs = [
        hist.record_success(body(f"Prompt #{i}: Ünïcode / ../etc"), api_result(), elapsed_s=0.1)
        for i in range(3)
    ]
    names = [r.images[0].path.name for r in recs]  # type: ignore[union-attr]
    assert names == sorted(names)
    assert names[0].startswith(recs[0].id + "-0-prompt-0-unicode-etc")
    assert all(r.images[0].path.parent == hist.path / "images" for r in recs)  # type: ignore[union-attr]
    assert [r.id for r in recs] == sorted(r.id for r in recs)


def test_ids_are_unique_and_increasing_even_for_one_clock_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cometnb._storage.records as module

    monkeypatch.setattr(module, "_last_tick", 0)
    ids = [new_record_id(now=1_795_000_000.0)[0] for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == 200
    assert ids[0].startswith("20261118-110640-0000-")
    assert new_record_id(now=1.0)[0] > ids[-1]  # a clock going back does not reorder


def test_small_image_is_its_own_preview(hist: History) -> None:
    rec = hist.record_success(body(), api_result(image_bytes(32, 32)), elapsed_s=0.1)
    img = rec.images[0]
    assert img.preview_path == img.path
    assert not any((hist.path / "previews").iterdir())


def test_several_images_and_revised_prompts(hist: History) -> None:
    result = api_result(image_bytes(), image_bytes(color=(0, 0, 255)), revised="A Vivid Fox")
    rec = hist.record_success(body(n=2), result, elapsed_s=1.0)
    assert [p.name.split("-")[4] for p in (i.path for i in rec.images) if p] == ["0", "1"]
    assert rec.revised_prompts == ["A Vivid Fox", "A Vivid Fox"]
    assert all(i.revised_prompt == "A Vivid Fox" for i in rec.images)


def test_failure_is_recorded_with_error_and_status(hist: History) -> None:
    error = RateLimitError("Too many requests", status=429, code="rate_limit", hint="Wait.")
    rec = hist.record_failure(body(), error, elapsed_s=3.0, tags=("t",), origin="abc")
    assert rec.status == "error" and not rec.ok and rec.images == []
    assert rec.error == "Too many requests Wait." and rec.http_status == 429
    assert rec.origin == "abc"
    gen = rec.to_generation()
    assert isinstance(gen.error, RateLimitError) and gen.error.status == 429
    assert gen.error.code == "rate_limit" and gen.status == "error" and gen.record_id == rec.id

    cancelled = hist.record_failure(
        body(), CancelledError("Cancelled"), elapsed_s=0.5, status="cancelled"
    )
    assert cancelled.status == "cancelled"
    assert isinstance(cancelled.to_generation().error, CancelledError)
    with pytest.raises(ValueError, match="'error' or 'cancelled'"):
        hist.record_failure(body(), CometError("x"), elapsed_s=0, status="ok")


def test_validation_error_round_trips_its_field(hist: History) -> None:
    rec = hist.record_failure(body(), ValidationError("bad n", field="n"), elapsed_s=0)
    error = rec.to_generation().error
    assert isinstance(error, ValidationError) and error.field == "n"


def test_to_generation_matches_what_the_client_returns(hist: History) -> None:
    rec = hist.record_success(
        body(), api_result(synthetic=True, size="64x64"), elapsed_s=1.5, origin="x"
    )
    gen = rec.to_generation()
    assert gen.ok and gen.synthetic and gen.record_id == rec.id
    assert gen.request == rec.request and gen.created == 1_795_000_000
    assert gen.meta == {"size": "64x64"} and gen.elapsed_s == 1.5
    assert gen.image.data == rec.images[0].data


def test_key_and_auth_fields_never_reach_the_folder(hist: History) -> None:
    register_secret(FAKE_KEY)
    request = body(
        f"a fox {FAKE_KEY}",
        api_key=FAKE_KEY,
        Authorization=f"Bearer {FAKE_KEY}",
        extra={"x-api-key": FAKE_KEY, "note": FAKE_KEY},
        user=FAKE_KEY,
    )
    rec = hist.record_success(request, api_result(revised=FAKE_KEY), elapsed_s=1, tags=[FAKE_KEY])
    assert "api_key" not in rec.request and "Authorization" not in rec.request
    assert rec.request["extra"] == {"note": "[REDACTED]"}
    error = APIError(f"bad key {FAKE_KEY}", status=401, body={"error": {"message": FAKE_KEY}})
    hist.record_failure(request, error, elapsed_s=1)
    hist.close()
    assert FAKE_KEY not in repr(rec) and FAKE_KEY not in rec._repr_html_()
    assert_no_key_in_tree(hist.path)


# --- reading ---------------------------------------------------------------------------------


def test_sequence_protocol_get_and_contains(hist: History) -> None:
    assert len(hist) == 0 and list(hist) == []
    recs = [hist.record_success(body(f"p{i}"), api_result(), elapsed_s=0) for i in range(4)]
    assert len(hist) == 4
    assert [r.prompt for r in hist] == ["p0", "p1", "p2", "p3"]
    assert hist[0].id == recs[0].id and hist[-1].id == recs[-1].id
    assert [r.prompt for r in hist[1:3]] == ["p1", "p2"]
    assert [r.prompt for r in hist[::-2]] == ["p3", "p1"]
    assert hist.get(recs[2].id) == recs[2] and hist.get("nope") is None
    assert recs[1].id in hist and recs[1] in hist and "nope" not in hist
    with pytest.raises(IndexError, match="4 records"):
        hist[4]


def test_reading_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    h = History(tmp_path / "never")
    assert len(h) == 0 and h.find(text="x") == [] and "empty" in h._repr_html_()
    assert not (tmp_path / "never").exists()


def test_images_are_lazy_and_records_stay_small(hist: History) -> None:
    hist.record_success(body(), api_result(image_bytes(1024, 1024)), elapsed_s=0)
    rec = History(hist.path)[-1]
    img = rec.images[0]
    assert img._data is None  # bytes stay on disk until asked for
    assert img.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_find_filters_by_text_model_tag_and_status(hist: History) -> None:
    hist.record_success(body("A Red FOX"), api_result(), elapsed_s=0, tags=["animals"])
    hist.record_success(
        body("a cat", model="dall-e-3"), api_result(revised="a fox-like cat"), elapsed_s=0
    )
    hist.record_failure(body("fox again"), CometError("no"), elapsed_s=0)
    prompts = lambda recs: [r.prompt for r in recs]  # noqa: E731
    assert prompts(hist.find(text="fox")) == ["A Red FOX", "a cat", "fox again"]
    assert prompts(hist.find(text="RED fox")) == ["A Red FOX"]
    assert prompts(hist.find(model="dall-e-3")) == ["a cat"]
    assert prompts(hist.find(tag="animals")) == ["A Red FOX"]
    assert prompts(hist.find(status="error")) == ["fox again"]
    assert prompts(hist.find(text="fox", status="ok", model="gpt-image-2")) == ["A Red FOX"]
    assert hist.find(text="zebra") == []


def test_tags_persist_and_are_seen_by_other_instances(hist: History) -> None:
    rec = hist.record_success(body(), api_result(), elapsed_s=0, tags=["a"])
    other = History(hist.path)
    assert other[-1].tags == ("a",)
    assert hist.tag(rec, "b", "a", " ").tags == ("a", "b")
    assert other[-1].tags == ("a", "b")  # picked up by the incremental refresh
    assert hist.untag(rec.id, "a").tags == ("b",)
    assert History(hist.path).find(tag="b")[0].id == rec.id
    with pytest.raises(KeyError, match="no record"):
        hist.tag("missing-id", "x")


def test_compare_lists_differences(hist: History) -> None:
    a = hist.record_success(body(quality="low", size="1024x1024"), api_result(), elapsed_s=0)
    b = hist.record_success(body(quality="high", size="1024x1024"), api_result(), elapsed_s=0)
    cmp = hist.compare(a, b.id)
    assert cmp.differing == {"quality": ["low", "high"]}
    assert cmp.shared == {
        "model": "gpt-image-2",
        "prompt": "a red fox in snow",
        "size": "1024x1024",
    }
    assert "quality" in repr(cmp) and "<table" in cmp._repr_html_()
    assert hist.compare(-1, 0).records[0].id == b.id
    with pytest.raises(ValidationError):
        hist.compare()


def test_history_function_caches_per_folder(isolated_env: Path, tmp_path: Path) -> None:
    assert history() is history() and history().path == isolated_env
    assert history(tmp_path / "x") is history(str(tmp_path / "x"))
    assert history(tmp_path / "x") is not history()
    _settings.active().history_dir = str(tmp_path / "configured")
    assert history().path == tmp_path / "configured"


def test_history_html_and_repr(hist: History) -> None:
    hist.record_success(body("<b>bold</b>"), api_result(), elapsed_s=0)
    assert "1 records" in repr(hist)
    html = hist._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "<img" in History(hist.path)[0]._repr_html_()


# --- durability ------------------------------------------------------------------------------


def test_records_survive_a_new_process(hist: History) -> None:
    rec = hist.record_success(body("persist me"), api_result(image_bytes(300, 200)), elapsed_s=1)
    out = run_python(
        """
        import sys, json
        from cometnb.history import History
        r = History(sys.argv[1])[-1]
        i = r.images[0]
        print(json.dumps([r.id, r.prompt, i.width, i.height, len(i.data), i.path.exists()]))
        """,
        str(hist.path),
    )
    assert json.loads(out.stdout) == [rec.id, "persist me", 300, 200, len(rec.images[0].data), True]


def test_records_written_by_another_process_are_seen(hist: History) -> None:
    assert len(hist) == 0
    run_python(WRITER, str(hist.path), "2", "0")
    assert [r.prompt for r in hist] == ["writer 0 #0", "writer 0 #1"]
    assert all(r.images[0].path.is_file() for r in hist)  # type: ignore[union-attr]


# A child process that appends records; argv: folder, count, writer number, [image side].
WRITER = """
import io, os, sys
from PIL import Image
from cometnb.history import History
from cometnb._core.generations import ApiImage, ApiResult

folder, count, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
side = int(sys.argv[4]) if len(sys.argv) > 4 else 64
h = History(folder)
for i in range(count if count >= 0 else 10**9):
    if side > 64:
        img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    else:
        img = Image.new("RGB", (side, side), (i % 256, 0, 0))
    out = io.BytesIO(); img.save(out, "PNG", compress_level=0); data = out.getvalue()
    result = ApiResult([ApiImage(data, "png", side, side)], created=1)
    h.record_success({"model": "m", "prompt": f"writer {who} #{i}"}, result, elapsed_s=0)
    print("wrote", i, flush=True)
"""


def _assert_loadable_and_complete(folder: Path) -> History:
    h = History(folder)
    for rec in h:
        for img, doc in zip(rec.images, rec.to_dict()["images"], strict=True):
            assert img.path is not None and img.path.stat().st_size == doc["bytes"]
            img.pil()  # decodes: the file is whole
    return h


@pytest.mark.slow
def test_sigkill_during_writes_leaves_a_loadable_history(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    for delay in (0.0, 0.05, 0.13):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), "-1", "k", "1024"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().startswith("wrote")  # at least one record committed
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            child.stdout.close()  # type: ignore[union-attr]
    h = _assert_loadable_and_complete(folder)
    assert len(h) >= 3
    h.record_success(body("after the crash"), api_result(), elapsed_s=0)
    assert History(folder)[-1].prompt == "after the crash"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to spot the file")
def test_sigkill_inside_an_image_write_leaves_only_an_ignored_temporary(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    # The child blocks in the fsync of its second record's image (the temporary file is
    # written, not yet renamed): it is killed right there.
    code = (
        "import os, time\n"
        "from cometnb._storage import files as _files\n"
        "real = os.fsync\n"
        "def slow(fd):\n"
        "    if 'writer-s-1.png' in os.readlink(f'/proc/self/fd/{fd}'):\n"
        "        print('stuck', flush=True); time.sleep(60)\n"
        "    real(fd)\n"
        "_files.os.fsync = slow\n" + WRITER
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(folder), "3", "s"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(2)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert lines == ["wrote 0\n", "stuck\n"]
    leftovers = [p for p in (folder / "images").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")
    h = _assert_loadable_and_complete(folder)
    assert [r.prompt for r in h] == ["writer s #0"]
    assert _files.sweep_temporaries(folder / "images", older_than_s=0) == 1
    assert len(History(folder)) == 1


@pytest.mark.slow
def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), "25", str(n)],
            stdout=subprocess.DEVNULL,
            cwd=REPO,
        )
        for n in range(3)
    ]
    for child in children:
        assert child.wait(timeout=90) == 0
    h = _assert_loadable_and_complete(folder)
    assert len(h) == 75 and len({r.id for r in h}) == 75
    assert sorted(r.prompt for r in h) == sorted(
        f"writer {n} #{i}" for n in range(3) for i in range(25)
    )


def test_threads_writing_at_once_lose_nothing(hist: History) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                hist.record_success(body(f"t{n} #{i}"), api_result(), elapsed_s=0)
                hist.record_failure(body(f"t{n} fail {i}"), CometError("x"), elapsed_s=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(hist) == 80 and len(History(hist.path)) == 80
    assert len(hist.find(status="ok")) == 40


# --- scale -----------------------------------------------------------------------------------


def fill(hist: History, count: int) -> None:
    """``count`` records quickly: one real record, the rest copies of its row in one commit."""
    rec = hist.record_success(
        body("a red fox " * 5, size="1024x1024", quality="high"),
        api_result(usage={"input_tokens": 16, "output_tokens": 208, "total_tokens": 224}),
        elapsed_s=12.5,
        tags=["bench"],
    )
    conn = sqlite3.connect(hist._index.path)
    (doc,) = conn.execute("SELECT doc FROM records WHERE id = ?", (rec.id,)).fetchone()
    rows = []
    template = json.loads(doc)
    for seq in range(2, count + 1):
        rid, ts = new_record_id()
        prompt = f"prompt number {seq}"
        # As every write stores it: the prompt column and the document's request agree.
        template["request"]["prompt"] = prompt
        copy = json.dumps(template, ensure_ascii=False, separators=(",", ":"))
        rows.append((rid, seq, ts, prompt, "gpt-image-2", "ok", '["bench"]', copy))
    with conn:
        conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()


def test_loading_thousands_of_records_is_light(hist: History) -> None:
    fill(hist, 5000)
    tracemalloc.start()
    try:
        fresh = History(hist.path)
        recs = list(fresh)
        paths = [r.images[0].path for r in recs]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(recs) == 5000 and len(set(paths)) == 1
    assert peak < 50 * 2**20, f"loading 5,000 records took {peak / 2**20:.1f} MB"
    assert len(fresh.find(text="NUMBER 4999")) == 1
    assert len(fresh.find(tag="bench")) == 5000


def test_newer_schema_is_refused_clearly(hist: History) -> None:
    hist.record_success(body(), api_result(), elapsed_s=0)
    hist.close()
    conn = sqlite3.connect(hist._index.path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(CometError, match="newer cometnb"):
        len(History(hist.path))


# --- rerun (through the real client and the simulator) ---------------------------------------


def test_rerun_sends_the_same_request_and_names_its_origin(
    client: object, hist: History, sim: object
) -> None:
    first = client.generate("a lighthouse", model="gpt-image-1", size="1024x1024")  # type: ignore[attr-defined]
    original = hist.get(first.record_id)
    assert original is not None

    again = hist.rerun(original, client=client, quality="low")
    rec = hist.get(again.record_id)
    assert rec is not None and rec.origin == original.id
    assert rec.request == {**original.request, "quality": "low"}
    assert sim.requests[-1]["quality"] == "low"  # type: ignore[attr-defined]
    assert again.images[0].path is not None and again.images[0].path.is_file()
    assert len(hist) == 2


def test_rerun_without_a_client_uses_the_configured_one(
    hist: History, sim: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_settings.active(), "base_url", sim.base_url)  # type: ignore[attr-defined]
    _settings.set_session_key(FAKE_KEY)
    rec = hist.record_success(body("an owl", model="gpt-image-1"), api_result(), elapsed_s=0)
    gen = hist.rerun(rec.id)
    assert gen.ok and gen.synthetic and hist[-1].origin == rec.id
    assert_no_key_in_tree(hist.path)


def test_a_real_run_leaves_no_key_anywhere(client: object, hist: History, tmp_path: Path) -> None:
    client.generate("a fox", model="gpt-image-1", user="someone")  # type: ignore[attr-defined]
    with pytest.raises(CometError):
        client.generate("a fox", model="dall-e-3", n=3)  # type: ignore[attr-defined]
    out = tmp_path / "out"
    for suffix in (".html", ".zip", ".jsonl"):
        hist.export(out / f"all{suffix}")
    hist.close()
    assert_no_key_in_tree(hist.path)
    assert_no_key_in_tree(out)


def test_history_is_callable_from_the_package_even_after_the_module_loaded() -> None:
    # ``import cometnb.history`` binds the *module* to ``cometnb.history``; it must still work
    # as the function DESIGN.md promises: ``cometnb.history()``.
    import cometnb
    import cometnb.history

    assert cometnb.Record is Record and cometnb.History is History
    assert os.path.basename(cometnb.history().path) == "history"
    assert cometnb.history() is history()
    out = run_python("import cometnb.history, cometnb; print(type(cometnb.history()).__name__)")
    assert out.stdout.strip() == "History"


def _fail_writes(monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    """``atomic_write`` raises ENOSPC for files under ``folder`` (images/ or previews/)."""
    real = _files.atomic_write

    def write(path: Path, data: bytes, *, durable: bool = True) -> None:
        if path.parent.name == folder:
            raise OSError(28, "No space left on device")
        real(path, data, durable=durable)

    monkeypatch.setattr(_files, "atomic_write", write)


def test_an_image_that_cannot_be_saved_is_one_clear_error(
    hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_writes(monkeypatch, "images")
    with pytest.raises(CometError, match="could not save the generated image") as info:
        hist.record_success(body(), api_result(image_bytes(1024, 768)), elapsed_s=1.0)
    assert "No space left on device" in str(info.value) and "history_dir" in str(info.value)
    assert len(hist) == 0


def test_a_preview_that_cannot_be_saved_does_not_lose_the_image(
    hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = image_bytes(1024, 768)
    _fail_writes(monkeypatch, "previews")
    rec = hist.record_success(body(), api_result(original), elapsed_s=1.0)
    assert previews().drain(10)
    (img,) = rec.images
    assert img.path is not None and img.path.read_bytes() == original
    assert img.preview_path is not None and not img.preview_path.exists()
    from cometnb._core.images import inspect_image

    assert max(inspect_image(img.preview(256)[0])[1:]) <= 256  # made from the original


def test_the_package_attribute_is_the_callable_module_whatever_the_import_order() -> None:
    """``cometnb.history()`` first, then ``import cometnb.history as m``: ``m`` is the module."""
    out = run_python(
        "import cometnb\n"
        "cometnb.history()\n"
        "import cometnb.history as m\n"
        "print(m.History.__name__, type(m()).__name__, cometnb.history.History is m.History)"
    )
    assert out.stdout.strip() == "History History True", out.stderr[-800:]


def test_the_writability_check_has_one_owner(tmp_path: Path) -> None:
    """A History is a HistoryWriter: its ``check_writable`` is the writer's own (a cell used to
    enter two, History's only delegating), refusing a folder that is a file before sending."""
    assert History.check_writable is HistoryWriter.check_writable
    blocked = tmp_path / "history"
    blocked.write_text("a file where the history folder should be")
    with pytest.raises(CometError, match=r"cannot hold new images .*nothing was sent"):
        History(blocked).check_writable()
    assert blocked.read_text() == "a file where the history folder should be"
