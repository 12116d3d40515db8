"""What ``%config CometImg`` adds: the settings a request would really use, and the key's origin."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAKE_KEY

from cometnb._core import settings
from cometnb._core import settings as _settings


def _by_name() -> dict[str, settings.Effective]:
    return {e.name: e for e in settings.effective_settings()}


def test_defaults_resolve_to_real_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(_settings.HISTORY_ENV)
    monkeypatch.chdir(tmp_path)
    found = _by_name()
    assert found["base_url"].value == "https://api.cometapi.com/v1"
    assert found["base_url"].source == "default"
    assert found["history_dir"].value == str(tmp_path.resolve() / "cometnb-history")
    assert found["api key"].source.startswith("not set")


def test_keyless_simulator_shows_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_settings, "_simulator_url", "http://127.0.0.1:5555/v1")
    monkeypatch.setattr(_settings, "_session_key", "sim-offline-placeholder-key")
    found = _by_name()
    assert found["base_url"].value == "http://127.0.0.1:5555/v1"
    assert "simulator" in found["base_url"].source
    assert "simulator" in found["api key"].source


def test_key_origin_names_the_source_never_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(_settings.KEY_ENV, FAKE_KEY)
    assert settings.key_origin() == "$COMETAPI_KEY"
    (tmp_path / ".env").write_text(f"COMETAPI_KEY={FAKE_KEY}\n")
    assert settings.key_origin().startswith(".env in")
    _settings.set_session_key(FAKE_KEY)
    assert settings.key_origin() == "%cometimg_key (held in memory)"
    text = settings.effective_text()
    assert FAKE_KEY not in text and "(hidden)" in text


def test_history_dir_from_the_environment_is_named(tmp_path: Path) -> None:
    found = _by_name()["history_dir"]
    assert found.source == "$COMETNB_HISTORY" and found.value.endswith("history")
