"""Test doubles for ``ech.dns``: record builders and an in-memory DoH server.

:class:`FakeDoH` is a :class:`DoHResolver` whose :meth:`exchange` answers from
a dnspython zone instead of the network, renders the response to wire format
and parses it back as :func:`dns.query.https` does, so dnspython's wire
checks apply exactly as over DoH.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from ech import hpke
from ech.config import ECHConfigList
from ech.dns.resolver import DoHResolver
from ech.keys import generate_ech_key

ORIGIN = dns.name.from_text("example.test.")
URL = "https://doh.test/dns-query"


@functools.cache
def x25519_configs() -> ECHConfigList:
    """A one-config X25519 list for ``public.test`` (made once)."""
    return ECHConfigList((generate_ech_key("public.test", config_id=1).config,))


@functools.cache
def p256_configs() -> ECHConfigList:
    """A P-256 config followed by an X25519 one."""
    p256 = generate_ech_key(
        "public.test", kem_id=hpke.KEM.DHKEM_P256_HKDF_SHA256, config_id=2
    )
    return ECHConfigList((p256.config, *x25519_configs().configs))


def https_rrset(owner: str, *rdatas: str, ttl: int = 300) -> dns.rrset.RRset:
    """An IN HTTPS RRset from presentation-format rdatas."""
    return dns.rrset.from_text_list(owner, ttl, "IN", "HTTPS", list(rdatas))


SOA = "@ 60 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 30"


class FakeDoH(DoHResolver):
    """A resolver answering from ``zone_text`` (origin ``example.test.``).

    Args:
        zone_text: Zone-file lines; a SOA is added.
        follow_cnames: Answer as BIND does (CNAME plus the target's RRset when
            it is in the zone) or as Unbound's local data does (CNAME only).
        rcodes: Names (absolute text) answered with this rcode.
        raw_https: Names whose HTTPS answer is this raw rdata, sent as is
            (dnspython refuses to build malformed SVCB rdata otherwise).
        errors: Names whose query raises this exception.
        kwargs: Passed to :class:`DoHResolver`.
    """

    def __init__(
        self,
        zone_text: str,
        *,
        follow_cnames: bool = True,
        rcodes: Mapping[str, dns.rcode.Rcode] | None = None,
        raw_https: Mapping[str, bytes] | None = None,
        errors: Mapping[str, Exception] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(URL, **kwargs)
        self.zone = dns.zone.from_text(
            SOA + "\n" + zone_text,
            origin=ORIGIN,
            relativize=False,
            check_origin=False,
        )
        self.follow_cnames = follow_cnames
        self.rcodes = dict(rcodes or {})
        self.raw_https = dict(raw_https or {})
        self.errors = dict(errors or {})
        self.queries: list[tuple[str, str]] = []

    def exchange(self, query: dns.message.Message) -> dns.message.Message:
        question = query.question[0]
        name = question.name
        rdtype = question.rdtype
        self.queries.append((name.to_text(), dns.rdatatype.to_text(rdtype)))
        if name.to_text() in self.errors:
            raise self.errors[name.to_text()]
        response = dns.message.make_response(query)
        if name.to_text() in self.rcodes:
            response.set_rcode(self.rcodes[name.to_text()])
        elif name.to_text() in self.raw_https and rdtype == dns.rdatatype.HTTPS:
            generic = dns.rdata.GenericRdata(
                dns.rdataclass.IN, dns.rdatatype.HTTPS, self.raw_https[name.to_text()]
            )
            response.answer.append(dns.rrset.from_rdata(name, 300, generic))
        else:
            self._answer(response, name, rdtype)
        return dns.message.from_wire(response.to_wire())

    def _answer(
        self,
        response: dns.message.Message,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
    ) -> None:
        for _ in range(20):
            if not name.is_subdomain(ORIGIN):
                return  # out of zone: the CNAME alone, no SOA
            node = self.zone.get_node(name)
            if node is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self._soa(response)
                return
            found = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if found is not None:
                response.answer.append(
                    dns.rrset.from_rdata_list(name, found.ttl, list(found))
                )
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                self._soa(response)
                return
            response.answer.append(
                dns.rrset.from_rdata_list(name, cname.ttl, list(cname))
            )
            if not self.follow_cnames:
                return
            name = next(iter(cname)).target

    def _soa(self, response: dns.message.Message) -> None:
        soa = self.zone.get_rdataset(ORIGIN, dns.rdatatype.SOA)
        assert soa is not None
        response.authority.append(dns.rrset.from_rdata_list(ORIGIN, soa.ttl, list(soa)))


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
