"""The magic for a newcomer: help text, typo hints, the keyless hint, %cometimg_sim, %config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import FAKE_KEY, new_magic_shell
from IPython.core.error import UsageError

from cometnb._core import settings as _settings
from cometnb._core.errors import AuthenticationError


@pytest.fixture
def keyless_shell() -> Iterator[Any]:
    """A shell with no key anywhere (the isolated env drops $COMETAPI_KEY)."""
    yield new_magic_shell()
    from cometnb._core.session import current
    from cometnb.sim.control import KeylessSimulator

    current().part(KeylessSimulator).stop()


def test_cell_magic_help_is_plain_text_naming_the_cell_magic(magic_shell: Any) -> None:
    from cometnb._notebook.magics import CometImg

    doc = CometImg.cometimg.__doc__ or ""
    assert doc.startswith("usage: %%cometimg [-m MODEL]")
    assert "::" not in doc and "``" not in doc
    info = magic_shell.object_inspect("%%cometimg")
    assert info["found"] and "usage: %%cometimg" in (info["docstring"] or "")


def test_a_mistyped_option_suggests_the_right_one(magic_shell: Any) -> None:
    with pytest.raises(UsageError, match=r"Did you mean --quality\?"):
        magic_shell.run_cell_magic("cometimg", "--qualty low", "a fox")


def test_a_near_miss_model_is_warned_before_sending_and_the_404_lists_served_models(
    magic_shell: Any, capsys: pytest.CaptureFixture[str], sim: Any
) -> None:
    result = magic_shell.run_cell("%%cometimg -m gpt-imgae-2 --no-display\na fox")
    err = capsys.readouterr().err
    assert "gpt-imgae-2 is not a model cometnb knows. Did you mean gpt-image-2?" in err
    assert sim.request_count == 1  # still sent: CometAPI adds models cometnb does not know
    text = str(result.error_in_exec)
    assert "The API does not serve gpt-imgae-2. Did you mean gpt-image-2" in text
    assert "Image models the API lists now:" in text and "gpt-image-2, " in text
    assert "dall-e-3 (retired upstream)" in text  # the simulator still lists seed models
    assert "\n" not in text


def test_a_retired_model_is_named_as_retired(magic_shell: Any, sim: Any) -> None:
    error = {"message": "The model dall-e-3 has been deprecated", "code": "model_not_found"}
    sim.fault("http", status=404, body={"error": error})
    result = magic_shell.run_cell("%%cometimg -m dall-e-3 --no-display\na fox")
    text = str(result.error_in_exec)
    assert "dall-e-3 was shut down on 2026-05-12; use gpt-image-2 (or gpt-image-2.6-flare)" in text


def test_without_a_key_the_error_says_how_to_try_the_simulator(keyless_shell: Any) -> None:
    result = keyless_shell.run_cell("%%cometimg\na fox")
    error = result.error_in_exec
    assert isinstance(error, AuthenticationError)
    assert "No CometAPI key is configured." in str(error)
    assert "%cometimg_sim" in str(error) and ".env" in str(error)


def test_cometimg_sim_makes_a_keyless_generation_work(
    keyless_shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    keyless_shell.run_line_magic("cometimg_sim", "")
    assert "offline simulator" in capsys.readouterr().out
    result = keyless_shell.run_cell("%%cometimg -m gpt-image-1-mini --no-display -o g\na fox")
    assert result.error_in_exec is None
    assert keyless_shell.user_ns["g"].ok and keyless_shell.user_ns["g"].synthetic
    keyless_shell.run_line_magic("cometimg_sim", "--off")
    assert "left the simulator" in capsys.readouterr().out
    assert _settings.resolve_api_key() is None


def test_config_shows_the_effective_values(
    keyless_shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    keyless_shell.run_line_magic("cometimg_sim", "")
    capsys.readouterr()
    keyless_shell.run_line_magic("config", "CometImg")
    out = capsys.readouterr().out
    assert "Effective now" in out
    url = _settings.resolve_base_url()
    assert f"base_url = {url}" in out and url.startswith("http://127.0.0.1:")
    history = str(_settings.resolve_history_dir().resolve())
    assert f"history_dir = {history}" in out
    assert "simulator" in out.split("api key")[1]


def test_config_never_shows_the_key(magic_shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    magic_shell.run_line_magic("config", "CometImg")
    out = capsys.readouterr().out
    assert "$COMETAPI_KEY" in out and FAKE_KEY not in out
