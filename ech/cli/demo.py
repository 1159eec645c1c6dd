"""``ech demo``: the loopback ECH session of :mod:`ech.demo`, explained."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    """The loopback ECH demo."""
    from ech.demo import run  # starts servers and a CA: only when asked

    return run()


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech demo``."""
    demo = commands.add_parser("demo", help="a loopback ECH session, explained")
    demo.set_defaults(func=cmd_demo)
