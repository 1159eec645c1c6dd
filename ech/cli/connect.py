"""``ech connect``: handshake, ``GET /``, report what happened.

With ``--session FILE`` it resumes with a ticket saved by an earlier run
(:mod:`ech.cli.sessions`) and saves the new ones. With ``--early-data`` too
it sends ``GET /`` as 0-RTT data (RFC 8446 §2.3) and reports
``early_data``: ``accepted`` (the server read it: the response that follows
answers it), ``rejected`` (the server skipped it, §4.2.10: the same request
is sent again after the handshake, so the page still arrives) or
``not_offered`` (no ticket for the name, or one whose server allows no
early data). With ``--cert`` and ``--key`` it authenticates as a client
when the server asks (§4.4.2; with ECH accepted, in the inner handshake,
and never when ECH is rejected, RFC 9849 §6.1.7).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from ech.arguments import (
    ca_file,
    certificate_file,
    config_list,
    host_port,
    load_certified_key,
    private_key_file,
    server_name,
    usage_error,
)
from ech.blocking import connect
from ech.cli.sessions import (
    choose_ticket,
    load_tickets,
    save_tickets,
    session_file,
    updated_tickets,
)
from ech.client.config import ClientConfig
from ech.dial import explain_error
from ech.errors import Alert, ECHRejectedError, PeerAlert, TLSError
from ech.events import EarlyDataStatus, ECHStatus
from ech.http import Exchange
from ech.http.client import read_response
from ech.serve.status_page import status_fields
from ech.tls.certificates import CertifiedKey
from ech.tls.session import SessionTicket

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


def _error_text(error: BaseException) -> str:
    """``error`` for the ``error`` field, its kind said once.

    An alert's text already starts with its name (``unknown_ca: ...``), so
    the class name (``UnknownCA``) is not put in front of it again.
    """
    if isinstance(error, Alert | PeerAlert):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _client_certificate(args: argparse.Namespace) -> CertifiedKey | None:
    """``--cert`` and ``--key``, checked to belong together; exits otherwise."""
    if args.cert is None and args.key is None:
        return None
    if args.key is None:
        usage_error("connect", "argument --cert: needs --key KEY.pem, its private key")
    if args.cert is None:
        usage_error(
            "connect", "argument --key: needs --cert CHAIN.pem, its certificate"
        )
    try:
        return load_certified_key(args.cert, args.key)
    except ValueError as error:
        usage_error("connect", f"argument --key: {error}")


def cmd_connect(args: argparse.Namespace) -> int:
    """Handshake, GET / (as 0-RTT data if asked and allowed), report the outcome."""
    if args.early_data and args.session is None:
        usage_error(
            "connect",
            "argument --early-data: needs --session FILE, where the ticket that "
            "0-RTT resumes is kept",
        )
    host, port = args.address
    config = ClientConfig(
        cafile=args.ca,
        alpn_protocols=("http/1.1",),
        ech_grease=args.grease,
        client_certificate=_client_certificate(args),
    )
    tickets: list[SessionTicket] = []
    if args.session is not None:
        try:
            tickets = load_tickets(args.session)
        except ValueError as error:
            raise SystemExit(f"ech connect: {error}") from None
    ticket = choose_ticket(tickets, args.sni, time.time())
    exchange = Exchange("GET", "/", host=args.sni)
    request = exchange.data_to_send()
    # RFC 8446 §4.2.10: no more early data than the ticket allows.
    early = (
        request
        if args.early_data
        and ticket is not None
        and len(request) <= ticket.max_early_data_size
        else None
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
            session=ticket,
            ech_configs=args.ech_config_list,
            ech_retry=not args.no_retry,
            resolver=resolver,
            require_ech=args.require_ech,
            early_data=early,
        ) as tls:
            result.update(status_fields(tls.negotiated))
            result["retried"] = tls.retried
            if tls.ech_outcome is not None:
                result.update(tls.ech_outcome.fields())
            if tls.retry_configs is not None:
                result["retry_configs"] = tls.retry_configs.to_base64()
            if tls.negotiated.early_data is not EarlyDataStatus.ACCEPTED:
                tls.sendall(request)  # not read as 0-RTT: send it now
            response = read_response(tls, exchange)
            if args.session is not None:
                kept = updated_tickets(
                    tickets, ticket, tls.session_tickets, time.time()
                )
                save_tickets(args.session, kept)
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
        result["error"] = _error_text(error)
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
    conn.add_argument(
        "--cert",
        type=certificate_file,
        metavar="CHAIN.pem",
        help="authenticate with this certificate when the server asks (with --key)",
    )
    conn.add_argument(
        "--key",
        type=private_key_file,
        metavar="KEY.pem",
        help="the private key of --cert",
    )
    conn.add_argument(
        "--session",
        type=session_file,
        metavar="FILE",
        help="resume with a ticket saved here, then save the new ones (mode 0600; "
        "it holds secrets)",
    )
    conn.add_argument(
        "--early-data",
        action="store_true",
        help="send GET / as 0-RTT data when the --session ticket allows it "
        "(RFC 8446 §2.3); sent again after the handshake if not accepted",
    )
    conn.set_defaults(func=cmd_connect)
