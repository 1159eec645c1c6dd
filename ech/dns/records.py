"""HTTPS resource records to service endpoints (RFC 9460, RFC 9848).

The record codec is dnspython's (:mod:`dns.rdtypes.svcbbase`,
:class:`dns.rdtypes.IN.HTTPS.HTTPS`); this module only interprets parsed
records for an ECH client:

* the query name of an ``https`` origin (RFC 9460 §9.1),
* AliasMode vs ServiceMode and the priority order (RFC 9460 §2.4.1),
* the effective TargetName of ``.`` (RFC 9460 §2.5.2),
* mandatory keys and compatibility (RFC 9460 §8; automatically mandatory
  keys of HTTPS, §9),
* the ``ech`` value as an ECHConfigList (RFC 9848 §3; ECH-18).

Malformed wire data never gets this far: dnspython's wire parser rejects a
whole DNS message whose SVCB rdata breaks RFC 9460 §2.2 (keys not strictly
increasing, a value overrunning the rdata, an ``ech`` value whose length
prefix does not match) or is not self-consistent (a ``mandatory`` key that
is absent, ``no-default-alpn`` without ``alpn``; §2.4.3, §8), raising
:class:`dns.exception.FormError`. What dnspython accepts but we cannot use
(an ``ech`` value that is not an ECHConfigList, an unknown mandatory key) is
rejected here, one record at a time, with a reason.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset

from ech.config import ECHConfigList
from ech.errors import DecodeError

__all__ = [
    "HTTPS_DEFAULT_ALPN",
    "UNDERSTOOD_KEYS",
    "InvalidHTTPSRecord",
    "RRsetEndpoints",
    "RejectedRecord",
    "ServiceEndpoint",
    "endpoint_from_rdata",
    "endpoints_from_rrset",
    "query_name",
]

ParamKey = dns.rdtypes.svcbbase.ParamKey

HTTPS_DEFAULT_ALPN: Final[tuple[str, ...]] = ("http/1.1",)
"""The default ALPN set of the HTTPS RR (RFC 9460 §9)."""

UNDERSTOOD_KEYS: Final[frozenset[int]] = frozenset(
    {
        ParamKey.MANDATORY,
        ParamKey.ALPN,
        ParamKey.NO_DEFAULT_ALPN,
        ParamKey.PORT,
        ParamKey.IPV4HINT,
        ParamKey.ECH,
        ParamKey.IPV6HINT,
    }
)
"""SvcParamKeys this client implements. A record whose ``mandatory`` list
names any other key is incompatible and skipped (RFC 9460 §8). The
automatically mandatory keys of HTTPS, ``port`` and ``no-default-alpn``
(RFC 9460 §9), are both understood."""

_SYSTEM_RANDOM: Final = random.SystemRandom()


class InvalidHTTPSRecord(ValueError):
    """One HTTPS record cannot be used; the message says why.

    Raised for an ``ech`` value that is not an ECHConfigList (RFC 9848 §3)
    and for a record listing a mandatory key we do not implement (RFC 9460
    §8).

    Attributes:
        malformed: ``True`` when the record's SvcParams do not have the
            expected format (RFC 9460 §2.2), ``False`` when the record is
            only incompatible with this client (RFC 9460 §8).
    """

    def __init__(self, message: str, *, malformed: bool) -> None:
        super().__init__(message)
        self.malformed = malformed


def query_name(host: str, port: int = 443) -> str:
    """The HTTPS RR query name of ``https://host:port`` (RFC 9460 §9.1).

    ``host`` itself for port 443, else Port Prefix Naming
    ``_PORT._https.host`` (RFC 9460 §2.3).

    Args:
        host: The origin's host name, with or without the final dot.
        port: The origin's port.

    Returns:
        The name as text, without the final dot.

    Raises:
        ValueError: An IP address literal (it has no HTTPS RR), an invalid
            name, or a port outside 1..65535.
    """
    if not 1 <= port <= 0xFFFF:
        raise ValueError(f"port {port} is outside 1..65535")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError(f"{host!r} is an IP address literal; it has no HTTPS RR")
    try:
        name = dns.name.from_text(host)
    except dns.exception.DNSException as err:
        raise ValueError(f"invalid host name {host!r}: {err}") from err
    if name == dns.name.root:
        raise ValueError("the root name is not a host name")
    if port != 443:
        name = dns.name.Name((f"_{port}".encode(), b"_https")).concatenate(name)
    return name.to_text(omit_final_dot=True)


@dataclass(frozen=True)
class ServiceEndpoint:
    """One ServiceMode HTTPS record, interpreted (RFC 9460 §2.4.3, §7).

    Attributes:
        priority: SvcPriority, 1..65535; smaller is preferred.
        target: The effective TargetName without the final dot: the owner
            name when the record's TargetName is ``.`` (RFC 9460 §2.5.2).
        port: The ``port`` SvcParam, else the origin's port (§7.2).
        alpn: The ``alpn`` SvcParam's protocol ids (latin-1 decoded, so the
            octets round-trip), in record order.
        no_default_alpn: ``no-default-alpn`` is present (§7.1.1).
        ipv4hint: ``ipv4hint`` addresses (§7.3).
        ipv6hint: ``ipv6hint`` addresses (§7.3), in RFC 5952 text.
        ech: The ``ech`` SvcParam as an ECHConfigList (RFC 9848 §3), or
            ``None`` when absent.
        mandatory: The ``mandatory`` SvcParam's keys (§8), all understood.
    """

    priority: int
    target: str
    port: int
    alpn: tuple[str, ...] = ()
    no_default_alpn: bool = False
    ipv4hint: tuple[str, ...] = ()
    ipv6hint: tuple[str, ...] = ()
    ech: ECHConfigList | None = None
    mandatory: tuple[int, ...] = ()

    @property
    def alpn_set(self) -> tuple[str, ...]:
        """The SVCB ALPN set (RFC 9460 §7.1.1).

        ``alpn`` plus the HTTPS default set (§9) unless ``no-default-alpn``.
        """
        if self.no_default_alpn:
            return self.alpn
        extra = tuple(a for a in HTTPS_DEFAULT_ALPN if a not in self.alpn)
        return self.alpn + extra


@dataclass(frozen=True)
class RejectedRecord:
    """A record that was not used, and why.

    Attributes:
        owner: The record's owner name, without the final dot.
        record: The rdata in presentation format.
        reason: Why it was skipped.
        malformed: ``True`` when its SvcParams do not have the expected
            format (RFC 9460 §2.2), ``False`` when it is merely incompatible
            (an unknown mandatory key, RFC 9460 §8).
    """

    owner: str
    record: str
    reason: str
    malformed: bool


@dataclass(frozen=True)
class RRsetEndpoints:
    """What one HTTPS RRset says (RFC 9460 §2.4).

    Attributes:
        alias: The TargetName of the AliasMode record, when the RRset has
            one; its ServiceMode records are then ignored (§2.4.1). The root
            name means the service does not exist (§2.5.1).
        endpoints: Compatible ServiceMode endpoints in priority order.
        rejected: Records skipped, with reasons.
    """

    alias: dns.name.Name | None
    endpoints: tuple[ServiceEndpoint, ...]
    rejected: tuple[RejectedRecord, ...]


def endpoint_from_rdata(
    rdata: dns.rdtypes.svcbbase.SVCBBase, owner: dns.name.Name | str, port: int = 443
) -> ServiceEndpoint:
    """Interpret one ServiceMode record (RFC 9460 §2.4.3, §7, §8).

    Args:
        rdata: A parsed HTTPS (or SVCB) rdata with SvcPriority > 0.
        owner: The record's owner name, the effective TargetName for ``.``.
        port: The origin's port, used when there is no ``port`` SvcParam.

    Returns:
        The endpoint. SvcParams we do not implement are ignored unless
        mandatory (RFC 9460 §2.4.3).

    Raises:
        ValueError: ``rdata`` is in AliasMode (it names no endpoint).
        InvalidHTTPSRecord: The ``ech`` value is not an ECHConfigList
            (RFC 9848 §3, ECH-18) or a mandatory key is unknown
            (RFC 9460 §8). The record must then not be used at all.
    """
    if rdata.priority == 0:
        raise ValueError("an AliasMode record (SvcPriority 0) names no endpoint")
    params = rdata.params
    mandatory: tuple[int, ...] = ()
    mandatory_param = params.get(ParamKey.MANDATORY)
    if mandatory_param is not None:
        mandatory = tuple(int(k) for k in mandatory_param.keys)
        unknown = [k for k in mandatory if k not in UNDERSTOOD_KEYS]
        if unknown:
            names = ", ".join(_key_text(k) for k in unknown)
            raise InvalidHTTPSRecord(
                f"mandatory SvcParamKey {names} is not implemented (RFC 9460 §8)",
                malformed=False,
            )
    ech: ECHConfigList | None = None
    ech_param = params.get(ParamKey.ECH)
    if ech_param is not None:
        try:
            ech = ECHConfigList.parse(bytes(ech_param.ech))
        except DecodeError as err:
            raise InvalidHTTPSRecord(
                f"ech value is not an ECHConfigList (RFC 9848 §3): {err}",
                malformed=True,
            ) from err
    alpn_param = params.get(ParamKey.ALPN)
    alpn = (
        tuple(bytes(i).decode("latin-1") for i in alpn_param.ids)
        if alpn_param is not None
        else ()
    )
    port_param = params.get(ParamKey.PORT)
    v4 = params.get(ParamKey.IPV4HINT)
    v6 = params.get(ParamKey.IPV6HINT)
    owner_name = dns.name.from_text(owner) if isinstance(owner, str) else owner
    target = owner_name if rdata.target == dns.name.root else rdata.target
    if not target.is_absolute():
        raise ValueError(f"TargetName {target} is relative; give an absolute owner")
    return ServiceEndpoint(
        priority=rdata.priority,
        target=target.to_text(omit_final_dot=True),
        port=int(port_param.port) if port_param is not None else port,
        alpn=alpn,
        no_default_alpn=ParamKey.NO_DEFAULT_ALPN in params,
        ipv4hint=_addresses(v4),
        ipv6hint=_addresses(v6),
        ech=ech,
        mandatory=mandatory,
    )


def endpoints_from_rrset(
    rrset: dns.rrset.RRset,
    *,
    port: int = 443,
    rng: random.Random | None = None,
) -> RRsetEndpoints:
    """Interpret an HTTPS RRset (RFC 9460 §2.4, §3 steps 3-4).

    * An AliasMode record makes the RRset an alias: its ServiceMode records
      are ignored (§2.4.1). With several AliasMode records one is picked at
      random (§2.4.2).
    * ServiceMode records are sorted by SvcPriority. Records of equal
      priority are shuffled (§2.4.1: "clients SHOULD apply a random shuffle
      within a priority level"), so ties have no stable order.
    * A record that cannot be used (see :func:`~ech.dns.records.endpoint_from_rdata`) is
      dropped whole, never half-used, and listed in ``rejected``.

    Args:
        rrset: An HTTPS RRset (SVCB is refused: clients must not use SVCB
            for the https scheme, RFC 9460 §9).
        port: The origin's port, the default for endpoints without ``port``.
        rng: Source of the shuffles; a ``SystemRandom`` by default.

    Returns:
        The alias target or the endpoints, and the rejected records.

    Raises:
        ValueError: Not an HTTPS RRset, or a relative owner name.
    """
    if rrset.rdtype != dns.rdatatype.HTTPS or rrset.rdclass != dns.rdataclass.IN:
        raise ValueError(
            f"expected an IN HTTPS RRset, got {dns.rdatatype.to_text(rrset.rdtype)}"
        )
    if not rrset.name.is_absolute():
        raise ValueError(f"owner name {rrset.name} is relative")
    rng = rng or _SYSTEM_RANDOM
    records: Sequence[dns.rdtypes.svcbbase.SVCBBase] = list(rrset)
    aliases = [rd for rd in records if rd.priority == 0]
    if aliases:
        return RRsetEndpoints(rng.choice(aliases).target, (), ())
    owner = rrset.name.to_text(omit_final_dot=True)
    by_priority: dict[int, list[ServiceEndpoint]] = {}
    rejected: list[RejectedRecord] = []
    for rd in records:
        try:
            endpoint = endpoint_from_rdata(rd, rrset.name, port)
        except InvalidHTTPSRecord as err:
            rejected.append(
                RejectedRecord(owner, rd.to_text(), str(err), err.malformed)
            )
            continue
        by_priority.setdefault(endpoint.priority, []).append(endpoint)
    endpoints: list[ServiceEndpoint] = []
    for priority in sorted(by_priority):
        level = by_priority[priority]
        rng.shuffle(level)
        endpoints.extend(level)
    return RRsetEndpoints(None, tuple(endpoints), tuple(rejected))


def _addresses(
    param: dns.rdtypes.svcbbase.IPv4HintParam
    | dns.rdtypes.svcbbase.IPv6HintParam
    | None,
) -> tuple[str, ...]:
    """Hint addresses in RFC 5952 text.

    dnspython writes ``::1:0`` as ``::0.1.0.0``; ``ipaddress`` does not.
    """
    if param is None:
        return ()
    return tuple(str(ipaddress.ip_address(a)) for a in param.addresses)


def _key_text(key: int) -> str:
    """A SvcParamKey's presentation name, ``keyNNNNN`` if unregistered."""
    return ParamKey.to_text(key).replace("_", "-").lower()
