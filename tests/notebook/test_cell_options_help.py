"""``%%cometimg?`` help as plain text, and typo hints for mistyped options."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from cometnb._notebook import cell_options
from cometnb._notebook.magics import CometImg


def test_plain_help_names_the_cell_magic_and_has_no_rst() -> None:
    text = cell_options.plain_help(CometImg.cometimg, "%%cometimg", "Generate images.")
    assert text.startswith("usage: %%cometimg [-m MODEL]")
    assert "::" not in text and "<" not in text.split("options:")[0]
    assert "--each-line" in text and "Generate images." in text


def test_known_flags_lists_short_and_long_options() -> None:
    flags = cell_options.known_flags(CometImg.cometimg)
    assert {"-m", "--model", "--quality", "--partial", "--dry-run"} <= set(flags)


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("--qualty low", "Did you mean --quality?"),
        ("-m gpt-image-2 --qualiy=low", "Did you mean --quality?"),
        ("--partail 2", "Did you mean --partial?"),
        (
            "--qualty low --sise 1024x1024",
            "Did you mean --quality for --qualty, --size for --sise?",
        ),
    ],
)
def test_unknown_option_error_suggests_the_option_meant(line: str, hint: str) -> None:
    with pytest.raises(UsageError) as info:
        cell_options.parse_with_hints(CometImg.cometimg, line)
    assert str(info.value).startswith("unrecognized arguments:")
    assert str(info.value).endswith(hint)


def test_no_hint_when_nothing_is_close() -> None:
    with pytest.raises(UsageError) as info:
        cell_options.parse_with_hints(CometImg.cometimg, "--banana 3")
    assert "Did you mean" not in str(info.value)


def test_valid_lines_parse_as_before() -> None:
    args = cell_options.parse_with_hints(CometImg.cometimg, "-q low -s 1024x1024 --dry-run")
    assert (args.quality, args.size, args.dry_run) == ("low", "1024x1024", True)
