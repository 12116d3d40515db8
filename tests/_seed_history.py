"""A realistic history for panel tests: mixed ok / error / cancelled, edits with lineage,
long prompts, six models (and a typo'd one that only ever failed), tags.

Built through ``History.record_success`` / ``record_failure`` (what the client calls), with
small real PNG / JPEG / WebP images of the sizes people ask for, so thumbnails, captions and
statuses look like a person's history after an afternoon. Runnable from a notebook cell too:
``python -c "import _seed_history; _seed_history.seed(path, 60)"``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from PIL import Image

SUBJECTS = (
    "a lighthouse at dusk on a basalt cliff, waves breaking below, oil painting with thick "
    "impasto strokes and a warm orange sky fading into violet",
    "a red fox in fresh snow",
    "isometric cutaway of a tiny bakery: flour sacks, a brick oven, a cat asleep on the "
    "counter, soft morning light through the window, pastel colours, high detail",
    "portrait of an elderly fisherman mending nets, Rembrandt lighting",
    "a bowl of ramen, top view, steam, chopsticks resting on the rim, food photography",
    "retro travel poster for Mars: red dunes, a silver train, bold Art Deco lettering that "
    "reads VISIT OLYMPUS MONS, limited palette of four inks",
    "watercolour map of an imaginary archipelago with a compass rose",
    "a glass terrarium with a miniature forest and a wooden cabin, macro lens, bokeh",
)
MODELS = ("gpt-image-2", "gpt-image-1-mini", "gpt-image-1", "dall-e-3", "qwen-image", "dall-e-2")
TYPO_MODEL = "gpt-imag-2"  # a typo: only ever failed (the filter must not offer it as a model)
SIZES = ("1024x1024", "1536x1024", "1024x1536")
COLOURS = ((214, 96, 56), (40, 90, 160), (236, 200, 80), (60, 140, 90), (120, 60, 140))


def _image(index: int) -> tuple[bytes, str, int, int]:
    fmt = ("PNG", "JPEG", "WEBP")[index % 3]
    width, height = ((96, 96), (144, 96), (96, 144))[index % 3]
    img = Image.new("RGB", (width, height), COLOURS[index % len(COLOURS)])
    for x in range(0, width, 12):  # a stripe so every thumbnail is visibly an image
        img.paste((250, 250, 250), (x, height // 2, x + 6, height // 2 + 8))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue(), fmt.lower(), width, height


def _api_error(index: int) -> Exception:
    from cometnb._core.errors import APIError

    if index % 2:
        return APIError(
            "Your request was rejected as a result of our safety system.",
            status=400,
            code="moderation_blocked",
        )
    return APIError("upstream overloaded, retry later (request id: 2026120114)", status=503)


def _model_not_found() -> Exception:
    from cometnb._core.errors import APIError

    return APIError(
        f"The model `{TYPO_MODEL}` does not exist or you do not have access to it. "
        "Check the model name against the models your CometAPI key can use; the names the "
        "API serves are listed by GET /v1/models, and a close one is gpt-image-2.",
        status=404,
        code="model_not_found",
    )


def _edit_body(body: dict[str, Any], parent: Any) -> Any:
    """``body`` as an edit of ``parent``'s first image (the lineage a panel's Edit makes)."""
    from cometnb._core.edit_inputs import EditBody, resolve_source

    return EditBody(body, [resolve_source(parent)], None)


def seed(path: str | Path, count: int = 60) -> list[str]:
    """Write ``count`` records into the history at ``path``; returns their ids, oldest first.

    Every 7th record failed (an API error), every 11th was cancelled, every 17th asked for
    the typo'd model and failed, every 5th success (from the 10th on) is an edit of the
    newest gpt-image success before it (so chains form), the rest succeeded.
    """
    from cometnb._core.billing import BillingRisk
    from cometnb._core.errors import CancelledError
    from cometnb._core.generations import ApiImage, ApiResult
    from cometnb._storage.folder import History

    hist = History(path)
    ids: list[str] = []
    last_editable: Any = None
    for i in range(count):
        body: dict[str, Any] = {
            "prompt": f"{SUBJECTS[i % len(SUBJECTS)]} (take {i + 1})",
            "model": MODELS[i % len(MODELS)],
            "size": SIZES[i % len(SIZES)],
        }
        if body["model"].startswith("gpt-image"):
            body["quality"] = ("low", "medium", "high")[i % 3]
        tags = [("study", "poster", "food")[i % 3]] if i % 4 == 0 else []
        if i % 17 == 16:
            body["model"] = TYPO_MODEL
            rec = hist.record_failure(
                body, _model_not_found(), elapsed_s=0.4, tags=tags, origin="panel"
            )
        elif i % 11 == 10:
            unsent = CancelledError("Cancelled before the request was sent: nothing was billed.")
            unsent.billing = BillingRisk.NOT_SENT
            rec = hist.record_failure(
                body,
                unsent,
                elapsed_s=0.0,
                tags=tags,
                origin="panel",
                status="cancelled",
            )
        elif i % 7 == 6:
            rec = hist.record_failure(body, _api_error(i), elapsed_s=2.5, tags=tags, origin="magic")
        else:
            data, fmt, width, height = _image(i)
            result = ApiResult(
                [ApiImage(data, fmt, width, height, None)],
                created=1_795_000_000 + i,
                usage={"input_tokens": 20, "output_tokens": 196, "total_tokens": 216},
                meta={},
                synthetic=True,
            )
            edit = last_editable is not None and i % 5 == 4 and i >= 10
            if edit:
                body = {**body, "model": "gpt-image-1", "quality": "low"}
                body["prompt"] = f"the same, at night with warm window light (take {i + 1})"
            sent = _edit_body(body, last_editable) if edit else body
            rec = hist.record_success(
                sent, result, elapsed_s=3.0 + i % 5, tags=tags, origin="panel"
            )
            if body["model"].startswith("gpt-image"):
                last_editable = rec
        ids.append(rec.id)
    return ids


def seeded_folder(tmp_path_factory: Any, count: int) -> Path:
    """A history of ``count`` records in a fresh temp folder (built once per test module)."""
    folder = Path(tmp_path_factory.mktemp(f"seeded{count}")) / "history"
    seed(folder, count)
    return folder


def use_folder(seeded: Path, history_dir: Path) -> None:
    """Make ``history_dir`` a copy of ``seeded`` (each test gets its own)."""
    import shutil

    shutil.rmtree(history_dir, ignore_errors=True)
    shutil.copytree(seeded, history_dir)


# Parts of a scripted SVG answer: the script must never run wherever the file is shown.
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" '
    b"onload=\"document.title='pwned'\">"
    b"<script>document.title='pwned'</script><rect width='64' height='64' fill='red'/></svg>"
)


def animated_gif(frames: int = 4, side: int = 48, ms: int = 120) -> bytes:
    """A GIF of ``frames`` frames (a bar moving across), ``ms`` each."""
    shots = []
    for i in range(frames):
        img = Image.new("RGB", (side, side), COLOURS[1])
        img.paste(COLOURS[2], (i * side // frames, 0, (i + 1) * side // frames, side))
        shots.append(img)
    out = io.BytesIO()
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=ms, loop=0)
    return out.getvalue()


def seed_mixed(path: str | Path, count: int = 220) -> dict[str, Any]:
    """:func:`seed` plus what a browser of the history meets: a chain of edits three deep
    (each the ``parent`` of the next, the last with a mask), dall-e-3 records with revised
    prompts, a record with two images, a large image whose preview file is missing, records
    that kept no cost (written before costs were stored), non-ASCII tags, an SVG answer
    carrying a script and an onload handler, and an animated GIF. Returns the ids by role
    (``all`` oldest first)."""
    import sqlite3
    from contextlib import closing

    from cometnb._core.edit_inputs import EditBody, mask, resolve_source
    from cometnb._core.generations import ApiImage, ApiResult
    from cometnb._storage.folder import History
    from cometnb._storage.preview_queue import previews

    ids = {"all": seed(path, count)}
    hist = History(path)

    def result(*images: tuple[bytes, str, int, int, str | None]) -> ApiResult:
        items = [ApiImage(d, f, w, h, rp) for d, f, w, h, rp in images]
        usage = {"input_tokens": 30, "output_tokens": 196, "total_tokens": 226}
        return ApiResult(items, created=1_795_000_000, usage=usage, meta={}, synthetic=True)

    def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (width, height), colour).save(out, "PNG")
        return out.getvalue()

    base = hist.find(model="gpt-image-1", status="ok")[0]
    chain = [base.id]
    for step, prompt in enumerate(("the same scene at night", "add falling snow", "a red door")):
        parent = hist.get(chain[-1])
        assert parent is not None
        inputs = [resolve_source(parent)]
        cut = mask(parent.images[0].data, box=(0, 0, 32, 32)) if step == 2 else None
        body = EditBody(
            {"model": "gpt-image-1", "prompt": prompt, "quality": "low"},
            inputs,
            resolve_source(cut) if cut is not None else None,
        )
        data = png(parent.images[0].width, parent.images[0].height, COLOURS[step])
        rec = hist.record_success(
            body,
            result((data, "png", parent.images[0].width, parent.images[0].height, None)),
            elapsed_s=4.0,
            tags=["edit", "night"],
        )
        chain.append(rec.id)
    ids["chain"] = chain

    revised = []
    for n, extra in enumerate(("under an AURORA borealis", "with a Zebra crossing")):
        data, fmt, width, height = _image(n)
        rec = hist.record_success(
            {"model": "dall-e-3", "prompt": f"a quiet street at dawn {n}", "size": "1024x1024"},
            result((data, fmt, width, height, f"A photograph of a quiet street {extra}.")),
            elapsed_s=9.0,
            tags=["straße", "été"],
        )
        revised.append(rec.id)
    ids["revised"] = revised

    two = hist.record_success(
        {"model": "gpt-image-2", "prompt": "two variations of a teapot", "n": 2},
        result(
            (png(64, 48, (10, 20, 30)), "png", 64, 48, None),
            (png(48, 64, (200, 20, 30)), "png", 48, 64, None),
        ),
        elapsed_s=6.0,
    )
    ids["two_images"] = two.id

    # Larger than a preview: the history makes one (previews/…webp), or, for the second, the
    # process was killed between the commit and the preview.
    for role, place, colour in (
        ("big", "alps", (90, 140, 200)),
        ("no_preview", "sea", (20, 60, 160)),
    ):
        wide = hist.record_success(
            {
                "model": "gpt-image-2",
                "prompt": f"a wide panorama of the {place}",
                "size": "1536x1024",
            },
            result((png(900, 600, colour), "png", 900, 600, None)),
            elapsed_s=12.0,
        )
        previews().drain(10.0)
        ids[role] = wide.id
    missing = hist.get(ids["no_preview"])
    preview = missing.images[0].preview_path if missing else None
    assert missing and preview is not None and preview != missing.images[0].path
    preview.unlink()

    svg = hist.record_success(
        {"model": "gpt-image-2.5", "prompt": "a flat vector logo", "output_format": "svg"},
        result((SVG, "svg", 64, 64, None)),
        elapsed_s=3.0,
        tags=["logo"],
    )
    ids["svg"] = svg.id
    gif = hist.record_success(
        {"model": "gpt-image-2.6-flare", "prompt": "a looping spinner", "output_format": "gif",
         "frame_count": 4, "frame_duration_ms": 120},
        result((animated_gif(), "gif", 48, 48, None)),
        elapsed_s=5.0,
        tags=["logo"],
    )  # fmt: skip
    ids["gif"] = gif.id

    # Records written before costs were kept: priced now, in Python, by whoever reads them.
    old = [r.id for r in hist.find(model="gpt-image-1-mini", status="ok")[:6]]
    with closing(sqlite3.connect(Path(path) / "index.sqlite3")) as conn, conn:
        conn.executemany(
            "UPDATE records SET doc = json_remove(doc, '$.cost') WHERE id = ?", [(i,) for i in old]
        )
    ids["no_cost"] = old
    hist.close()
    return ids


if __name__ == "__main__":
    seed(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60)
