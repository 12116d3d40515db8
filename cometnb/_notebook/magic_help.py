"""Help text for the magics: plain ``%%cometimg?`` help, typo hints, ``%config`` additions.

IPython's ``magic_arguments`` writes a magic's help as reStructuredText with a ``%name`` usage
line, so ``%%cometimg?`` showed ``::`` blocks and ``%cometimg``. :func:`plain_help` rebuilds the
text with a plain formatter and the right ``%%`` prefix. :func:`with_option_hint` adds
"Did you mean --quality?" to argparse's "unrecognized arguments: --qualty".
"""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
from textwrap import dedent
from typing import Any

from IPython.core.error import UsageError

from cometnb._core.text import suggest_option

__all__ = ["known_flags", "parse_with_hints", "plain_help", "with_option_hint"]


class _PlainFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout with a dedented description (docstrings are indented)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(dedent(text), width, indent)


def plain_help(func: Any, prog: str, description: str) -> str:
    """The help of a ``magic_arguments`` magic as plain text, its usage line naming ``prog``.

    Example::

        >>> from cometnb._notebook.magics import CometImg
        >>> plain_help(CometImg.cometimg, "%%cometimg", "Generate.").splitlines()[0][:25]
        'usage: %%cometimg [-m MOD'
    """
    source: argparse.ArgumentParser = func.parser
    # A docstring: first line flush, the rest indented; ``literal`` is RST markup.
    text = re.sub(r"``(.+?)``", r"\1", inspect.cleandoc(description))
    parser = argparse.ArgumentParser(
        prog=prog, description=text, formatter_class=_PlainFormatter, add_help=False
    )
    for action in source._actions:
        parser._add_action(action)
    return parser.format_help()


def known_flags(func: Any) -> list[str]:
    """Every option string a ``magic_arguments`` magic accepts (``-m``, ``--model``, ...)."""
    parser: argparse.ArgumentParser = func.parser
    return [flag for action in parser._actions for flag in action.option_strings]


def with_option_hint(message: str, line: str, flags: list[str]) -> str:
    """``message`` plus "Did you mean --x?" for each mistyped ``--option`` in ``line``.

    Example::

        >>> with_option_hint("unrecognized arguments: --qualty low", "--qualty low",
        ...                  ["--quality", "--size"])
        'unrecognized arguments: --qualty low. Did you mean --quality?'
    """
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    hints: list[tuple[str, str]] = []
    for word in words:
        name = word.split("=", 1)[0]
        if not re.fullmatch(r"--[\w-]+", name) or name in flags:
            continue
        best = suggest_option(name, flags)
        if best:
            hints.append((name, best))
    if not hints:
        return message
    if len(hints) == 1:
        hint = f"Did you mean {hints[0][1]}?"
    else:
        hint = "Did you mean " + ", ".join(f"{best} for {name}" for name, best in hints) + "?"
    return f"{message.rstrip('.')}. {hint}"


def parse_with_hints(func: Any, line: str, argv: list[str] | None = None) -> Any:
    """``magic_arguments.parse_argstring`` (or ``parse_args(argv)`` for a line already split)
    with typo hints added to its ``UsageError``."""
    try:
        return func.parser.parse_argstring(line) if argv is None else func.parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(with_option_hint(str(exc), line, known_flags(func))) from None
