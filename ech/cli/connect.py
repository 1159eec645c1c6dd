"""``ech connect``: handshake, ``GET /``, report what happened."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ech.arguments import ca_file, config_list, host_port, server_name
from ech.blocking import connect
from ech.client.config import ClientConfig
from ech.dial import explain_error
from ech.errors import ECHRejectedError, TLSError
from ech.events import ECHStatus
from ech.http import fetch
from ech.serve.status_page import status_fields

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver

__all__ = ["add_parser", "cmd_connect"]


def _expected_status(args: argparse.Namespace, tls_status: str | None) -> ECHStatus:
    if args.ech_config_list is not None or args.require_ech:
        return ECHStatus.ACCEPTED
    if args.doh:  # the record decides: ECH if it has configs, GREASE if not
        grease = tls_status == str(ECHStatus.GREASE)
        return ECHStatus.GREASE if grease else ECHStatus.ACCEPTED
    return ECHStatus.GREASE if args.grease else ECHStatus.NOT_OFFERED


def _why(error: BaseException) -> dict[str, str]:
    """``ech_reason`` and ``ech_detail`` for a failure that was ECH's."""
    explained = explain_error(error)
    return explained.fields() if explained is not None else {}


def cmd_connect(args: argparse.Namespace) -> int:
    """Handshake, GET /, report the outcome."""
    host, port = args.address
    config = ClientConfig(
        cafile=args.ca, alpn_protocols=("http/1.1",), ech_grease=args.grease
    )
    result: dict[str, object] = {
        "ech_status": None,
        "retried": False,
        "retry_configs": None,
    }
    status = 1
    resolver: DoHResolver | None = None
    if args.doh:
        from ech.cli.dns import open_resolver

        resolver = open_resolver(args)
    try:
        with connect(
            host,
            port,
            config,
            args.sni,
            ech_configs=args.ech_config_list,
            ech_retry=not args.no_retry,
            resolver=resolver,
            require_ech=args.require_ech,
        ) as tls:
            result.update(status_fields(tls.negotiated))
            result["retried"] = tls.retried
            if tls.ech_outcome is not None:
                result.update(tls.ech_outcome.fields())
            if tls.retry_configs is not None:
                result["retry_configs"] = tls.retry_configs.to_base64()
            response = fetch(tls, "/", host=args.sni)
            result["http_status"] = response.status_line
            try:
                result["server_view"] = json.loads(response.body)
            except ValueError:
                result["body"] = response.body.decode("utf-8", "replace")
        tls_status = str(result["ech_status"])
        if tls_status == str(_expected_status(args, tls_status)):
            status = 0
    except ECHRejectedError as rejection:
        result["ech_status"] = str(ECHStatus.REJECTED)
        result["outer_server_name"] = rejection.public_name
        if rejection.retry_configs is not None:
            result["retry_configs"] = rejection.retry_configs.to_base64()
        result.update(_why(rejection))
        result["error"] = str(rejection)
    except (TLSError, OSError) as error:
        result.update(_why(error))
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        if resolver is not None:
            resolver.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            if name != "server_view":
                print(f"{name:>18}: {value}")
        if "server_view" in result:
            print(f"{'server saw':>18}: {json.dumps(result['server_view'])}")
    return status


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech connect`` and its flags."""
    conn = commands.add_parser("connect", help="connect, GET /, report")
    conn.add_argument("address", type=host_port, metavar="HOST:PORT")
    conn.add_argument("--sni", required=True, type=server_name)
    conn.add_argument("--ech-config-list", type=config_list, metavar="B64|@FILE")
    conn.add_argument("--ca", type=ca_file, metavar="CA.pem")
    conn.add_argument("--grease", action="store_true")
    conn.add_argument("--no-retry", action="store_true")
    conn.add_argument(
        "--require-ech",
        action="store_true",
        help="connect only with ECH: no GREASE, never the name in clear",
    )
    conn.add_argument("--json", action="store_true")
    conn.add_argument(
        "--doh", metavar="URL", help="look up the ECH configs over DoH (RFC 8484)"
    )
    conn.set_defaults(func=cmd_connect)
