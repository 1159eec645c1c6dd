"""Publishing ECH configs in DNS: HTTPS record lines and advice.

:func:`https_record_line` writes one zone-file line (RFC 1035 §5.1) in the
presentation format of RFC 9460 §2.1 with the ``ech`` SvcParam of RFC 9848
§3 (standard Base64 of the ECHConfigList with its length prefix, no escape
sequences; ECH-18). The rdata is built from dnspython's SvcParam
classes and printed by dnspython, so the line parses in BIND 9.18, Unbound
``local-data`` and dnspython alike.

:func:`warnings_for` lists what would make clients ignore or misuse a
published list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Final

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.HTTPS
import dns.rdtypes.svcbbase

from ech import hpke
from ech.config import ECHConfigList
from ech.dns.records import query_name

__all__ = [
    "DEFAULT_ALPN",
    "DEFAULT_DNS_TTL",
    "https_rdata",
    "https_record_line",
    "warnings_for",
]

svcb = dns.rdtypes.svcbbase

DEFAULT_ALPN: Final[tuple[str, ...]] = ("h2", "http/1.1")
"""ALPN ids published by default: what ``ech serve`` speaks."""

DEFAULT_DNS_TTL: Final = 300
"""Seconds an HTTPS record may be cached: ``ech dns-record`` and ``ech serve --doh``.

One value for both, because the TTL is a promise the key rotation must keep:
a replaced key stays accept-only at least this long (``ech keygen --rotate
--retire-after``), or clients holding the old record are rejected. Five
minutes rather than one: some resolvers keep answers longer than a short
TTL (a configured minimum cache time), so a shorter TTL would not make old
records vanish sooner, only tempt operators to retire keys too early; and a
stale config costs one extra round trip, repaired by the retry_configs of
RFC 9849 §6.1.6. ``ech serve --doh`` builds its answers from the live keys
on every query, so there the TTL only tells caches how long to keep them.
"""

# What BoringSSL clients (Chrome, curl) accept: X25519 with HKDF-SHA256 and
# one of its AEADs (BoringSSL ssl/encrypted_client_hello.cc selects only
# X25519 configs; its server side requires HKDF-SHA256).
_BORINGSSL_AEADS: Final = frozenset(
    {hpke.AEAD.AES_128_GCM, hpke.AEAD.AES_256_GCM, hpke.AEAD.CHACHA20_POLY1305}
)


# dnspython's SvcParam and SVCB constructors carry no annotations; these
# typed aliases keep mypy --strict checking every call below.
_alpn_param: Callable[[tuple[str, ...]], svcb.Param] = svcb.ALPNParam
_port_param: Callable[[int], svcb.Param] = svcb.PortParam
_ipv4_param: Callable[[tuple[str, ...]], svcb.Param] = svcb.IPv4HintParam
_ipv6_param: Callable[[tuple[str, ...]], svcb.Param] = svcb.IPv6HintParam
_ech_param: Callable[[bytes], svcb.Param] = svcb.ECHParam
_https: Callable[
    [
        dns.rdataclass.RdataClass,
        dns.rdatatype.RdataType,
        int,
        dns.name.Name,
        dict[svcb.ParamKey, svcb.Param],
    ],
    dns.rdtypes.IN.HTTPS.HTTPS,
] = dns.rdtypes.IN.HTTPS.HTTPS


def https_rdata(
    ech_configs: ECHConfigList | None,
    *,
    port: int = 443,
    alpn: Sequence[str] = DEFAULT_ALPN,
    target: str = ".",
    priority: int = 1,
    ipv4hint: Sequence[str] = (),
    ipv6hint: Sequence[str] = (),
) -> dns.rdtypes.IN.HTTPS.HTTPS:
    """A ServiceMode HTTPS rdata (RFC 9460 §2.4.3, §9) carrying ``ech``.

    Args:
        ech_configs: The list to publish (RFC 9848 §3), or ``None`` for a
            record without ``ech``.
        port: The ``port`` SvcParam, written only when not 443.
        alpn: The ``alpn`` SvcParam; empty omits it.
        target: TargetName; ``.`` means the owner name (RFC 9460 §2.5.2).
        priority: SvcPriority, 1..65535 (0 would be AliasMode).
        ipv4hint: ``ipv4hint`` addresses (RFC 9460 §7.3).
        ipv6hint: ``ipv6hint`` addresses.

    Raises:
        ValueError: A value does not fit its SvcParam.
    """
    if not 1 <= priority <= 0xFFFF:
        raise ValueError("a ServiceMode record has SvcPriority 1..65535")
    if not 1 <= port <= 0xFFFF:
        raise ValueError(f"port {port} is outside 1..65535")
    for address in ipv4hint:
        ipaddress.IPv4Address(address)
    for address in ipv6hint:
        ipaddress.IPv6Address(address)
    params: dict[svcb.ParamKey, svcb.Param] = {}
    if alpn:
        params[svcb.ParamKey.ALPN] = _alpn_param(tuple(alpn))
    if port != 443:
        params[svcb.ParamKey.PORT] = _port_param(port)
    if ipv4hint:
        params[svcb.ParamKey.IPV4HINT] = _ipv4_param(tuple(ipv4hint))
    if ech_configs is not None:
        params[svcb.ParamKey.ECH] = _ech_param(ech_configs.encode())
    if ipv6hint:
        params[svcb.ParamKey.IPV6HINT] = _ipv6_param(tuple(ipv6hint))
    return _https(
        dns.rdataclass.IN,
        dns.rdatatype.HTTPS,
        priority,
        dns.name.from_text(target),
        params,
    )


def https_record_line(
    name: str,
    ech_configs: ECHConfigList,
    *,
    port: int = 443,
    alpn: Sequence[str] = DEFAULT_ALPN,
    target: str | None = None,
    priority: int = 1,
    ttl: int = DEFAULT_DNS_TTL,
    ipv4hint: Sequence[str] = (),
    ipv6hint: Sequence[str] = (),
) -> str:
    """One zone-file line publishing ``ech_configs`` for ``https://name:port``.

    The owner is ``name.`` for port 443, else ``_PORT._https.name.`` with a
    ``port`` SvcParam (RFC 9460 §9.1; interop.md lesson 4: curl looks
    there). TargetName is ``.``: curl 8.23 ignores records at
    ``_PORT._https`` owners with any other target, so for other ports give
    address hints (the owner ``_PORT._https.name`` has no addresses).
    Example::

        example.test. 300 IN HTTPS 1 . alpn="h2,http/1.1" ech="AEX+DQBB..."

    Args:
        name: The origin's host name.
        ech_configs: The ECHConfigList to publish.
        port: The origin's port.
        alpn: ALPN ids of the service.
        target: TargetName; ``None`` means ``.`` (the owner, RFC 9460
            §2.5.2), which clients reach by the hints or the origin's address.
        priority: SvcPriority (1 = most preferred).
        ttl: Record TTL in seconds; keep it below the key rotation period
            (:data:`~ech.dns.publish.DEFAULT_DNS_TTL`).
        ipv4hint: Optional ``ipv4hint`` addresses.
        ipv6hint: Optional ``ipv6hint`` addresses.

    Returns:
        The line, without a newline, with an absolute owner name.

    Raises:
        ValueError: Bad name, port, priority, TTL or hint.
    """
    if not 0 <= ttl <= 0x7FFFFFFF:
        raise ValueError("ttl must be within 0..2^31-1 (RFC 2181 §8)")
    owner = dns.name.from_text(query_name(name, port))
    if target is None:
        target = "."
    elif not target.endswith("."):
        target += "."
    rdata = https_rdata(
        ech_configs,
        port=port,
        alpn=alpn,
        target=target,
        priority=priority,
        ipv4hint=ipv4hint,
        ipv6hint=ipv6hint,
    )
    return f"{owner.to_text()} {ttl} IN HTTPS {rdata.to_text()}"


def warnings_for(configs: ECHConfigList) -> list[str]:
    """Problems with publishing ``configs``; empty when there are none.

    Checks:

    * configs this implementation cannot use (RFC 9849 §6.1; the reason of
      :meth:`ech.config.ECHConfig.unsupported_reason`);
    * no config with the mandatory-to-implement KEM and suite,
      DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM (RFC 9849 §9;
      ECH-17);
    * no X25519 config that BoringSSL clients accept: they ignore other
      KEMs and send the real SNI in the clear (interop.md lesson 3);
    * a repeated ``config_id``, which makes servers try several keys.
    """
    warnings: list[str] = []
    for index, config in enumerate(configs.configs):
        reason = config.unsupported_reason()
        if reason is not None:
            ident = (
                f"config_id {config.contents.config_id}"
                if config.contents is not None
                else f"version 0x{config.version:04x}"
            )
            warnings.append(f"config #{index} ({ident}) is not usable: {reason}")
    usable = [c.contents for c in configs.usable() if c.contents is not None]
    x25519 = hpke.KEM.DHKEM_X25519_HKDF_SHA256
    mti = any(
        c.kem_id == x25519
        and any(
            s.kdf_id == hpke.KDF.HKDF_SHA256 and s.aead_id == hpke.AEAD.AES_128_GCM
            for s in c.cipher_suites
        )
        for c in usable
    )
    if not mti:
        warnings.append(
            "no config offers the mandatory-to-implement X25519/HKDF-SHA256/"
            "AES-128-GCM (RFC 9849 §9)"
        )
    boringssl = any(
        c.kem_id == x25519
        and any(
            s.kdf_id == hpke.KDF.HKDF_SHA256 and s.aead_id in _BORINGSSL_AEADS
            for s in c.cipher_suites
        )
        for c in usable
    )
    if not boringssl:
        warnings.append(
            "no X25519 config with HKDF-SHA256: BoringSSL clients (Chrome, curl) "
            "ignore the others and send the real SNI in the clear"
        )
    ids = [c.config_id for c in (k.contents for k in configs.configs) if c is not None]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        warnings.append(
            "repeated config_id "
            + ", ".join(map(str, repeated))
            + ": servers must trial-decrypt with several keys"
        )
    return warnings
