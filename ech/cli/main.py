"""The ``ech`` command: the parser of every subcommand, and :func:`main`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from ech.arguments import ca_file, config_list, non_negative
from ech.cli import certs, connect, demo, diagnose, keygen, serve
from ech.fuzz import add_fuzz_command
from ech.probe import client as probe_client
from ech.probe import server as probe_server

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ech`` command."""
    parser = argparse.ArgumentParser(
        prog="ech", description="TLS 1.3 with Encrypted Client Hello (RFC 9849)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)
    certs.add_parser(commands)
    keygen.add_parser(commands)
    serve.add_parser(commands)
    connect.add_parser(commands)
    demo.add_parser(commands)
    diagnose.add_parser(commands)
    probe_server.add_parser(commands)
    probe_client.add_parser(commands)
    add_fuzz_command(commands)
    _add_dns_commands(commands)
    return parser


def _dns_command(name: str) -> Callable[[argparse.Namespace], int]:
    """Dispatch to :mod:`ech.cli.dns`, imported (with dnspython) only when used."""

    def run(args: argparse.Namespace) -> int:
        from ech.cli import dns as commands

        status: int = getattr(commands, name)(args)
        return status

    return run


def _add_dns_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    dig = commands.add_parser("dig", help="look up and decode HTTPS records (DoH)")
    dig.add_argument("name")
    dig.add_argument("--port", type=int, default=443)
    dig.add_argument("--doh", metavar="URL", help="DoH resolver URL (RFC 8484)")
    dig.add_argument(
        "--ca", type=ca_file, metavar="FILE", help="CA file for the DoH server"
    )
    dig.add_argument("--json", action="store_true")
    dig.set_defaults(func=_dns_command("cmd_dig"))

    get = commands.add_parser("get", help="discover ECH over DoH and GET a URL")
    get.add_argument("url")
    get.add_argument("--doh", metavar="URL", help="DoH resolver URL (RFC 8484)")
    get.add_argument(
        "--ech-config-list",
        type=config_list,
        metavar="B64|@FILE",
        help="ECH configs to use instead of DNS (then no DNS is queried)",
    )
    get.add_argument(
        "--address",
        metavar="ADDRESS",
        help="connect to this address, whatever DNS says (as curl's --connect-to)",
    )
    get.add_argument(
        "--ca", type=ca_file, metavar="FILE", help="CA file for DoH and the server"
    )
    get.add_argument(
        "--http3", action="store_true", help="HTTP/3 over QUIC only (RFC 9114)"
    )
    get.add_argument(
        "--http2",
        action="store_true",
        help="offer ALPN h2 before http/1.1; HTTP/2 if the server picks it",
    )
    get.add_argument(
        "--require-ech",
        action="store_true",
        help="connect only with ECH: no GREASE, never the name in clear",
    )
    get.add_argument("--json", action="store_true")
    get.set_defaults(func=_dns_command("cmd_get"))

    record = commands.add_parser("dns-record", help="the HTTPS record to publish")
    record.add_argument("name")
    record.add_argument(
        "--ech-key", action="append", default=[], type=Path, metavar="KEY.pem"
    )
    record.add_argument(
        "--ech-key-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="publish the advertised keys of DIR (as ech serve --ech-key-dir "
        "and ech keygen --rotate use it)",
    )
    record.add_argument(
        "--ttl",
        type=non_negative(int),
        metavar="SECONDS",
        # ech.dns.publish.DEFAULT_DNS_TTL, not imported here: it brings dnspython.
        help="the record's TTL, which ech keygen --rotate --retire-after must "
        "cover (default 300, the TTL ech serve --doh answers with)",
    )
    record.add_argument("--port", type=int, default=443)
    record.add_argument("--alpn", action="append", metavar="ID")
    record.add_argument("--ipv4hint", action="append", metavar="ADDRESS")
    record.add_argument("--ipv6hint", action="append", metavar="ADDRESS")
    record.set_defaults(func=_dns_command("cmd_dns_record"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ech`` command."""
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
