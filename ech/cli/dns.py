"""``ech dig``, ``ech get`` and ``ech dns-record``: DNS for ECH on the command line.

Imported only when one of them runs, so that commands without DNS never
import dnspython and its HTTP stack.
"""

from __future__ import annotations

import argparse
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
from ech.http import fetch
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


def cmd_get(args: argparse.Namespace) -> int:
    """Discover, connect with ECH, GET the URL; body to stdout."""
    url = urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        raise SystemExit("ech get: give an https:// URL")
    host, port = url.hostname, url.port or 443
    outcome: dict[str, object] = {"url": args.url}
    status = 1
    with open_resolver(args) as resolver:
        try:
            found = discover(resolver, host, port)
        except DNSLookupError as error:
            print(f"ech get: {error}", file=sys.stderr)
            return 1
    outcome["ech_from_dns"] = found.ech_configs is not None
    if not found.addresses:
        print(f"ech get: no address for {host}", file=sys.stderr)
        return 1
    plan = Plan.from_discovery(
        ClientConfig(cafile=args.ca, alpn_protocols=("http/1.1",)), found
    )
    body = b""
    try:
        with connect(
            found.addresses[0],
            found.port,
            plan.config,
            host,
            ech_configs=plan.ech_configs,
        ) as tls:
            outcome.update(status_fields(tls.negotiated))
            outcome["retried"] = tls.retried
            target = url.path or "/"
            if url.query:
                target += "?" + url.query
            response = fetch(tls, target, host=host)
        body = response.body
        outcome["http_status"] = response.status_line
        wanted = ECHStatus.ACCEPTED if found.ech_configs else ECHStatus.GREASE
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
