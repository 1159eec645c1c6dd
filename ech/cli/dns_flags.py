"""The flags of ``ech dig``, ``ech get`` and ``ech dns-record``.

Apart from :mod:`ech.cli.dns`, which runs them: that module imports
dnspython and httpx, and is imported only when one of these commands runs
(:func:`_dns_command`), so ``ech --help`` and the other commands never load
them. For the same reason defaults from :mod:`ech.dns.publish` are written
out here (a test checks they agree).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ech.arguments import ca_file, config_list, ech_key_file, non_negative, port_number

__all__ = ["add_ech_source", "add_parsers"]


def _dns_command(name: str) -> Callable[[argparse.Namespace], int]:
    """Dispatch to :mod:`ech.cli.dns`, imported (with dnspython) only when used."""

    def run(args: argparse.Namespace) -> int:
        from ech.cli import dns as commands

        status: int = getattr(commands, name)(args)
        return status

    return run


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``ech dig``, ``ech get`` and ``ech dns-record`` and their flags."""
    _add_dig(commands)
    _add_get(commands)
    _add_dns_record(commands)


def add_ech_source(parser: argparse.ArgumentParser) -> None:
    """Where a URL's ECH configs come from, and the CA: ``ech get`` and ``diagnose``.

    ``--doh`` or ``--ech-config-list``, one of them (nothing touches DNS
    unless asked), and ``--ca`` for the DoH server and the site alike.
    """
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--doh", metavar="URL", help="DoH resolver URL (RFC 8484) for the record"
    )
    source.add_argument(
        "--ech-config-list",
        type=config_list,
        metavar="B64|@FILE",
        help="ECH configs to use instead of DNS (then no DNS is queried)",
    )
    parser.add_argument(
        "--ca",
        type=ca_file,
        metavar="FILE",
        help="CA file for DoH and the server (default: the system store)",
    )


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
    add_ech_source(get)
    get.add_argument(
        "--address",
        metavar="ADDRESS",
        help="connect to this address, whatever DNS says (as curl's --connect-to)",
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
