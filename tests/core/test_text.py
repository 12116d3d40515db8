"""Typo help (options, models, values) and the one line for a model the API does not serve."""

from __future__ import annotations

import datetime as dt

from cometnb._core import model_registry, text
from cometnb._core.model_registry import KNOWN_MODELS

FLAGS = ["--model", "--size", "--quality", "--style", "--format", "--partial", "--tag"]


def test_mistyped_options_get_the_known_option() -> None:
    assert text.suggest_option("--qualty", FLAGS) == "--quality"
    assert text.suggest_option("--qualiy=low", FLAGS) == "--quality"
    assert text.suggest_option("--sise", FLAGS) == "--size"
    assert text.suggest_option("--partail", FLAGS) == "--partial"
    assert text.suggest_option("--whatever", FLAGS) is None


def test_did_you_mean_lists_several_close_values() -> None:
    assert text.did_you_mean("hihg", ["low", "medium", "high"]) == " Did you mean high?"
    assert text.did_you_mean("zzz", ["low", "high"]) == ""
    hint = text.did_you_mean("gpt-image-1.", KNOWN_MODELS, 0.85)
    assert "gpt-image-1" in hint and " or " in hint


def test_a_near_miss_of_a_known_model_warns() -> None:
    warning = text.model_typo_warning("gpt-imgae-2", KNOWN_MODELS)
    assert warning is not None and "Did you mean gpt-image-2?" in warning
    assert text.model_typo_warning("dall-e3", KNOWN_MODELS) is not None
    assert text.model_typo_warning("gpt-image-2", KNOWN_MODELS) is None
    assert text.model_typo_warning("doubao-seedream-4-0-250828", KNOWN_MODELS) is None


def test_retired_models_are_named_as_retired_or_deprecated() -> None:
    june = dt.date(2026, 6, 1)
    assert "shut it down on 2026-05-12" in (model_registry.retired_note("dall-e-2", june) or "")
    assert "shuts it down on 2026-10-23" in (model_registry.retired_note("gpt-image-1", june) or "")
    assert model_registry.retired_note("gpt-image-2", june) is None


def test_model_gone_answers_are_recognised() -> None:
    assert model_registry.is_model_gone(404, "model_not_found", "The model does not exist")
    assert model_registry.is_model_gone(400, None, "The model dall-e-3 has been deprecated")
    assert model_registry.is_model_gone(404, "", "")
    assert not model_registry.is_model_gone(400, "invalid_request", "size must be 1024x1024")
    assert not model_registry.is_model_gone(404, None, "Not found: /v1/images/generation")


def test_model_gone_message_lists_the_image_models_served_now() -> None:
    ids = ["gpt-4o", "gpt-image-2", "qwen-image", "text-embedding-3", "doubao-seedream-4-0"]
    available = model_registry.image_model_ids(ids)
    assert available == ["doubao-seedream-4-0", "gpt-image-2", "qwen-image"]
    text = model_registry.model_gone_message("dall-e-3", available, today=dt.date(2026, 12, 2))
    assert text.startswith(
        "dall-e-3 was shut down on 2026-05-12; use gpt-image-2 (or gpt-image-2.6-flare). "
    )
    assert "gpt-image-2, qwen-image" in text and "gpt-4o" not in text
    listed = model_registry.model_gone_message(
        "x", ["dall-e-2", "gpt-image-2"], today=dt.date(2026, 6, 1)
    )
    assert "dall-e-2 (retired upstream), gpt-image-2." in listed
    assert "\n" not in text


def test_model_gone_message_without_a_list_suggests_a_known_name() -> None:
    text = model_registry.model_gone_message("gpt-imgae-2", None, KNOWN_MODELS)
    assert "Did you mean gpt-image-2?" in text
    assert "could not be read (GET /v1/models)" in text


def test_model_gone_message_suggests_only_current_models_when_one_fits() -> None:
    # The simulator's list as the reviewer saw it: gpt-image-1 is close too, but retired.
    served = ["dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-2", "qwen-image"]
    text = model_registry.model_gone_message("gpt-imgae-2", served, today=dt.date(2026, 12, 2))
    assert "Did you mean gpt-image-2?" in text
    assert "gpt-image-1 (retired upstream)" in text  # still listed, marked, not suggested
    assert "or gpt-image-1" not in text
    # Only a retired model is close: it is still offered (the list beside it says retired).
    old = model_registry.model_gone_message("dall-e-33", served, today=dt.date(2026, 12, 2))
    assert "Did you mean dall-e-3?" in old and "dall-e-3 (retired upstream)" in old
