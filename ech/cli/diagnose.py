"""``ech diagnose URL``: DNS, configs, handshake and what the network saw, step by step.

For a person asking "is ECH working for this site, and if not, why?":

1. DNS: the HTTPS record over DoH (RFC 9460, RFC 9848), its endpoints and
   whether the client is SVCB-reliant (every record has ``ech``);
2. configs: each ECHConfig decoded, which one the client uses and why the
   others cannot be used (KEM, suites, version; RFC 9849 §4, §6.1);
3. handshake: our client connects with :mod:`ech.dial`'s policy (GREASE,
   strict refusal, one retry), and the outcome says why;
4. the wire: what a network observer saw, decoded from our own client's
   bytes (for TCP the bytes our sockets sent, as ``ech demo`` does; with
   ``--http3`` the QUIC Initial packets, decrypted as any observer can,
   RFC 9001 §5.2): the outer SNI and ALPN, the ECH extension, and whether
   the real name appears anywhere in clear; then what stayed hidden.

Exit status: 0 when the connection completed and the real name never
crossed the wire in clear; 1 when the real name was visible; 3 when
nothing went on the wire (DNS failed, ECH was promised but not usable) or
the connection failed without showing the name (2 is every command's "the
command line is wrong").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ech import dial
from ech.arguments import usage_error
from ech.blocking import TLSSocket, _handshake
from ech.cli.dns_flags import add_ech_source
from ech.cli.outcome import Summary, paint, plain_error, summarize
from ech.client.config import ClientConfig
from ech.client.ech import select_config
from ech.config import ECHConfigList
from ech.demo import RecordingSocket, first_client_hello
from ech.errors import TLSError
from ech.extension import parse_client_hello_extension
from ech.http import fetch
from ech.http.errors import ResponseError
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType
from ech.tls.messages import ClientHello

if TYPE_CHECKING:
    from ech.quic.client import HTTP3Connection

__all__ = ["add_parser", "cmd_diagnose", "observed"]

E = ExtensionType


def observed(hello: ClientHello, sent: bytes, name: str) -> dict[str, object]:
    """What an observer reads in a ClientHello, and whether ``name`` was in clear.

    Args:
        hello: The (outer) ClientHello the client sent.
        sent: Every byte the observer could read of that connection.
        name: The real server name.
    """
    sni = hello.extension(E.SERVER_NAME)
    alpn = hello.extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
    found: dict[str, object] = {
        "sni": ext.decode_server_name(sni) if sni is not None else None,
        "alpn": [p.decode("latin-1") for p in ext.decode_alpn(alpn)] if alpn else [],
        "ech_extension": None,
        "name_visible": name.encode() in sent,
    }
    data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
    if data is not None:
        offer = parse_client_hello_extension(data)
        if offer is not None:
            found["ech_extension"] = {
                "config_id": offer.config_id,
                "enc_bytes": len(offer.enc),
                "payload_bytes": len(offer.payload),
            }
    return found


@dataclass
class _Wire:
    """Every byte our client sent, one entry per TCP connection."""

    sockets: list[RecordingSocket] = field(default_factory=list)

    def open(self, address: tuple[str, int], timeout: float | None) -> socket.socket:
        family, kind, proto, _, target = socket.getaddrinfo(
            *address, type=socket.SOCK_STREAM
        )[0]
        sock = RecordingSocket(family, kind, proto)
        sock.sent = bytearray()
        sock.settimeout(timeout)
        self.sockets.append(sock)
        sock.connect(target)
        return sock


def _dns_step(
    args: argparse.Namespace, host: str, port: int, config: ClientConfig
) -> tuple[dict[str, object], dial.Plan]:
    """Step 1 (and the plan): the record, or the given configs."""
    if args.ech_config_list is not None:
        plan = dial.Plan.given(
            config, args.ech_config_list, require_ech=args.require_ech
        )
        return {"source": "--ech-config-list (no DNS)"}, plan
    from ech.cli.dns import describe_endpoint, open_resolver  # dnspython

    with open_resolver(args) as resolver:
        resolution = resolver.resolve_https(host, port)
        plan = dial.plan(
            config, host, port, resolver=resolver, require_ech=args.require_ech
        )
    step: dict[str, object] = {
        "source": f"DoH {args.doh}",
        "query_name": resolution.query_name,
        "endpoints": [describe_endpoint(e) for e in resolution.endpoints],
        "rejected_records": [r.reason for r in resolution.rejected],
        "svcb_reliant": resolution.svcb_reliant,
        "addresses": list(plan.addresses),
        "port": plan.port,
    }
    return step, plan


def _configs_step(configs: ECHConfigList | None) -> dict[str, object]:
    chosen = select_config(configs) if configs is not None else None
    return {
        "configs": [
            {
                "config": dial.describe_config(c),
                "chosen": c is chosen,
            }
            for c in (configs.configs if configs is not None else ())
        ],
        "chosen_config_id": chosen.config_id if chosen is not None else None,
    }


#: What the observer got from one connection: its first ClientHello (None
#: if unreadable) and every byte it could read in clear.
Observed = list[tuple[ClientHello | None, bytes]]


def _tcp(
    plan: dial.Plan, address: str, port: int, host: str, path: str
) -> tuple[dial.Retriable | None, str | None, BaseException | None, Observed]:
    wire = _Wire()

    def once(config: ClientConfig, configs: ECHConfigList | None) -> TLSSocket:
        sock = wire.open((address, port), 15.0)
        return _handshake(sock, config, host, None, configs)

    tls: TLSSocket | None = None
    status: str | None = None
    failure: BaseException | None = None
    try:
        tls = dial.connect_with_retry(plan, once)
        with tls:
            status = fetch(tls, path, host=host).status_line
    except (TLSError, OSError, ResponseError) as error:
        failure = error
    seen: Observed = []
    for sock in wire.sockets:
        sent = bytes(sock.sent)
        try:
            seen.append((first_client_hello(sent), sent))
        except (ValueError, TLSError):
            seen.append((None, sent))
    return tls, status, failure, seen


async def _quic(
    plan: dial.Plan, address: str, port: int, host: str, path: str
) -> tuple[dial.Retriable | None, str | None, BaseException | None, Observed]:
    from ech.quic import observe  # aioquic, only when asked
    from ech.quic.client import open_http3

    taps: list[observe.UdpRelay] = []

    async def once(
        config: ClientConfig, configs: ECHConfigList | None
    ) -> HTTP3Connection:
        # One tap per QUIC connection: each has its own Initial keys.
        infos = await asyncio.get_running_loop().getaddrinfo(address, port)
        tap = observe.UdpRelay((str(infos[0][4][0]), port))
        await tap.start()
        taps.append(tap)
        attempt = dial.Plan.given(config, configs, ech_retry=False)
        return await open_http3(
            "127.0.0.1", tap.port, config, host, plan=attempt, timeout=15.0
        )

    h3: HTTP3Connection | None = None
    status: str | None = None
    failure: BaseException | None = None
    try:
        h3 = await dial.connect_with_retry_async(plan, once)
        async with h3:
            status = (await h3.request("GET", path)).status_line
    except (TLSError, OSError, ResponseError) as error:
        failure = error
    finally:
        for tap in taps:
            tap.close()
    seen: Observed = []
    for tap in taps:
        sent = b"".join(data for who, data in tap.datagrams if who == "client")
        try:
            crypto = observe.client_initial_crypto(tap.datagrams)
            seen.append((observe.first_client_hello(tap.datagrams), sent + crypto))
        except (ValueError, TLSError):
            seen.append((None, sent))
    return h3, status, failure, seen


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Walk DNS, configs, handshake and the wire; exit 1 if the name showed."""
    url = urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        usage_error("diagnose", f"{args.url}: give an https:// URL")
    host, port = url.hostname, url.port or 443
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    alpn = ("h3",) if args.http3 else ("http/1.1",)
    config = ClientConfig(cafile=args.ca, alpn_protocols=alpn)
    report: dict[str, object] = {"url": args.url, "transport": alpn[0]}
    try:
        dns_step, plan = _dns_step(args, host, port, config)
    except (TLSError, OSError, ValueError) as error:
        # DNSLookupError, ECHUnavailableError, or a name with no HTTPS RR.
        return _finish(args, report, host, error=error, seen=[])
    report["dns"] = dns_step
    report["ech_configs"] = _configs_step(plan.ech_configs)
    address = args.address or (plan.addresses[0] if plan.addresses else host)
    target = plan.port or port
    if args.http3:
        connection, status, failure, seen = asyncio.run(
            _quic(plan, address, target, host, path)
        )
    else:
        connection, status, failure, seen = _tcp(plan, address, target, host, path)
    if connection is not None and connection.ech_outcome is not None:
        outcome = connection.ech_outcome
        report["handshake"] = {
            "ech_status": str(outcome.status),
            "retried": connection.retried,
            **outcome.fields(),
            "http_status": status,
        }
    return _finish(
        args, report, host, error=failure, seen=seen, where=(address, target)
    )


def _finish(
    args: argparse.Namespace,
    report: dict[str, object],
    host: str,
    *,
    error: BaseException | None,
    seen: Observed,
    where: tuple[str, int] | None = None,
) -> int:
    if error is not None:
        explained = dial.explain_error(error)
        report["error"] = f"{type(error).__name__}: {error}"
        report["failure"] = plain_error(error, host, cafile=args.ca, where=where)
        if explained is not None:
            report["handshake"] = {
                "ech_status": str(explained.status),
                **explained.fields(),
            }
    connections: list[dict[str, object]] = [
        observed(hello, sent, host)
        if hello is not None
        else {
            "sni": None,
            "alpn": [],
            "ech_extension": None,
            "name_visible": host.encode() in sent,
        }
        for hello, sent in seen
    ]
    visible = any(c["name_visible"] for c in connections)
    report["observer"] = {"connections": connections, "name_visible": visible}
    report["hidden"] = (
        []
        if visible or not connections
        else [
            f"the server name {host} (the inner SNI, encrypted to the ECH config)",
            "the inner ClientHello's other extensions, and (TLS 1.3 itself) the"
            " certificate and all HTTP",
        ]
    )
    status = 1 if visible else 3 if error is not None or not connections else 0
    report["exit_status"] = status
    summary = _summary(report, host, connections, visible)
    report.update(summary.fields())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report, host, status)
        print(paint(summary, sys.stdout))
    return status


def _summary(
    report: dict[str, object],
    host: str,
    connections: list[dict[str, object]],
    visible: bool,
) -> Summary:
    """The plain line, from the handshake's outcome and what the wire showed.

    The observer's verdict wins: the name counts as visible when our own
    bytes carried it, whatever the handshake reported.
    """
    handshake = report.get("handshake")
    fields: dict[str, object] = dict(handshake) if isinstance(handshake, dict) else {}
    if connections:
        fields.setdefault("outer_server_name", connections[-1]["sni"])
    for key in ("error", "failure"):
        if key in report:
            fields[key] = report[key]
    summary = summarize(fields, host, sent=bool(connections))
    return Summary(summary.line, summary.level, visible)


def _print(report: dict[str, object], host: str, status: int) -> None:
    print(f"ech diagnose {report['url']} ({report['transport']})")
    dns_step = report.get("dns")
    if isinstance(dns_step, dict):
        print(f"1. DNS: {dns_step['source']}")
        if "query_name" in dns_step:
            print(f"   HTTPS {dns_step['query_name']}")
            for endpoint in dns_step["endpoints"]:
                count = len(endpoint["ech_configs"])
                print(
                    f"   endpoint priority {endpoint['priority']} target"
                    f" {endpoint['target']} port {endpoint['port']} alpn"
                    f" {','.join(endpoint['alpn']) or '-'} ech configs {count}"
                )
            for reason in dns_step["rejected_records"]:
                print(f"   skipped record: {reason}")
            reliant = "yes" if dns_step["svcb_reliant"] else "no"
            print(f"   SVCB-reliant (every record has ech, RFC 9848 §5.1): {reliant}")
            print(
                f"   connect to {dns_step['addresses'] or '-'} port {dns_step['port']}"
            )
    configs = report.get("ech_configs")
    if isinstance(configs, dict):
        print("2. ECH configs:")
        for entry in configs["configs"] or [{"config": "none", "chosen": False}]:
            mark = "  <- used" if entry["chosen"] else ""
            print(f"   {entry['config']}{mark}")
    handshake = report.get("handshake")
    if isinstance(handshake, dict):
        print(
            f"3. Handshake: ECH {handshake['ech_status']} ({handshake['ech_reason']})"
        )
        print(f"   {handshake['ech_detail']}")
        if handshake.get("http_status"):
            print(f"   {handshake['http_status']}")
    if "error" in report:
        print(f"   failed: {report['error']}")
    observer = report["observer"]
    assert isinstance(observer, dict)  # noqa: S101 - built above
    print("4. What a network observer saw:")
    if not observer["connections"]:
        print("   nothing: no ClientHello was sent")
    for number, seen in enumerate(observer["connections"], 1):
        ech_ext = seen["ech_extension"]
        ech_text = (
            f"ECH extension (config_id {ech_ext['config_id']}, "
            f"{ech_ext['enc_bytes']}-byte enc, {ech_ext['payload_bytes']}-byte"
            " payload)"
            if ech_ext
            else "no ECH extension"
        )
        print(
            f"   connection {number}: SNI {seen['sni']}, ALPN"
            f" {','.join(seen['alpn']) or '-'}, {ech_text}"
        )
        shown = "YES, in clear" if seen["name_visible"] else "no"
        print(f"   {host!r} in the client's bytes: {shown}")
    for item in report["hidden"]:  # type: ignore[attr-defined]  # a list
        print(f"   hidden: {item}")
    verdict = {
        0: f"the real name {host} stayed hidden",
        1: f"the real name {host} was VISIBLE on the wire",
        3: "the connection did not complete",
    }[status]
    print(f"Result: {verdict} (exit {status})")


EXAMPLES = """\
examples:
  ech diagnose https://secret.example:8443/ \\
      --doh https://127.0.0.1:8443/dns-query --ca ca.pem
  ech diagnose https://secret.example:8443/ --ech-config-list @ech.b64 \\
      --address 127.0.0.1 --ca ca.pem

exit status: 0 the connection completed and the name stayed hidden, 1 the
name was visible on the wire, 2 a wrong command line, 3 nothing completed
(and the name was not seen).
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech diagnose`` and its flags."""
    diagnose = commands.add_parser(
        "diagnose",
        help="DNS, configs, handshake, and what the network saw",
        description="Is ECH working for this URL, and if not, why? Walks the "
        "HTTPS record, each ECH config, the handshake, then what a network "
        "observer saw, decoded from our own client's bytes.",
        epilog=EXAMPLES,
    )
    diagnose.add_argument("url", metavar="URL", help="an https:// URL")
    add_ech_source(diagnose)
    diagnose.add_argument(
        "--address", metavar="ADDRESS", help="connect here, whatever DNS says"
    )
    diagnose.add_argument(
        "--http3", action="store_true", help="diagnose HTTP/3 over QUIC instead"
    )
    diagnose.add_argument(
        "--require-ech",
        action="store_true",
        help="strict mode: connect only with ECH, never the name in clear",
    )
    diagnose.add_argument("--json", action="store_true", help="print one JSON object")
    diagnose.set_defaults(func=cmd_diagnose)
