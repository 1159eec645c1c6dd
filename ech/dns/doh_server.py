"""A tiny authoritative DoH responder for ``ech serve --doh PATH`` (RFC 8484).

It publishes, for each served host name, an HTTPS record carrying the ECH
configs the server holds *right now* (RFC 9848 §3), plus its addresses, so
a DoH-capable client (Chromium, Firefox, curl, kdig, :class:`DoHResolver`)
can bootstrap ECH from the same server it then connects to.

Layers:

* :class:`Zone`: the records, rebuilt from a callable on each query so key
  rotation shows at once; a :class:`dns.zone.Zone` snapshot does lookups.
* :func:`answer`: DNS wire query in, wire response out (dnspython): the
  answer with ``aa``; NXDOMAIN or NOERROR/NODATA with the SOA for negative
  caching (RFC 2308 §3); REFUSED outside the zone; FORMERR for a question
  that cannot be answered; NOTIMP for opcodes other than QUERY.
* :func:`cache_max_age`: the smallest TTL, for ``Cache-Control`` (§5.1).
* :mod:`ech.serve.doh` adds the HTTP semantics of RFC 8484 §4 and serves
  them with :mod:`ech.http` (HTTP/2 and HTTP/1.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset
import dns.zone

from ech.config import ECHConfigList
from ech.dns.publish import DEFAULT_ALPN, DEFAULT_DNS_TTL, https_rdata
from ech.dns.records import query_name

__all__ = [
    "DEFAULT_DNS_TTL",  # defined with the records it is the TTL of (publish)
    "DNS_MESSAGE",
    "MAX_DNS_MESSAGE",
    "Zone",
    "answer",
    "answer_message",
    "cache_max_age",
]

DNS_MESSAGE: Final = "application/dns-message"
"""The DoH media type (RFC 8484 §6)."""

MAX_DNS_MESSAGE: Final = 65535
"""Largest DNS message carried (RFC 8484 §6: the DNS wire format limit)."""


class Zone:
    """The records ``ech serve --doh`` publishes, under one origin.

    For every host ``h`` (a name relative to ``origin``, ``@`` for the apex):

    * ``query_name(h, port) HTTPS 1 . alpn=... [port=P ipv4hint=... ipv6hint=...]
      ech=...``: TargetName ``.`` (the owner, RFC 9460 §2.5.2), and for
      ports other than 443 the owner ``_P._https.h`` (§9.1) with address
      hints, the only form curl uses there; ``ech`` is what
      ``ech_configs()`` returns at query time (none when it returns ``None``);
    * ``h A``/``AAAA`` for each of ``addresses``;
    * a SOA at the origin, for negative answers (RFC 2308).

    Args:
        origin: The zone apex, e.g. ``example.test``.
        ech_configs: Returns the current ECHConfigList (called per query).
        hosts: Host names to publish, relative to ``origin``.
        port: The port clients reach the service on.
        alpn: ALPN ids of the service.
        addresses: IPv4/IPv6 addresses of every host.
        ttl: TTL of every record (:data:`~ech.dns.publish.DEFAULT_DNS_TTL`,
            as ``ech dns-record``); keep it below the key rotation period.

    Raises:
        ValueError: A host outside ``origin`` or an invalid address.
    """

    def __init__(
        self,
        origin: str,
        ech_configs: Callable[[], ECHConfigList | None],
        *,
        hosts: Sequence[str] = ("@",),
        port: int = 443,
        alpn: Sequence[str] = DEFAULT_ALPN,
        addresses: Sequence[str] = ("127.0.0.1",),
        ttl: int = DEFAULT_DNS_TTL,
    ) -> None:
        self.origin = dns.name.from_text(origin)
        self.ech_configs = ech_configs
        self.hosts = tuple(
            self.origin if h == "@" else dns.name.from_text(h, self.origin)
            for h in hosts
        )
        for host in self.hosts:
            if not host.is_subdomain(self.origin):
                raise ValueError(f"{host} is not inside {self.origin}")
        self.port = port
        self.alpn = tuple(alpn)
        self.addresses = tuple(addresses)
        self.ttl = ttl
        for address in self.addresses:
            ipaddress.ip_address(address)  # ValueError for anything else

    def snapshot(self) -> dns.zone.Zone:
        """The zone's records as of now."""
        zone = dns.zone.Zone(self.origin, relativize=False)
        # Names made relative to the origin: "ns.{origin}" is "ns.." at the root.
        ns, hostmaster = (
            dns.name.from_text(n, self.origin) for n in ("ns", "hostmaster")
        )
        soa = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.SOA,
            f"{ns} {hostmaster} 1 3600 600 86400 {self.ttl}",
        )
        zone.find_rdataset(self.origin, dns.rdatatype.SOA, create=True).add(
            soa, self.ttl
        )
        configs = self.ech_configs()
        for host in self.hosts:
            owner = dns.name.from_text(query_name(host.to_text(), self.port))
            # TargetName "." with address hints: for other ports curl uses
            # only such records (RFC 9460 §2.5.2, §7.3 allow it).
            v4 = [a for a in self.addresses if ipaddress.ip_address(a).version == 4]
            v6 = [a for a in self.addresses if ipaddress.ip_address(a).version == 6]
            hints = self.port != 443
            rdata = https_rdata(
                configs,
                port=self.port,
                alpn=self.alpn,
                ipv4hint=v4 if hints else (),
                ipv6hint=v6 if hints else (),
            )
            zone.find_rdataset(owner, dns.rdatatype.HTTPS, create=True).add(
                rdata, self.ttl
            )
            for address in self.addresses:
                rdtype = _address_type(address)
                rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, address)
                zone.find_rdataset(host, rdtype, create=True).add(rd, self.ttl)
        return zone

    def to_text(self) -> str:
        """The zone as of now, in zone-file format (RFC 1035 §5)."""
        text: str = self.snapshot().to_text(relativize=False)
        return text


def _address_type(address: str) -> dns.rdatatype.RdataType:
    if ipaddress.ip_address(address).version == 6:
        return dns.rdatatype.AAAA
    return dns.rdatatype.A


# -- DNS -------------------------------------------------------------------------


def answer(query_wire: bytes, zone: Zone) -> bytes:
    """Answer one DNS query from ``zone`` (wire format in and out).

    Raises:
        ValueError: ``query_wire`` is not a DNS query at all (too short, a
            response, or no parsable question); DoH turns that into HTTP 400.
    """
    return answer_message(query_wire, zone).to_wire(max_size=MAX_DNS_MESSAGE)


def answer_message(query_wire: bytes, zone: Zone) -> dns.message.Message:
    """:func:`answer`, as a message (for its TTLs).

    Raises:
        ValueError: as :func:`answer`.
    """
    try:
        query = dns.message.from_wire(query_wire)
    except dns.message.ShortHeader as err:
        raise ValueError("not a DNS message: shorter than a header") from err
    except (dns.exception.DNSException, ValueError) as err:
        try:
            query = dns.message.from_wire(query_wire, question_only=True)
        except (dns.exception.DNSException, ValueError):
            raise ValueError(f"unparsable DNS query: {err}") from err
        if query.flags & dns.flags.QR:
            raise ValueError("a DNS response is not a query") from err
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.FORMERR)
        return response
    if query.flags & dns.flags.QR:
        raise ValueError("a DNS response is not a query")
    response = dns.message.make_response(query)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN or not question.name.is_subdomain(
        zone.origin
    ):
        response.set_rcode(dns.rcode.REFUSED)
        return response
    response.flags |= dns.flags.AA
    snapshot = zone.snapshot()
    qname, rdtype = question.name, question.rdtype
    node = snapshot.get_node(qname)
    if node is None and not any(n.is_subdomain(qname) for n in snapshot.nodes):
        response.set_rcode(dns.rcode.NXDOMAIN)
        _add_soa(response, snapshot, zone)
        return response
    rdatasets = []
    if node is not None:
        if rdtype == dns.rdatatype.ANY:
            rdatasets = list(node.rdatasets)
        else:
            found = node.get_rdataset(dns.rdataclass.IN, rdtype)
            rdatasets = [found] if found is not None else []
    if not rdatasets:  # NODATA, or an empty non-terminal (RFC 8020)
        _add_soa(response, snapshot, zone)
        return response
    for rdataset in rdatasets:
        rrset = dns.rrset.from_rdata_list(qname, rdataset.ttl, list(rdataset))
        response.answer.append(rrset)
        if rdataset.rdtype == dns.rdatatype.HTTPS:
            _add_target_addresses(response, snapshot, qname, rdataset)
    return response


def _add_soa(
    response: dns.message.Message, snapshot: dns.zone.Zone, zone: Zone
) -> None:
    soa = snapshot.get_rdataset(zone.origin, dns.rdatatype.SOA)
    if soa is not None:
        rrset = dns.rrset.from_rdata_list(zone.origin, soa.ttl, list(soa))
        response.authority.append(rrset)


def _add_target_addresses(
    response: dns.message.Message,
    snapshot: dns.zone.Zone,
    owner: dns.name.Name,
    https: Iterable[dns.rdata.Rdata],
) -> None:
    """Additional A/AAAA for ServiceMode targets in the zone (RFC 9460 §4.1)."""
    targets: list[dns.name.Name] = []
    for rd in https:
        if not isinstance(rd, dns.rdtypes.svcbbase.SVCBBase) or rd.priority == 0:
            continue
        target = owner if rd.target == dns.name.root else rd.target
        if target not in targets:
            targets.append(target)
    for target in targets:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            found = snapshot.get_rdataset(target, rdtype)
            if found is not None:
                rrset = dns.rrset.from_rdata_list(target, found.ttl, list(found))
                response.additional.append(rrset)


def cache_max_age(message: dns.message.Message) -> int | None:
    """The freshness of a response: its smallest TTL (RFC 8484 §5.1).

    A SOA in a negative answer counts with the smaller of its TTL and its
    MINIMUM field (RFC 2308 §5). None when there are no records.
    """
    rrsets = [*message.answer, *message.authority]
    if not rrsets:
        return None
    return min(_ttl(rrset) for rrset in rrsets)


def _ttl(rrset: dns.rrset.RRset) -> int:
    if rrset.rdtype == dns.rdatatype.SOA:  # negative TTL (RFC 2308 §5)
        return min(rrset.ttl, *(int(rd.minimum) for rd in rrset))
    return int(rrset.ttl)
