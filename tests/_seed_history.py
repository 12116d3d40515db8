"""A realistic history for panel tests: mixed ok / error / cancelled, long prompts, tags.

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
MODELS = ("gpt-image-2", "gpt-image-1-mini", "gpt-image-1", "dall-e-3", "qwen-image")
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


def seed(path: str | Path, count: int = 60) -> list[str]:
    """Write ``count`` records into the history at ``path``; returns their ids, oldest first.

    Every 7th record failed (an API error), every 11th was cancelled, the rest succeeded.
    """
    from cometnb._core.errors import CancelledError
    from cometnb._core.models import ApiImage, ApiResult
    from cometnb._storage.folder import History

    hist = History(path)
    ids: list[str] = []
    for i in range(count):
        body: dict[str, Any] = {
            "prompt": f"{SUBJECTS[i % len(SUBJECTS)]} (take {i + 1})",
            "model": MODELS[i % len(MODELS)],
            "size": SIZES[i % len(SIZES)],
        }
        if body["model"].startswith("gpt-image"):
            body["quality"] = ("low", "medium", "high")[i % 3]
        tags = [("study", "poster", "food")[i % 3]] if i % 4 == 0 else []
        if i % 11 == 10:
            rec = hist.record_failure(
                body,
                CancelledError("cancelled before sending"),
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
            rec = hist.record_success(
                body, result, elapsed_s=3.0 + i % 5, tags=tags, origin="panel"
            )
        ids.append(rec.id)
    return ids


EDIT_STEPS = (
    "same scene at night, a lantern glowing in the window",
    "add falling snow; keep the composition",
    "as a faded 1970s postcard with a white border",
)


def seed_edits(path: str | Path, chains: int = 8) -> list[str]:
    """Add ``chains`` edit chains to the history at ``path``: each edits a successful record,
    then edits that edit, then that one again (so lineage is three ancestors deep); the middle
    step carries a mask and every fourth chain's last step failed. Returns the new ids.
    """
    from cometnb._core.errors import APIError
    from cometnb._core.masks import mask
    from cometnb._core.models import ApiImage, ApiResult
    from cometnb._core.sources import EditBody, resolve_source
    from cometnb._storage.folder import History

    hist = History(path)
    roots = [r for r in hist if r.ok][:: max(1, len(hist) // (chains * 2))][:chains]
    ids: list[str] = []
    for c, root in enumerate(roots):
        parent = root
        for step, prompt in enumerate(EDIT_STEPS):
            width, height = parent.images[0].width or 96, parent.images[0].height or 96
            region = mask((width, height), box=(0, 0, width // 2, height // 2)) if step == 1 else None
            body = EditBody(
                {"model": "gpt-image-1", "prompt": prompt, "size": root.params.get("size")},
                [resolve_source(parent)],
                resolve_source(region) if region is not None else None,
            )
            tags = ["edits", f"chain-{c}"]
            if step == 2 and c % 4 == 3:
                error = APIError("Invalid mask: image and mask must be the same size", status=400)
                ids.append(hist.record_failure(body, error, elapsed_s=1.0, tags=tags).id)
                break
            data, fmt, w, h = _image(c * 3 + step + 1)
            result = ApiResult([ApiImage(data, fmt, w, h, None)], created=1_795_100_000 + c,
                               usage={"input_tokens": 300, "output_tokens": 196,
                                      "total_tokens": 496}, meta={}, synthetic=True)  # fmt: skip
            parent = hist.record_success(body, result, elapsed_s=4.0, tags=tags, origin="magic")
            ids.append(parent.id)
    return ids


if __name__ == "__main__":
    seed(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60)
