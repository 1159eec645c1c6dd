"""The documentation says what the code does.

``make docs`` builds the pages with warnings as errors and runs their
examples; these checks run with the tests: every ``ech COMMAND --flag``
written in the guides and the README exists in the parser (so prose cannot
name a flag that ``--help`` does not know), and every public package is
in the API reference.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

import pytest

from ech.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

from apipages import PUBLIC_MODULES  # noqa: E402  (docs/ is not a package)

#: Subpackages with an ``__all__`` that are not in the API reference, and why.
NOT_IN_REFERENCE = {
    "ech.fuzz": "the `ech fuzz` command; documented in the CLI reference",
    "ech.probe": "the `ech probe` commands; documented in the CLI reference",
    "ech.serve": "the `ech serve` command; documented in the CLI reference",
    "ech.tls": "the TLS 1.3 engine under the ECH API; internal",
}

COMMAND = re.compile(r"\bech ([a-z][a-z0-9-]*)([^\n]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return dict(action.choices)


def documents() -> list[Path]:
    docs = ROOT / "docs"
    return [
        ROOT / "README.md",
        *sorted([*docs.glob("*.rst"), *docs.glob("guides/*.rst")]),
    ]


def cited_flags(text: str) -> list[tuple[str, str]]:
    """``(command, --flag)`` for every ``ech command ... --flag`` in ``text``."""
    commands = subcommands()
    out = []
    for match in COMMAND.finditer(text.replace("\\\n", " ")):
        command, rest = match[1], match[2]
        if command in commands:
            out += [(command, flag) for flag in FLAG.findall(rest)]
    return out


def test_cited_flags_finds_flags_on_continued_lines() -> None:
    text = "ech serve --listen a:1 \\\n    --ech-key k.pem\nech demo\n--nothing"
    assert cited_flags(text) == [("serve", "--listen"), ("serve", "--ech-key")]


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_every_flag_written_exists(path: Path) -> None:
    commands = subcommands()
    unknown = [
        f"ech {command} {flag}"
        for command, flag in cited_flags(path.read_text(encoding="utf-8"))
        if flag not in commands[command]._option_string_actions
    ]
    assert unknown == []


def test_every_public_package_is_in_the_reference() -> None:
    documented = {name for name, _ in PUBLIC_MODULES}
    for init in sorted((ROOT / "ech").glob("*/__init__.py")):
        name = f"ech.{init.parent.name}"
        if name in NOT_IN_REFERENCE:
            continue
        if hasattr(importlib.import_module(name), "__all__"):
            assert name in documented, f"{name}: add it to docs/apipages.py"
