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
    from cometnb._core.sources import EditBody, resolve_source

    return EditBody(body, [resolve_source(parent)], None)


def seed(path: str | Path, count: int = 60) -> list[str]:
    """Write ``count`` records into the history at ``path``; returns their ids, oldest first.

    Every 7th record failed (an API error), every 11th was cancelled, every 17th asked for
    the typo'd model and failed, every 5th success (from the 10th on) is an edit of the
    newest gpt-image success before it (so chains form), the rest succeeded.
    """
    from cometnb._core.errors import CancelledError
    from cometnb._core.models import ApiImage, ApiResult
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
            unsent.may_be_billed = False
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


if __name__ == "__main__":
    seed(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60)
