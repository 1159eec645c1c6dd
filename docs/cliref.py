"""The ``ech`` parser as the command-line reference page reads it.

sphinx-argparse renders help strings as reST, where ``DIR/*.pem`` opens an
emphasis; this returns :func:`ech.cli.build_parser`'s parser with its texts
escaped, nothing else changed, so the page is still the parser itself.
"""

from __future__ import annotations

import argparse
import re

from ech.cli import build_parser

_SPECIAL = re.compile(r"([\\*`|_])")


def _escape(text: str | None) -> str | None:
    return None if text is None else _SPECIAL.sub(r"\\\1", text)


def _escape_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = _escape(parser.description)
    parser.epilog = _escape(parser.epilog)
    for action in parser._actions:
        action.help = _escape(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = _escape(choice.help)
            for sub in action.choices.values():
                _escape_parser(sub)


def parser() -> argparse.ArgumentParser:
    """``ech``'s parser, with reST-escaped help."""
    built = build_parser()
    _escape_parser(built)
    return built
