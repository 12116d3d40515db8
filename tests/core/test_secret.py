"""Key sources people already use: a ``.env`` beside the notebook and Colab's secrets."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FAKE_KEY

from cometnb._core import secret
from cometnb._core.errors import redact

OTHER_KEY = "sk-colab-secret-0d9e8f7a6b5c4d3e2f1a"


@pytest.fixture
def colab(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """A stand-in for ``google.colab.userdata``: ``get(name)`` reads this dict or raises."""
    secrets: dict[str, object] = {}
    calls: list[str] = []

    class SecretNotFoundError(Exception):
        pass

    def get(name: str) -> object:
        calls.append(name)
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    google = types.ModuleType("google")
    colab_mod = types.ModuleType("google.colab")
    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get  # type: ignore[attr-defined]
    colab_mod.userdata = userdata  # type: ignore[attr-defined]
    google.colab = colab_mod  # type: ignore[attr-defined]
    for name, mod in (
        ("google", google),
        ("google.colab", colab_mod),
        ("google.colab.userdata", userdata),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    secret.reset()
    secrets["_calls"] = calls
    yield secrets
    secret.reset()


def test_dotenv_key_is_read_without_touching_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"# my keys\nOTHER=1\nCOMETAPI_KEY='{FAKE_KEY}'\n")
    monkeypatch.chdir(tmp_path)
    assert secret.dotenv_key() == FAKE_KEY
    import os

    assert "COMETAPI_KEY" not in os.environ  # read, never exported to child processes
    assert redact(f"x {FAKE_KEY} y") == "x [REDACTED] y"  # registered as a secret


def test_dotenv_without_the_key_or_without_a_file_gives_none(tmp_path: Path) -> None:
    assert secret.dotenv_key(tmp_path) is None
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-other\nCOMETAPI_KEY=\n")
    assert secret.dotenv_key(tmp_path) is None


def test_a_broken_dotenv_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe COMETAPI_KEY=\xff")
    assert secret.dotenv_key(tmp_path) is None


def test_colab_secret_is_found_once_and_cached(colab: dict[str, object]) -> None:
    colab["COMETAPI_KEY"] = f"  {OTHER_KEY}\n"
    assert secret.colab_key() == OTHER_KEY
    assert secret.colab_key() == OTHER_KEY
    assert colab["_calls"] == ["COMETAPI_KEY"]  # Colab asks the user for access once
    assert OTHER_KEY not in redact(OTHER_KEY)


def test_colab_without_the_secret_gives_none(colab: dict[str, object]) -> None:
    assert secret.colab_key() is None


def test_outside_colab_nothing_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert secret.colab_key() is None
    assert "google.colab" not in sys.modules


def test_find_key_prefers_dotenv_and_names_the_source_not_the_key(
    tmp_path: Path, colab: dict[str, object]
) -> None:
    colab["COMETAPI_KEY"] = OTHER_KEY
    found = secret.find_key(tmp_path)
    assert found is not None and found.key == OTHER_KEY and "Colab" in found.where
    (tmp_path / ".env").write_text(f"COMETAPI_KEY={FAKE_KEY}\n")
    found = secret.find_key(tmp_path)
    assert found is not None and found.key == FAKE_KEY and ".env" in found.where
    assert FAKE_KEY not in repr(found) and FAKE_KEY not in found.where


def test_resolve_api_key_order_explicit_session_dotenv_colab_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colab: dict[str, object]
) -> None:
    from cometnb._core import settings as _settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMETAPI_KEY", "sk-from-the-environment-0000")
    assert _settings.resolve_api_key() == "sk-from-the-environment-0000"
    colab["COMETAPI_KEY"] = OTHER_KEY
    secret.reset()
    assert _settings.resolve_api_key() == OTHER_KEY  # Colab before $COMETAPI_KEY
    (tmp_path / ".env").write_text(f"COMETAPI_KEY={FAKE_KEY}\n")
    assert _settings.resolve_api_key() == FAKE_KEY  # .env before Colab
    _settings.set_session_key("sk-typed-at-the-masked-prompt-1")
    assert _settings.resolve_api_key() == "sk-typed-at-the-masked-prompt-1"
    assert _settings.resolve_api_key("sk-explicit-argument-2222") == "sk-explicit-argument-2222"


def test_a_client_sends_the_dotenv_key_and_never_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: object
) -> None:
    from cometnb import Client

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"COMETAPI_KEY={FAKE_KEY}\n")
    with Client(base_url=sim.base_url) as client:  # type: ignore[attr-defined]
        gen = client.generate("a lighthouse", model="gpt-image-1-mini")
        assert FAKE_KEY not in repr(client)
    assert gen.ok
    sent = sim.log[-1][1]  # type: ignore[attr-defined]
    assert FAKE_KEY not in str(sent.get("body", sent))
