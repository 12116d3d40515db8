"""Option parsing and prompt interpolation of ``%%cometimg`` (no kernel, no network)."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.core.error import UsageError

from cometnb._core.settings import Settings
from cometnb._notebook.cell_options import (
    CellSpec,
    build_spec,
    interpolate,
    parse_params,
    split_list,
)
from cometnb.magic import CometImg, parse_argstring


def parse(line: str) -> argparse.Namespace:
    """The real option parser of the magic."""
    return parse_argstring(CometImg.cometimg, line)  # type: ignore[no-any-return]


def spec_for(
    line: str, cell: str = "a red kite", ns: dict[str, Any] | None = None, **settings: Any
) -> CellSpec:
    return build_spec(parse(line), cell, ns or {}, Settings(**settings))


# --- interpolation ---------------------------------------------------------------------------


def test_interpolate_names_attributes_items_and_escapes() -> None:
    ns = {"animal": "fox", "obj": SimpleNamespace(colour="red"), "d": {"k": "snow"}, "n": 3}
    text = interpolate("{n} {obj.colour} {animal}s in {d[k]}, {{literal}} {n:02d}", ns)
    assert text == "3 red foxs in snow, {literal} 03"


def test_undefined_name_is_a_short_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        interpolate("a {missing} fox", {})
    message = str(info.value)
    assert "'missing' is not defined" in message and "{{" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("a {} fox", "{name}"),
        ("a {0} fox", "{name}"),
        ("an { unclosed", "brace"),
        ("a } stray", "brace"),
        ("{obj.nope}", "could not be filled"),
        ("{d[zz]}", "could not be filled"),
    ],
)
def test_bad_templates_are_usage_errors(template: str, words: str) -> None:
    ns = {"obj": SimpleNamespace(), "d": {}}
    with pytest.raises(UsageError) as info:
        interpolate(template, ns)
    assert words in str(info.value)


# --- small parsers ---------------------------------------------------------------------------


def test_split_list_keeps_order_and_drops_duplicates_and_blanks() -> None:
    assert split_list(" a, b ,a,,c ", "--size") == ["a", "b", "c"]
    assert split_list(None, "--size") == []
    with pytest.raises(UsageError, match="--size needs a value"):
        split_list(" , ", "--size")


def test_params_are_json_when_they_parse() -> None:
    params = parse_params(["seed=5", "user=ann", "flag=true", 'obj={"a": [1]}', "text=a=b"])
    assert params == {"seed": 5, "user": "ann", "flag": True, "obj": {"a": [1]}, "text": "a=b"}


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (["novalue"], "KEY=VALUE"),
        (["=5"], "KEY=VALUE"),
        (["model=dall-e-3"], "-m/--model"),
        (["prompt=x"], "cell body"),
        (["api_key=sk-abc"], "%cometimg_key"),
        (["seed=1", "seed=2"], "twice"),
    ],
)
def test_bad_params(items: list[str], words: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_params(items)
    assert words in str(info.value)
    assert "sk-abc" not in str(info.value)


# --- specs -----------------------------------------------------------------------------------


def test_single_request_spec_uses_the_default_model() -> None:
    spec = spec_for("", "  a red kite \n", model="gpt-image-1-mini")
    assert not spec.is_grid and spec.count == 1
    assert spec.base.to_body() == {"model": "gpt-image-1-mini", "prompt": "a red kite"}
    assert spec.display and not spec.dry_run and spec.out is None


def test_every_option_maps_to_its_field() -> None:
    line = (
        "-m gpt-image-1 -s 1024x1024 -q high -n 2 -f webp --compression 40 --background opaque "
        "--moderation low --partial 2 --param user=ann --param seed=7 --tag a --tag b --tag a "
        "-o result --dry-run --no-display"
    )
    spec = spec_for(line)
    assert spec.base.to_body() == {
        "model": "gpt-image-1",
        "prompt": "a red kite",
        "size": "1024x1024",
        "quality": "high",
        "n": 2,
        "output_format": "webp",
        "output_compression": 40,
        "background": "opaque",
        "moderation": "low",
        "stream": True,
        "partial_images": 2,
        "user": "ann",
        "seed": 7,
    }
    assert spec.tags == ("a", "b")
    assert spec.out == "result" and spec.dry_run and not spec.display


def test_dalle_options() -> None:
    spec = spec_for("-m dall-e-3 --style vivid --response-format url")
    assert spec.base.fields == {"style": "vivid", "response_format": "url"}


def test_comma_lists_build_axes_in_a_fixed_order() -> None:
    spec = spec_for("-q low,high -m gpt-image-1,gpt-image-1-mini -f png,jpeg --background auto")
    assert list(spec.axes) == ["model", "quality", "format"]
    assert spec.axes["format"] == ["png", "jpeg"]
    assert spec.count == 8
    assert spec.base.fields["background"] == "auto"  # one value: shared, not an axis


def test_each_line_makes_a_prompt_axis() -> None:
    cell = "\n  a {animal}\n\nan owl\n a {animal}\n"
    spec = spec_for("--each-line", cell, {"animal": "fox"})
    assert spec.axes == {"prompt": ["a fox", "an owl"]}
    single = spec_for("--each-line", "\n only one \n")
    assert not single.is_grid and single.base.prompt == "only one"


def test_param_may_not_repeat_an_option() -> None:
    with pytest.raises(UsageError, match="repeats"):
        spec_for("-s 1024x1024 --param size=auto")
    with pytest.raises(UsageError, match="repeats"):
        spec_for("-n 2 --param n=3")


def test_param_replaces_a_configured_default() -> None:
    spec = spec_for("--param size=auto", size="1024x1024")
    assert spec.base.fields["size"] == "auto"


@pytest.mark.parametrize("line", ["-o 1x", "-o class", "-o a.b"])
def test_out_needs_a_variable_name(line: str) -> None:
    with pytest.raises(UsageError, match="variable name"):
        spec_for(line)


@pytest.mark.parametrize("cell", ["", "   \n  \n"])
def test_empty_cell_is_refused(cell: str) -> None:
    with pytest.raises(UsageError, match="no prompt"):
        spec_for("", cell)


def test_bad_option_values_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        parse("-n two")
    with pytest.raises(UsageError):
        parse("--no-such-option")
