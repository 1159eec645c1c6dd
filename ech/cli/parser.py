"""The argument parser every ``ech`` command is built from: strict and helpful.

argparse's defaults suit scripts written once; ours are for people typing:

* no silent abbreviations (``--pub`` is not ``--public-name``): a
  shortened flag that works today breaks the day a flag with the same
  prefix is added;
* an unknown flag is refused by the command it was given to, with that
  command's usage and the closest flag ("unknown option --ech-confg-list;
  did you mean --ech-config-list?"); argparse (3.11) would report it
  against ``ech``'s top-level usage, after it had already tried the
  values;
* a mistyped command or choice gets the closest one too;
* ``--help`` shows each option's default and whether it is required, and
  keeps the examples of the epilog as written.

Every parser under ``ech`` is this class: ``add_subparsers`` makes each
command's parser with the parent's class, so the probes and the fuzzer,
which add their commands themselves, get it too.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["HelpFormatter", "Parser", "closest"]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """What ``word`` was most likely meant to be, if anything is close.

    The candidates that start with ``word`` (an abbreviation we refuse:
    ``--port or --public-name`` when there are several); otherwise the
    closest by :func:`difflib.get_close_matches` (a typo).
    """
    options = sorted(set(candidates))
    prefixed = [c for c in options if c.startswith(word)]
    if prefixed:
        return " or ".join(prefixed[:3])
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _shown_default(default: object) -> bool:
    """Whether a default says something (None, False and [] say nothing; 0 does)."""
    silent = default is None or default is False or default is argparse.SUPPRESS
    return not silent and default != []


class HelpFormatter(argparse.HelpFormatter):
    """Help with "(required)" and "(default: X)" added; examples kept as written.

    A description or epilog with line breaks (examples, tables) is printed
    as written; one without is wrapped to the terminal, as argparse does.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        notes = []
        if action.required and action.option_strings:
            notes.append("required")
        if (
            action.option_strings
            and _shown_default(action.default)
            and "default" not in text
        ):
            notes.append("default: %(default)s")
        if notes:
            text = f"{text} ({'; '.join(notes)})" if text else f"({'; '.join(notes)})"
        return text


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` with the behaviour described above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401  # argparse's
        kwargs["allow_abbrev"] = False
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]  # typeshed's overloads
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """Refuse an unknown flag first, with this parser's usage and a hint."""
        args = sys.argv[1:] if args is None else list(args)
        self._refuse_unknown_flags(args)
        return super().parse_known_args(args, namespace)

    def _refuse_unknown_flags(self, args: Sequence[str]) -> None:
        known = self._option_string_actions
        has_commands = self._subparsers is not None
        for token in args:
            if token == "--":  # noqa: S105  # the end of options, not a password
                return
            if not token.startswith("-") or len(token) < 2:
                if has_commands:  # the rest is the command's to check
                    return
                continue
            if token[1].isdigit() or token[1] == ".":  # a negative number
                continue
            flag = token.partition("=")[0] if token.startswith("--") else token[:2]
            if flag in known:
                continue
            message = f"unknown option {flag}"
            hint = closest(flag, (o for o in known if o.startswith("--")))
            if hint is not None:
                message += f"; did you mean {hint}?"
            else:
                message += f"; see {self.prog} --help"
            self.error(message)

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """A value outside ``choices``: name the closest, not all of them."""
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        kind = "command" if isinstance(action, argparse._SubParsersAction) else "choice"
        message = f"unknown {kind} {value!r}"
        hint = closest(str(value), names)
        if hint is not None:
            message += f"; did you mean {hint}?"
        if len(names) <= 20:
            message += f" (choose from {', '.join(names)})"
        raise argparse.ArgumentError(action, message)
