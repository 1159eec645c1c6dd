"""``ech dig``, ``ech get`` and ``ech dns-record``: DNS for ECH on the command line.

Imported only when one of them runs, so that commands without DNS never
import dnspython and its HTTP stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import urlsplit

from ech import hpke
from ech.blocking import connect
from ech.client.config import ClientConfig
from ech.config import ECHConfig, ECHConfigList
from ech.dial import Plan
from ech.dns.discovery import discover
from ech.dns.publish import DEFAULT_ALPN, https_record_line, warnings_for
from ech.dns.records import ServiceEndpoint
from ech.dns.resolver import DNSLookupError, DoHResolver
from ech.errors import ECHRejectedError, TLSError
from ech.events import ECHStatus
from ech.http import Response, fetch
from ech.keys import load_ech_key
from ech.serve.status_page import status_fields


def describe_config(config: ECHConfig) -> dict[str, object]:
    """The decoded fields of one ECHConfig, for people and for JSON."""
    contents = config.contents
    if contents is None:
        return {"version": f"0x{config.version:04x}", "supported": False}
    return {
        "config_id": contents.config_id,
        "kem": _name(hpke.KEM, contents.kem_id),
        "cipher_suites": [
            f"{_name(hpke.KDF, s.kdf_id)}/{_name(hpke.AEAD, s.aead_id)}"
            for s in contents.cipher_suites
        ],
        "public_name": contents.public_name.decode("ascii", "replace"),
        "maximum_name_length": contents.maximum_name_length,
        "supported": config.unsupported_reason() is None,
    }


def _name(enum: type[hpke.KEM] | type[hpke.KDF] | type[hpke.AEAD], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:04x}"


def describe_endpoint(endpoint: ServiceEndpoint) -> dict[str, object]:
    """One ServiceMode endpoint, decoded."""
    return {
        "priority": endpoint.priority,
        "target": endpoint.target,
        "port": endpoint.port,
        "alpn": list(endpoint.alpn),
        "no_default_alpn": endpoint.no_default_alpn,
        "ipv4hint": list(endpoint.ipv4hint),
        "ipv6hint": list(endpoint.ipv6hint),
        "ech": endpoint.ech.to_base64() if endpoint.ech else None,
        "ech_configs": [describe_config(c) for c in endpoint.ech.configs]
        if endpoint.ech
        else [],
    }


def open_resolver(args: argparse.Namespace) -> DoHResolver:
    """The DoH resolver of ``--doh URL`` and ``--ca``, or exit with a clean error."""
    if not args.doh:
        raise SystemExit(f"ech {args.command}: give the DoH resolver with --doh URL")
    try:
        return DoHResolver(args.doh, cafile=args.ca)
    except (ValueError, OSError) as error:
        raise SystemExit(f"ech {args.command}: {error}") from None


def cmd_dig(args: argparse.Namespace) -> int:
    """Look up and decode the HTTPS records of NAME."""
    with open_resolver(args) as resolver:
        try:
            resolution = resolver.resolve_https(args.name, args.port)
        except DNSLookupError as error:
            print(f"ech dig: {error}", file=sys.stderr)
            return 1
    result = {
        "query_name": resolution.query_name,
        "target_name": resolution.target_name,
        "aliases": list(resolution.aliases),
        "ttl": resolution.ttl,
        "svcb_reliant": resolution.svcb_reliant,
        "endpoints": [describe_endpoint(e) for e in resolution.endpoints],
        "rejected": [r.reason for r in resolution.rejected],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{resolution.query_name} HTTPS (ttl {resolution.ttl})")
    for endpoint in result["endpoints"]:  # type: ignore[attr-defined]  # a list
        print(
            f"  priority {endpoint['priority']} target {endpoint['target']} "
            f"port {endpoint['port']} alpn {','.join(endpoint['alpn']) or '-'}"
        )
        for config in endpoint["ech_configs"]:
            print(f"    ech config {config}")
    for reason in result["rejected"]:  # type: ignore[attr-defined]  # a list
        print(f"  rejected: {reason}")
    return 0


def _plan(args: argparse.Namespace, host: str, port: int) -> tuple[Plan, str, int]:
    """What to offer and where to connect: from ``--ech-config-list`` or DoH.

    Raises:
        SystemExit: neither was given, or DNS failed or gave no address.
    """
    alpn = ("h3",) if args.http3 else ("http/1.1",)
    config = ClientConfig(cafile=args.ca, alpn_protocols=alpn)
    if args.ech_config_list is not None:
        # Configs given: no DoH; the address is --address, or the URL's host.
        return Plan(config, args.ech_config_list), args.address or host, port
    with open_resolver(args) as resolver:
        try:
            found = discover(resolver, host, port)
        except DNSLookupError as error:
            raise SystemExit(f"ech get: {error}") from None
    if not found.addresses and not args.address:
        raise SystemExit(f"ech get: no address for {host}")
    address = args.address or found.addresses[0]
    return Plan.from_discovery(config, found), address, found.port


def _get_tcp(
    plan: Plan, address: str, port: int, host: str, target: str
) -> tuple[dict[str, object], Response]:
    with connect(address, port, plan.config, host, ech_configs=plan.ech_configs) as tls:
        outcome: dict[str, object] = {
            **status_fields(tls.negotiated),
            "retried": tls.retried,
            "http_version": "http/1.1",
        }
        return outcome, fetch(tls, target, host=host)


async def _get_http3(
    plan: Plan, address: str, port: int, host: str, target: str
) -> tuple[dict[str, object], Response]:
    from ech.quic.client import open_http3  # aioquic, only when asked

    async with await open_http3(
        address, port, plan.config, host, ech_configs=plan.ech_configs
    ) as h3:
        outcome: dict[str, object] = {
            **status_fields(h3.negotiated),
            "retried": h3.retried,
            "http_version": "h3",
        }
        return outcome, await h3.request("GET", target)


def cmd_get(args: argparse.Namespace) -> int:
    """Connect with ECH (configs from DoH or given), GET the URL; body to stdout.

    Over TCP unless ``--http3``: an HTTPS record with ``alpn=h3`` only says
    the server also speaks HTTP/3; browsers race or prefer QUIC, we make
    the transport an explicit choice (UDP is often blocked, and a failed
    QUIC attempt must never fall back to a cleartext ClientHello).
    """
    url = urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        raise SystemExit("ech get: give an https:// URL")
    host, port = url.hostname, url.port or 443
    plan, address, port = _plan(args, host, port)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    outcome: dict[str, object] = {
        "url": args.url,
        "ech_from_dns": args.ech_config_list is None and plan.ech_configs is not None,
    }
    status = 1
    body = b""
    try:
        if args.http3:
            got, response = asyncio.run(_get_http3(plan, address, port, host, target))
        else:
            got, response = _get_tcp(plan, address, port, host, target)
        outcome.update(got)
        body = response.body
        outcome["http_status"] = response.status_line
        wanted = ECHStatus.ACCEPTED if plan.ech_configs else ECHStatus.GREASE
        status = 0 if outcome["ech_status"] == str(wanted) else 1
    except ECHRejectedError as rejection:
        # The record promised ECH: no cleartext fallback (RFC 9849 §8.1.1).
        outcome["ech_status"] = str(ECHStatus.REJECTED)
        outcome["error"] = str(rejection)
    except (TLSError, OSError) as error:
        outcome["error"] = f"{type(error).__name__}: {error}"
    if args.json:
        outcome["body"] = body.decode("utf-8", "replace")
        print(json.dumps(outcome, indent=2))
    else:
        sys.stdout.buffer.write(body)
        print(json.dumps(outcome), file=sys.stderr)
    return status


def cmd_dns_record(args: argparse.Namespace) -> int:
    """Print the HTTPS record publishing the ECH keys, in zone-file syntax."""
    try:
        keys = [load_ech_key(path) for path in args.ech_key]
    except (ValueError, OSError) as error:
        raise SystemExit(f"ech dns-record: {error}") from None
    configs = ECHConfigList(tuple(key.config for key in keys))
    for warning in warnings_for(configs):
        print(f"warning: {warning}", file=sys.stderr)
    alpn = tuple(args.alpn) if args.alpn else DEFAULT_ALPN
    if args.port != 443 and not (args.ipv4hint or args.ipv6hint):
        print(
            "warning: for a port other than 443 give --ipv4hint/--ipv6hint: the"
            f" record's owner _{args.port}._https.{args.name} has no addresses",
            file=sys.stderr,
        )
    try:
        line = https_record_line(
            args.name,
            configs,
            port=args.port,
            alpn=alpn,
            ipv4hint=args.ipv4hint or (),
            ipv6hint=args.ipv6hint or (),
        )
    except ValueError as error:
        raise SystemExit(f"ech dns-record: {error}") from None
    print(line)
    return 0
