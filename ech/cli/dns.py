"""``ech dig``, ``ech get`` and ``ech dns-record``: DNS for ECH on the command line.

Imported only when one of them runs, so that commands without DNS never
import dnspython and its HTTP stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ech import hpke
from ech.arguments import usage_error
from ech.cli.outcome import nothing_sent, paint, plain_error, summarize
from ech.config import ECHConfig
from ech.dial import explain_error, hpke_name
from ech.dns.publish import (
    DEFAULT_ALPN,
    DEFAULT_DNS_TTL,
    https_record_line,
    warnings_for,
)
from ech.dns.records import ServiceEndpoint
from ech.dns.resolver import DNSLookupError, DoHResolver
from ech.errors import ECHRejectedError, TLSError
from ech.events import ECHStatus, HandshakeComplete
from ech.httpx import ECHTransport
from ech.serve.keyring import KeyringError, load_keyset
from ech.serve.status_page import status_fields


def describe_config(config: ECHConfig) -> dict[str, object]:
    """The decoded fields of one ECHConfig, for people and for JSON."""
    contents = config.contents
    if contents is None:
        return {"version": f"0x{config.version:04x}", "supported": False}
    return {
        "config_id": contents.config_id,
        "kem": hpke_name(hpke.KEM, contents.kem_id),
        "cipher_suites": [
            f"{hpke_name(hpke.KDF, s.kdf_id)}/{hpke_name(hpke.AEAD, s.aead_id)}"
            for s in contents.cipher_suites
        ],
        "public_name": contents.public_name.decode("ascii", "replace"),
        "maximum_name_length": contents.maximum_name_length,
        "supported": config.unsupported_reason() is None,
    }


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
    try:
        return DoHResolver(args.doh, cafile=args.ca)
    except (ValueError, OSError) as error:
        usage_error(args.command, f"--doh {args.doh}: {error}")


def _no_record(name: str, port: int) -> str:
    """Why ``ech dig`` found nothing, and where the record may be instead."""
    if port == 443:
        return (
            f"no HTTPS record for {name}; if the service is on another port, "
            f"give --port PORT (the record then lives at _PORT._https.{name})"
        )
    return (
        f"no HTTPS record for {name} port {port} (looked at "
        f"_{port}._https.{name}); for port 443, leave out --port"
    )


def cmd_dig(args: argparse.Namespace) -> int:
    """Look up and decode the HTTPS records of NAME."""
    with open_resolver(args) as resolver:
        try:
            resolution = resolver.resolve_https(args.name, args.port)
        except DNSLookupError as error:
            failure = plain_error(error, args.name, cafile=args.ca)
            print(f"ech dig: {failure}", file=sys.stderr)
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
    found = bool(resolution.endpoints)
    if not found:
        print(f"ech dig: {_no_record(args.name, args.port)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if found else 1
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
    return 0 if found else 1


#: ``--json``'s ``http_version`` names (ALPN ids), from httpx's.
_HTTP_VERSIONS = {"HTTP/1.1": "http/1.1", "HTTP/2": "h2", "HTTP/3": "h3"}

#: Reasons that mean the DNS said "no ECH here": GREASE is then the outcome
#: asked for, as before (exit status 0).
_NO_ECH_IN_DNS = ("record_without_ech", "no_https_record")


def _transport(args: argparse.Namespace) -> ECHTransport:
    """The httpx transport ``ech get`` runs on, from its flags.

    Raises:
        SystemExit: the flags make no transport (a bad --doh URL), exit 2.
    """
    try:
        return ECHTransport(
            cafile=args.ca,
            http2=args.http2,
            http3=args.http3,
            # Configs given: no DoH (the address is --address, or the host's).
            doh=args.doh if args.ech_config_list is None else None,
            ech_configs=args.ech_config_list,
            require_ech=args.require_ech,
            address=args.address,
        )
    except (ValueError, OSError) as error:
        usage_error(args.command, str(error))


def _connection_fields(response: httpx.Response) -> dict[str, object]:
    """The ``--json`` fields of the connection a response came on."""
    extensions = response.extensions
    handshake = extensions["handshake"]
    if not isinstance(handshake, HandshakeComplete):
        raise TypeError("not a response of ech.httpx")
    return {
        **status_fields(handshake),
        "retried": extensions["retried"],
        "http_version": _HTTP_VERSIONS.get(
            response.http_version, response.http_version
        ),
        "ech_reason": extensions.get("ech_reason"),
        "ech_detail": extensions.get("ech_detail"),
    }


def _cause(error: BaseException) -> BaseException:
    """Our error behind an httpx exception (its ``__cause__``), if any."""
    cause = error.__cause__
    return cause if isinstance(cause, TLSError | OSError) else error


def cmd_get(args: argparse.Namespace) -> int:
    """Connect with ECH (configs from DoH or given), GET the URL; body to stdout.

    Runs on :class:`ech.httpx.ECHTransport`, as an embedder's httpx would:
    HTTP/1.1, or HTTP/2 by ALPN with ``--http2``; HTTP/3 with ``--http3``
    only. An HTTPS record with ``alpn=h3`` only says the server also speaks
    HTTP/3; browsers race or prefer QUIC, we make the transport an explicit
    choice (UDP is often blocked, and a failed QUIC attempt must never fall
    back to a cleartext ClientHello).
    """
    url = urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        usage_error(args.command, f"{args.url}: give an https:// URL")
    outcome: dict[str, object] = {"url": args.url, "ech_from_dns": False}
    status = 1
    body = b""
    transport = _transport(args)
    try:
        with httpx.Client(transport=transport, timeout=30.0) as client:
            response = client.get(args.url)
        outcome.update(_connection_fields(response))
        body = response.content
        outcome["http_status"] = (
            f"{response.http_version} {response.status_code} {response.reason_phrase}"
        )
        reason = str(outcome["ech_reason"])
        outcome["ech_from_dns"] = args.ech_config_list is None and reason in (
            "accepted",
            "accepted_after_retry",
        )
        accepted = outcome["ech_status"] == str(ECHStatus.ACCEPTED)
        grease = outcome["ech_status"] == str(ECHStatus.GREASE)
        status = 0 if accepted or (grease and reason in _NO_ECH_IN_DNS) else 1
    except httpx.HTTPError as failure:
        error = _cause(failure)
        explained = explain_error(error)
        if explained is not None:
            # The record promised ECH: no cleartext fallback (RFC 9849 §8.1.1).
            outcome["ech_status"] = str(explained.status)
            outcome.update(explained.fields())
            outcome["ech_from_dns"] = args.ech_config_list is None and isinstance(
                error, ECHRejectedError
            )
        outcome["error"] = f"{type(error).__name__}: {error}"
        attempt = _attempt_fields(transport, error, url.hostname, args.ca)
        outcome.update({k: v for k, v in attempt.items() if k not in outcome})
        sent = not nothing_sent(error)
    else:
        sent = True
    summary = summarize(outcome, url.hostname, sent=sent)
    outcome.update(summary.fields())
    if args.json:
        outcome["body"] = body.decode("utf-8", "replace")
        print(json.dumps(outcome, indent=2))
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        print(json.dumps(outcome), file=sys.stderr)
        print(paint(summary, sys.stderr), file=sys.stderr)
    return status


def _attempt_fields(
    transport: ECHTransport, error: BaseException, host: str, cafile: str | None
) -> dict[str, object]:
    """Where a failed ``ech get`` connected, with what, and the error in words.

    ``address`` and ``port`` (where the TCP or QUIC connection went), the
    ``ech_status``/``ech_reason`` the plan had (GREASE after no record, say;
    the caller keeps those the failure set itself), and ``failure``: the
    error and its fix.
    """
    attempt = transport.last_attempt
    if attempt is None or isinstance(error, DNSLookupError):
        return {"failure": plain_error(error, host, cafile=cafile)}
    plan, where = attempt
    fields: dict[str, object] = {
        "address": where[0],
        "port": where[1],
        "failure": plain_error(error, host, cafile=cafile, where=where),
    }
    if plan.reason is None:
        fields["ech_status"] = str(ECHStatus.OFFERED)
    else:  # no real ECH: say why, and what was (to be) sent
        grease = plan.config.ech_grease or plan.ech_configs is not None
        fields["ech_status"] = str(
            ECHStatus.GREASE if grease else ECHStatus.NOT_OFFERED
        )
        fields["ech_reason"] = str(plan.reason)
        fields["ech_detail"] = plan.detail
    return fields


def cmd_dns_record(args: argparse.Namespace) -> int:
    """Print the HTTPS record publishing the ECH keys, in zone-file syntax.

    The keys are read as ``ech serve`` reads them (:func:`load_keyset`):
    what is published is what the server sends as retry_configs, so a key
    directory that ``ech keygen --rotate`` maintains publishes its advertised
    keys and leaves the accept-only ones out.
    """
    if not args.ech_key and not args.ech_key_dir:
        usage_error(
            args.command, "give the keys with --ech-key FILE or --ech-key-dir DIR"
        )
    try:
        # Paths whatever the flag's type gives (a checked file name is a str).
        keyset = load_keyset([Path(p) for p in args.ech_key], args.ech_key_dir)
    except KeyringError as error:
        usage_error(args.command, str(error))
    configs = keyset.retry_configs
    if configs is None:
        places = ", ".join(map(str, args.ech_key_dir))
        usage_error(args.command, f"--ech-key-dir: no ECH key (*.pem) in {places}")
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
            ttl=DEFAULT_DNS_TTL if args.ttl is None else args.ttl,
            ipv4hint=args.ipv4hint or (),
            ipv6hint=args.ipv6hint or (),
        )
    except ValueError as error:
        usage_error(args.command, str(error))
    print(line)
    return 0
