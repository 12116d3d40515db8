"""Live validation of the panel's form, and export offered as a download link."""

from __future__ import annotations

import base64
import re
import zipfile
from io import BytesIO
from pathlib import Path

from cometnb._notebook import panel_history
from cometnb._notebook.panel_form import LiveValidation, RequestForm


def _live() -> tuple[RequestForm, LiveValidation, list[bool]]:
    form = RequestForm()
    states: list[bool] = []
    return form, LiveValidation(form, states.append), states


def test_an_error_shows_as_the_value_changes_and_clears_when_fixed() -> None:
    form, live, states = _live()
    form.prompt.value = "a lighthouse at dusk"
    form.model.value = "gpt-image-2"
    form.size.value = "800x600"
    assert not live.valid and "800x600" in form.error_for("size")
    assert states[-1] is False  # the panel disables Generate with this
    form.size.value = "1024x1024"
    assert live.valid and form.error_for("size") == "" and states[-1] is True


def test_an_empty_prompt_is_not_an_error_while_typing() -> None:
    form, live, _states = _live()
    form.prompt.value = ""
    assert live.valid and form.error_for("prompt") == ""


def test_other_fields_are_checked_even_before_a_prompt_is_typed() -> None:
    form, live, _states = _live()
    form.model.value = "gpt-image-2"
    form.size.value = "12x12"
    assert not live.valid and form.error_for("size")


def test_a_near_miss_model_is_flagged_without_blocking_generate() -> None:
    form, live, states = _live()
    form.model.value = "gpt-imgae-2"
    assert live.valid and states[-1] is True  # still allowed: CometAPI adds models
    assert "Did you mean gpt-image-2?" in form.error_for("model")
    form.model.value = "gpt-image-2"
    assert form.error_for("model") == ""


def test_an_empty_model_is_reported_at_the_model() -> None:
    form, live, _states = _live()
    form.model.value = ""
    assert not live.valid and form.error_for("model") == "Choose or type a model name."


def _seeded(tmp_path: Path, count: int = 6) -> object:
    import _seed_history

    from cometnb._storage.folder import History

    _seed_history.seed(tmp_path / "h", count)
    return History(tmp_path / "h")


def test_export_shown_writes_only_the_given_records_and_links_the_file(tmp_path: Path) -> None:
    hist = _seeded(tmp_path)
    chosen = [r for r in hist.records() if r.status == "ok"][:2]  # type: ignore[attr-defined]
    path, status = panel_history.export_shown(hist, chosen, ".zip", what="2 selected")  # type: ignore[arg-type]
    assert path.parent == Path(hist.path) / "exports"  # type: ignore[attr-defined]
    assert status.startswith("Exported 2 selected: <a class='cometnb-download'")
    href = re.search(r"href='data:application/zip;base64,([^']+)'", status)
    assert href is not None
    with zipfile.ZipFile(BytesIO(base64.b64decode(href.group(1)))) as zf:
        lines = zf.read("records.jsonl").decode().splitlines()
        images = [n for n in zf.namelist() if n.startswith("images/")]
    assert len(lines) == 2 and len(images) == 2
    assert f"download='{path.name}'" in status


def test_a_file_too_large_for_a_link_is_named_by_path(tmp_path: Path) -> None:
    big = tmp_path / "big.zip"
    big.write_bytes(b"x" * 2048)
    text = panel_history.download_link(big, max_bytes=1024)
    assert "<a " not in text and str(big) in text and "too large" in text
