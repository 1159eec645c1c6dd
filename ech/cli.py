"""The ``ech`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ech`` command."""
    parser = argparse.ArgumentParser(
        prog="ech", description="TLS 1.3 with Encrypted Client Hello (RFC 9849)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="a loopback TLS 1.3 session, explained")
    parser.parse_args(argv)
    from ech.demo import run

    return run()


if __name__ == "__main__":
    sys.exit(main())
