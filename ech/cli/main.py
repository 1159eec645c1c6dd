"""The ``ech`` command: the parser of every subcommand, and :func:`main`."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import cast

from ech.arguments import ca_file, config_list, ech_key_file, non_negative, port_number
from ech.cli import certs, connect, demo, diagnose, keygen, serve
from ech.cli.parser import Parser, UsageError
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
    _add_dns_commands(commands)
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
    _add_dig(commands)
    _add_get(commands)
    _add_dns_record(commands)


def _add_port(parser: argparse.ArgumentParser) -> None:
    """``--port``: which record (RFC 9460 §2.3: _PORT._https.NAME unless 443)."""
    parser.add_argument(
        "--port",
        type=port_number,
        default=443,
        help="the service's port: other than 443, the record is _PORT._https.NAME",
    )


def _add_dig(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dig = commands.add_parser(
        "dig",
        help="look up and decode HTTPS records (DoH)",
        description="Look up NAME's HTTPS record over DNS-over-HTTPS and decode "
        "its ECH configs. Exits 1 when there is no record.",
        epilog="example:\n  ech dig secret.example --port 8443 "
        "--doh https://127.0.0.1:8443/dns-query --ca ca.pem",
    )
    dig.add_argument("name", metavar="NAME", help="the host name to look up")
    _add_port(dig)
    dig.add_argument(
        "--doh", metavar="URL", required=True, help="DoH resolver URL (RFC 8484)"
    )
    dig.add_argument(
        "--ca",
        type=ca_file,
        metavar="FILE",
        help="CA file for the DoH server (default: the system store)",
    )
    dig.add_argument("--json", action="store_true", help="print one JSON object")
    dig.set_defaults(func=_dns_command("cmd_dig"))


def _add_get(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    get = commands.add_parser(
        "get",
        help="discover ECH over DoH and GET a URL",
        description="Resolve the URL's HTTPS record over DoH (or take the given "
        "configs), connect with ECH, GET the URL: the body to stdout, the "
        "outcome to stderr.",
        epilog="examples:\n"
        "  ech get https://secret.example:8443/ "
        "--doh https://127.0.0.1:8443/dns-query --ca ca.pem\n"
        "  ech get https://secret.example:8443/ --ech-config-list @ech.b64 "
        "--address 127.0.0.1 --ca ca.pem",
    )
    get.add_argument("url", metavar="URL", help="an https:// URL")
    source = get.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--doh", metavar="URL", help="DoH resolver URL (RFC 8484) for the record"
    )
    source.add_argument(
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
        "--ca",
        type=ca_file,
        metavar="FILE",
        help="CA file for DoH and the server (default: the system store)",
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
    get.add_argument(
        "--json", action="store_true", help="print one JSON object, body included"
    )
    get.set_defaults(func=_dns_command("cmd_get"))


def _add_dns_record(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    record = commands.add_parser(
        "dns-record",
        help="the HTTPS record to publish",
        description="Print the HTTPS record (RFC 9460, ech= of RFC 9848) that "
        "publishes the ECH keys, as a zone-file line. Give the keys with "
        "--ech-key or --ech-key-dir (or both).",
        epilog="examples:\n  ech dns-record secret.example --ech-key ech.pem "
        "--port 8443 --ipv4hint 192.0.2.1\n  ech dns-record secret.example "
        "--ech-key-dir keys/ --ttl 300",
    )
    record.add_argument("name", metavar="NAME", help="the host name served with ECH")
    record.add_argument(
        "--ech-key",
        action="append",
        default=[],
        type=ech_key_file,
        metavar="KEY.pem",
        help="an ECH key file (ech keygen -o); repeat for several",
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
    _add_port(record)
    record.add_argument(
        "--alpn",
        action="append",
        metavar="ID",
        help="an ALPN id to publish; repeat for several (default: h2 http/1.1)",
    )
    record.add_argument(
        "--ipv4hint",
        action="append",
        metavar="ADDRESS",
        help="an IPv4 address hint; repeat for several",
    )
    record.add_argument(
        "--ipv6hint",
        action="append",
        metavar="ADDRESS",
        help="an IPv6 address hint; repeat for several",
    )
    record.set_defaults(func=_dns_command("cmd_dns_record"))


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
    try:
        status: int = args.func(args)
    except UsageError as error:
        print(f"ech {args.command}: error: {error}", file=sys.stderr)
        return 2
    return status
