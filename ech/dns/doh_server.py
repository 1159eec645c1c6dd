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
* :func:`handle_request`: the HTTP semantics of RFC 8484 §4, sans-IO: GET
  with ``?dns=`` (base64url, §4.1), POST with ``application/dns-message``,
  ``Cache-Control: max-age`` from the smallest TTL (§5.1).
* :mod:`ech.serve.doh` serves it over HTTP/2 and HTTP/1.1.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

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
from ech.dns.publish import DEFAULT_ALPN, https_rdata
from ech.dns.records import query_name

__all__ = [
    "DNS_MESSAGE",
    "MAX_DNS_MESSAGE",
    "HTTPResponse",
    "OtherRequests",
    "Zone",
    "answer",
    "handle_request",
    "plain_response",
]

DNS_MESSAGE: Final = "application/dns-message"
"""The DoH media type (RFC 8484 §6)."""

MAX_DNS_MESSAGE: Final = 65535
"""Largest DNS message carried (RFC 8484 §6: the DNS wire format limit)."""


@dataclass(frozen=True)
class HTTPResponse:
    """An HTTP response to send, independent of the HTTP version.

    Attributes:
        status: Status code.
        headers: Lower-case names with values; no pseudo-headers, no
            ``content-length`` (added when sending).
        body: The payload.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


OtherRequests = Callable[[str, str], HTTPResponse | Awaitable[HTTPResponse]]
"""Handler for requests outside the DoH path: ``(method, target)`` to a
response (``ech serve`` answers them with its status page)."""


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
        ttl: TTL of every record; keep it below the key rotation period.

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
        ttl: int = 60,
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
        soa = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.SOA,
            f"ns.{self.origin} hostmaster.{self.origin} 1 3600 600 86400 {self.ttl}",
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
    return _answer(query_wire, zone).to_wire(max_size=MAX_DNS_MESSAGE)


def _answer(query_wire: bytes, zone: Zone) -> dns.message.Message:
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


# -- HTTP semantics (RFC 8484 §4) ------------------------------------------------


def handle_request(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    path: str,
    zone: Zone,
) -> HTTPResponse:
    """Answer one DoH request (RFC 8484 §4.1, §4.2, §5.1); no I/O.

    Args:
        method: ``GET`` or ``POST`` (others get 405).
        target: The request target (path and query).
        headers: Request headers with lower-case names.
        body: The request body.
        path: The DoH path, e.g. ``/dns-query``; other paths get 404.
        zone: What to answer from.

    Returns:
        200 with the DNS response and ``cache-control: max-age`` set to the
        smallest TTL in it; 400 for a missing or bad ``dns`` parameter or a
        non-DNS payload; 413 above 65535 octets; 415 for a POST that is not
        ``application/dns-message``.
    """
    parts = urlsplit(target)
    if parts.path != path:
        return plain_response(404, "not found")
    if method == "GET":
        values = parse_qs(parts.query, keep_blank_values=True).get("dns", [])
        if len(values) != 1:
            return plain_response(400, "exactly one dns parameter is required")
        try:
            wire = _base64url_decode(values[0])
        except ValueError as err:
            return plain_response(400, f"dns parameter: {err}")
    elif method == "POST":
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type.lower() != DNS_MESSAGE:
            return plain_response(415, f"content-type must be {DNS_MESSAGE}")
        wire = body
    else:
        return HTTPResponse(405, (("allow", "GET, POST"),), b"")
    if len(wire) > MAX_DNS_MESSAGE:
        return plain_response(413, "DNS message too large")
    try:
        message = _answer(wire, zone)
    except ValueError as err:
        return plain_response(400, str(err))
    reply = message.to_wire(max_size=MAX_DNS_MESSAGE)
    rrsets = [*message.answer, *message.authority]
    headers_out = [("content-type", DNS_MESSAGE)]
    if rrsets:
        max_age = min(_ttl(r) for r in rrsets)
        headers_out.append(("cache-control", f"max-age={max_age}"))
    return HTTPResponse(200, tuple(headers_out), reply)


def _ttl(rrset: dns.rrset.RRset) -> int:
    if rrset.rdtype == dns.rdatatype.SOA:  # negative TTL (RFC 2308 §5)
        return min(rrset.ttl, *(int(rd.minimum) for rd in rrset))
    return int(rrset.ttl)


def _base64url_decode(text: str) -> bytes:
    """Base64url with or without padding (RFC 8484 §6, RFC 4648 §5)."""
    if not text:
        raise ValueError("empty")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"bad base64url: {err}") from err


def plain_response(status: int, message: str) -> HTTPResponse:
    """A short text/plain response (errors)."""
    return HTTPResponse(
        status,
        (("content-type", "text/plain; charset=utf-8"),),
        (message + "\n").encode(),
    )
