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
    demo = commands.add_parser(
        "demo",
        help="a loopback ECH session, explained",
        description="Run a client-facing server and a client on 127.0.0.1 and "
        "explain each step: ECH accepted, a key rotation with rejection and "
        "retry, GREASE, and ECH over HTTP/3. Needs no files and no network.",
        epilog="example:\n  ech demo",
    )
    demo.set_defaults(func=cmd_demo)
