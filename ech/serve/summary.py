"""``ech serve``'s startup summary: what it serves, and where, in one block.

An operator starting a server wants to see at once which names it answers
for and with which certificates (and when they expire), whether ECH is on
and with which keys (the ``config_id``, ``public_name`` and KEM a client's
config must match, RFC 9849 §4), and every address it listens on. The
block goes to stderr once, when connections are accepted, after the
``listening on`` lines on stdout that scripts wait for. It names files and
public parameters only, never key material. Each ECH key's line (cut
short below) ends in the KEM's name and code point (RFC 9180 §7.1), whether
it is advertised in retry_configs or accept-only, and its file.

Example::

    ech serve: ready
      names:   public.example  (public.pem, expires 2027-03-01, in 87 days)
               secret.example  (secret.pem, expires 2027-03-01, in 87 days)
      ECH:     on, 1 key
               config_id 36  public_name public.example  KEM DHKEM_X25519_...
      TLS:     127.0.0.1:8443 (TCP)
      HTTP/3:  127.0.0.1:8443 (UDP)
      DoH:     https://127.0.0.1:8443/dns-query
      metrics: http://127.0.0.1:9100/metrics
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from ech import hpke
from ech.serve.keyring import KeyPolicy, Keyring, KeySet
from ech.tls.certificates import CertifiedKey

__all__ = ["host_port", "print_summary", "startup_summary"]

_INDENT = " " * 11


def host_port(host: str, port: int) -> str:
    """``HOST:PORT`` with an IPv6 address in brackets (RFC 3986 §3.2.2)."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _kem_name(kem_id: int) -> str:
    try:
        return f"{hpke.KEM(kem_id).name} (0x{kem_id:04x})"
    except ValueError:
        return f"0x{kem_id:04x}"


def _served_names(certified: CertifiedKey) -> list[str]:
    """The leaf's subjectAltName DNS names and addresses, or its subject."""
    leaf = certified.chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [leaf.subject.rfc4514_string()]
    addresses = san.value.get_values_for_type(x509.IPAddress)
    return [*certified.dns_names, *map(str, addresses)]


def _names(
    certificates: Sequence[CertifiedKey], paths: Sequence[Path], now: datetime.datetime
) -> list[str]:
    lines: list[str] = []
    for certified, path in zip(certificates, paths, strict=True):
        expires = certified.chain[0].not_valid_after_utc
        days = (expires - now).days
        when = f"in {days} days" if expires > now else "EXPIRED"
        names = _served_names(certified)
        for name in names:
            lines.append(f"{name}  ({path.name}, expires {expires:%Y-%m-%d}, {when})")
    return lines


def _keys(keyset: KeySet) -> list[str]:
    if not keyset.entries:
        return ["off (no --ech-key or --ech-key-dir keys)"]
    count = len(keyset.entries)
    lines = [f"on, {count} key{'s' if count > 1 else ''}"]
    for entry in keyset.entries:
        contents = entry.key.config.contents
        if contents is None:  # pragma: no cover - our keys are all version 0xfe0d
            continue
        use = "advertised" if entry.policy is KeyPolicy.RETRY else "accept-only"
        lines.append(
            f"config_id {contents.config_id}  "
            f"public_name {contents.public_name.decode('ascii', 'replace')}  "
            f"KEM {_kem_name(contents.kem_id)}  {use}  {entry.path.name}"
        )
    return lines


def startup_summary(
    certificates: Sequence[CertifiedKey],
    cert_paths: Sequence[Path],
    keyset: KeySet,
    tls: tuple[str, int],
    *,
    http3: bool,
    doh_path: str | None,
    metrics: tuple[str, int] | None,
    now: datetime.datetime | None = None,
) -> str:
    """The summary block (see the module docstring), without a final newline.

    Args:
        certificates: the served chains, in ``--cert`` order.
        cert_paths: the ``--cert`` files they came from.
        keyset: the ECH keys loaded.
        tls: the address TCP listens on (HTTP/3 shares it, on UDP).
        http3: whether HTTP/3 is served.
        doh_path: the ``--doh`` path, or None.
        metrics: the address ``/metrics`` is served at, or None.
        now: the time expiry is counted from (the current time if None).
    """
    now = now or datetime.datetime.now(datetime.UTC)
    address = host_port(*tls)
    sections = [
        ("names:", _names(certificates, cert_paths, now)),
        ("ECH:", _keys(keyset)),
        ("TLS:", [f"{address} (TCP)"]),
        ("HTTP/3:", [f"{address} (UDP)" if http3 else "off (--http3)"]),
        ("DoH:", [f"https://{address}{doh_path}" if doh_path else "off (--doh PATH)"]),
        (
            "metrics:",
            [f"http://{host_port(*metrics)}/metrics" if metrics else "off (--metrics)"],
        ),
    ]
    lines = ["ech serve: ready"]
    for label, values in sections:
        first, *rest = values
        lines.append(f"  {label:<8} {first}")
        lines += [f"{_INDENT}{value}" for value in rest]
    return "\n".join(lines)


def print_summary(
    keyring: Keyring,
    cert_paths: Sequence[Path],
    tls: tuple[str, int],
    *,
    http3: bool,
    doh_path: str | None,
    metrics: tuple[str, int] | None,
) -> None:
    """Print :func:`startup_summary` for what ``keyring`` serves to stderr."""
    summary = startup_summary(
        keyring().certificates,
        cert_paths,
        keyring.keyset,
        tls,
        http3=http3,
        doh_path=doh_path,
        metrics=metrics,
    )
    print(summary, file=sys.stderr, flush=True)
