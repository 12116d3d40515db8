"""``%%cometimg`` with the models of December 2026: xhigh / complexity pass through, what a model
does not take is refused before the network, a retired id's 404 becomes the one line (issue 23)."""

from __future__ import annotations

from typing import Any

import pytest

from cometnb._core import settings as _settings
from cometnb._core.errors import ValidationError
from cometnb._core.model_registry import SHUTDOWN_DATES, model_info, retired_message

pytestmark = pytest.mark.timeout(60)


def test_xhigh_and_complexity_reach_the_server(magic_shell: Any, sim: Any) -> None:
    cell = "%%cometimg -m gpt-image-2.6-flare -q xhigh --complexity low --no-display\na fox"
    result = magic_shell.run_cell(cell)
    assert result.success, result.error_in_exec
    assert sim.requests[-1] == {
        "model": "gpt-image-2.6-flare",
        "prompt": "a fox",
        "quality": "xhigh",
        "complexity": "low",
    }
    gen = magic_shell.user_ns["_"]
    assert gen.ok and gen.cost.usd is not None and gen.cost.usd > 0


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        ("-m gpt-image-2 -q xhigh", "quality", "low, medium, high or auto; got xhigh"),
        ("-m gpt-image-2.5-flare --complexity low", "complexity", "gpt-image-2.6-flare and"),
        ("-m gpt-image-2.5-flare -f svg", "output_format", "png, jpeg or webp; got svg"),
        ("-m gpt-image-2.6-sunburst -f svg -n 2", "output_format", "svg needs n=1; got n=2"),
        ("-m gpt-image-2.6-flare -f svg --partial 2", "output_format", "needs stream=false"),
        ("-m gpt-image-2.6-flare -f gif --frames 17", "frame_count", "from 2 to 16; got 17"),
        ("-m gpt-image-2.6-flare -f gif --frame-ms 15", "frame_duration_ms", "at least 20"),
        ("-m gpt-image-2.6-flare --frames 4", "frame_count", "needs output_format=gif"),
    ],
)
def test_refused_before_the_network(
    magic_shell: Any, sim: Any, options: str, field: str, says: str
) -> None:
    before = sim.request_count
    result = magic_shell.run_cell(f"%%cometimg {options} --no-display\na fox")
    error = result.error_in_exec
    assert isinstance(error, ValidationError) and error.field == field
    assert says in str(error) and field in str(error)
    assert sim.request_count == before


@pytest.mark.parametrize("model", sorted(SHUTDOWN_DATES))
def test_a_retired_id_is_sent_and_its_404_becomes_the_one_line(
    magic_shell: Any, sim: Any, model: str
) -> None:
    sim.retired_gone = True
    try:
        before = sim.request_count
        result = magic_shell.run_cell(f"%%cometimg -m {model} --no-display\na fox")
    finally:
        sim.retired_gone = False
    assert sim.request_count == before + 1  # never refused before sending (API_FACTS §9)
    text = str(result.error_in_exec)
    assert (retired_message(model) or "?") in text and "\n" not in text


# What OpenAI said after the DALL·E shutdown, and the other wordings API_FACTS §9 names.
_GONE_400 = (
    "The model `{model}` does not exist or you do not have access to it.",
    "The model {model} has been deprecated, learn more here: https://platform.openai.com/docs/deprecations",
    "Model {model} is not supported on this endpoint anymore.",
)


@pytest.mark.parametrize("wording", _GONE_400)
@pytest.mark.parametrize("model", sorted(SHUTDOWN_DATES))
def test_a_retired_ids_400_becomes_the_same_one_line(
    magic_shell: Any, sim: Any, model: str, wording: str
) -> None:
    error = {"message": wording.format(model=model), "type": "invalid_request_error"}
    sim.fault("http", status=400, body={"error": error})
    result = magic_shell.run_cell(f"%%cometimg -m {model} --no-display\na fox")
    text = str(result.error_in_exec)
    assert f"{retired_message(model)}. " in text  # the hint the 404 gets
    assert "\n" not in text


def test_a_live_models_400_not_supported_is_left_as_the_server_said(
    magic_shell: Any, sim: Any
) -> None:
    error = {"message": "background transparent is not supported", "param": "background"}
    sim.fault("http", status=400, body={"error": error})
    result = magic_shell.run_cell("%%cometimg -m gpt-image-2 --no-display\na fox")
    text = str(result.error_in_exec)
    assert "background transparent is not supported" in text
    assert "shut down" not in text and "Image models the API lists now" not in text


def test_no_model_option_uses_a_live_model(magic_shell: Any, sim: Any) -> None:
    info = model_info(_settings.DEFAULT_MODEL)
    assert info is not None and info.status == "live"
    result = magic_shell.run_cell("%%cometimg -q low --no-display\na fox")
    assert result.success, result.error_in_exec
    assert sim.requests[-1]["model"] == _settings.DEFAULT_MODEL
