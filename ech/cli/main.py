"""The ``ech`` command: the parser of every subcommand, and :func:`main`."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from importlib import metadata
from typing import cast

from ech.cli import certs, connect, demo, diagnose, dns_flags, keygen, serve
from ech.cli.parser import Parser
from ech.fuzz import add_fuzz_command
from ech.probe import client as probe_client
from ech.probe import server as probe_server

__all__ = ["build_parser", "main"]


EPILOG = """\
examples:
  ech keygen --public-name public.example -o ech.pem > ech.b64
  ech serve --listen 127.0.0.1:8443 --cert public.pem --key public.key \\
      --cert secret.pem --key secret.key --ech-key ech.pem --doh /dns-query
  ech connect 127.0.0.1:8443 --sni secret.example --ech-config-list @ech.b64 \\
      --ca ca.pem
  ech COMMAND --help     every flag of a command, with an example

exit status:
  0  the command did what was asked (connect, get: with the ECH outcome asked
     for; diagnose: the connection completed and the name stayed hidden)
  1  it failed: connection, handshake, DNS, or an ECH outcome other than the
     one asked for (diagnose: the real name was visible on the wire);
     serve: it could not start
  2  the command line is wrong: unknown flag, bad value, a file that is
     missing or does not hold what it should; nothing was sent
  3  diagnose only: nothing completed, and the name was not seen
"""


def version() -> str:
    """The installed ``tls-ech`` distribution's version."""
    try:
        return metadata.version("tls-ech")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ech`` command."""
    parser = Parser(
        prog="ech",
        description="TLS 1.3 with Encrypted Client Hello (RFC 9849), client and "
        "server.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log more (INFO and above)"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version()} (tls-ech)",
        help="print the version of tls-ech and exit",
    )
    # Each command's parser is a Parser too (add_subparsers uses our class).
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(
            dest="command", required=True, metavar="COMMAND", title="commands"
        ),
    )
    certs.add_parser(commands)
    keygen.add_parser(commands)
    serve.add_parser(commands)
    connect.add_parser(commands)
    demo.add_parser(commands)
    diagnose.add_parser(commands)
    probe_server.add_parser(commands)
    probe_client.add_parser(commands)
    add_fuzz_command(commands)
    dns_flags.add_parsers(commands)
    for command in commands.choices.values():
        # Also after the command, where people type it; SUPPRESS keeps the
        # command's parser from resetting an "ech -v COMMAND" to False.
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="log more (as ech -v COMMAND)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ech`` command.

    Library warnings (a dependency's DeprecationWarning, say) are for the
    developers of this package, not for the people running the command:
    they are hidden here, in the entry point only, unless ``-W`` or
    ``PYTHONWARNINGS`` asks for them.
    """
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO
        if args.verbose or args.command == "serve"
        else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    status: int = args.func(args)
    return status
