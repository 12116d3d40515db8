"""3. Notebook weight: 20 photo-like 1024² images generated with ``%%cometimg``, executed with
nbclient and saved, vs the same 20 images displayed the naive way (``IPython.display.Image``).

The simulator runs in this process; the kernel finds it through ``COMETAPI_BASE_URL`` and a
placeholder key in ``COMETAPI_KEY`` — exactly how a user's environment would configure it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._harness import (
    BENCH_KEY,
    PHOTO_MODEL,
    PHOTO_SIZE,
    Result,
    mb,
    need,
    ratio,
    secs,
    simulator,
    timed,
    workdir,
)

TITLE = "Notebook weight (20 photo-like 1024² images)"
IMAGES = 20
# One prompt (bodies differ by ``user``): the simulator draws a photo-like image in about a
# second, so it renders it once instead of 20 times; the notebook weight does not change.
PROMPT = "a street market at dusk, photographed"
GOAL_RATIO = 50.0


def run() -> Result:
    need("cometnb.magic")
    need("cometnb.history")
    import nbformat
    from nbclient import NotebookClient

    result = Result(TITLE)
    with simulator(texture="photo") as sim, workdir("notebook-") as tmp:
        hist_dir = tmp / "cometnb-history"
        env = {"COMETAPI_BASE_URL": sim.base_url, "COMETAPI_KEY": BENCH_KEY}
        env["COMETNB_HISTORY"] = str(hist_dir)
        magic_nb = _notebook(
            nbformat,
            ["%load_ext cometnb"]
            + [
                f"%%cometimg -m {PHOTO_MODEL} -s {PHOTO_SIZE} --param user=cell-{i}\n{PROMPT}"
                for i in range(IMAGES)
            ],
        )
        with _environ(env):
            magic_s, _ = timed(lambda: _execute(NotebookClient, magic_nb, tmp))
        magic_path = tmp / "magic.ipynb"
        nbformat.write(magic_nb, magic_path)

        originals = _original_files(hist_dir)
        naive_nb = _notebook(
            nbformat,
            ["from IPython.display import Image\nfrom pathlib import Path"]
            + [f"Image(data=Path({str(p)!r}).read_bytes())" for p in originals],
        )
        naive_s, _ = timed(lambda: _execute(NotebookClient, naive_nb, tmp))
        naive_path = tmp / "naive.ipynb"
        nbformat.write(naive_nb, naive_path)
        magic_size, naive_size = magic_path.stat().st_size, naive_path.stat().st_size
        errors = _error_outputs(magic_nb)
        originals_size = sum(p.stat().st_size for p in originals)
    _report(result, magic_size, naive_size, len(originals), originals_size, errors)
    result.row("execution time: magic / naive notebook", f"{secs(magic_s)} / {secs(naive_s)}")
    result.notes.append(
        "20 cells `%%cometimg -m gpt-image-1-mini -s 1024x1024 --param user=cell-N` with one "
        "prompt (one simulator render); the naive notebook displays the 20 original files from "
        "the history with `Image(data=...)`."
    )
    return result


class _environ:
    """Set environment variables for the kernel nbclient starts; restore them afterwards."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, old in self.saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def _notebook(nbformat: object, sources: list[str]) -> object:
    v4 = nbformat.v4  # type: ignore[attr-defined]
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _execute(client_cls: type, nb: object, cwd: Path) -> None:
    client_cls(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()


def _original_files(hist_dir: Path) -> list[Path]:
    from cometnb.history import History

    files = [img.path for rec in History(hist_dir) for img in rec.images if img.path is not None]
    return files[:IMAGES]


def _error_outputs(nb: object) -> int:
    cells = nb.cells  # type: ignore[attr-defined]
    return sum(1 for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error")


def _report(
    result: Result, magic: int, naive: int, n_images: int, originals: int, errors: int
) -> None:
    result.row("images generated (originals on disk)", f"{n_images} ({mb(originals)})")
    result.row("saved .ipynb with %%cometimg", mb(magic))
    result.row("saved .ipynb with IPython.display.Image(data)", mb(naive))
    result.row("naive / cometnb", ratio(naive / magic))
    result.goal(
        f"notebook ≥ {GOAL_RATIO:g}× smaller than the naive one",
        f"≥ {GOAL_RATIO:g}×",
        ratio(naive / magic),
        naive / magic >= GOAL_RATIO and n_images == IMAGES and errors == 0,
        f"{errors} cell(s) failed, {n_images} image(s) found; the inline output should embed "
        "only a downscaled WebP preview (thumbnail_px) and no progress outputs should stay in "
        "the saved cell; fix: lower thumbnail_px or the preview quality, and clear status "
        "outputs once the result is shown",
    )
