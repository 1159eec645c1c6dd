"""Property tests: HTTPS rdata round trips, and garbage never crashes us.

* Random HTTPS rdata (all RFC 9460 keys plus unknown ones, ``ech`` from
  random ECHConfigs) survive dnspython's wire and presentation round trips,
  and :func:`endpoint_from_rdata` reads back what was put in.
* Random or near-valid rdata wire, random ``ech`` values and random DoH
  payloads raise only :class:`dns.exception.DNSException` (dnspython's
  parser), :class:`InvalidHTTPSRecord` (ours) or, for the DoH responder's
  entry point, :class:`ValueError`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ech.config import (
    ECHConfig,
    ECHConfigContents,
    ECHConfigExtension,
    ECHConfigList,
    HpkeSymmetricCipherSuite,
)
from ech.dns.doh_server import Zone, answer
from ech.dns.records import (
    UNDERSTOOD_KEYS,
    InvalidHTTPSRecord,
    endpoint_from_rdata,
    endpoints_from_rrset,
)
from ech.dns.resolver import HTTPSResolution
from ech.errors import DecodeError
from tests.unit.dnsrecords.dns_fakes import x25519_configs

svcb = dns.rdtypes.svcbbase
OWNER = dns.name.from_text("owner.test.")
u16 = st.integers(0, 0xFFFF)

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
names = st.one_of(
    st.just(dns.name.root),
    st.lists(labels, min_size=1, max_size=4).map(
        lambda ls: dns.name.from_text(".".join(ls) + ".")
    ),
)

ech_contents = st.builds(
    ECHConfigContents,
    config_id=st.integers(0, 0xFF),
    kem_id=u16,
    public_key=st.binary(min_size=1, max_size=64),
    cipher_suites=st.lists(
        st.builds(HpkeSymmetricCipherSuite, u16, u16), min_size=1, max_size=3
    ).map(tuple),
    maximum_name_length=st.integers(0, 0xFF),
    public_name=st.binary(min_size=1, max_size=40),
    extensions=st.lists(
        st.builds(ECHConfigExtension, u16, st.binary(max_size=8)), max_size=2
    ).map(tuple),
)
ech_configs = st.one_of(
    ech_contents.map(ECHConfig.from_contents),
    # Unknown versions are carried opaquely (RFC 9849 §4).
    st.tuples(u16.filter(lambda v: v != 0xFE0D), st.binary(max_size=16)).map(
        lambda vb: ECHConfig(vb[0], None, struct.pack("!HH", vb[0], len(vb[1])) + vb[1])
    ),
)
ech_lists = st.lists(ech_configs, min_size=1, max_size=3).map(
    lambda cs: ECHConfigList(tuple(cs))
)
ipv4s = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6s = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
unknown_keys = st.integers(11, 65534)


@dataclass
class Params:
    """What a generated record was made from."""

    priority: int
    target: dns.name.Name
    alpn: tuple[bytes, ...] | None
    no_default_alpn: bool
    port: int | None
    ipv4: tuple[str, ...] | None
    ech: ECHConfigList | None
    ipv6: tuple[str, ...] | None
    unknown: dict[int, bytes]
    mandatory: tuple[int, ...]

    def rdata(self) -> dns.rdtypes.svcbbase.SVCBBase:
        p: dict[svcb.ParamKey, Any] = {}
        if self.alpn is not None:
            p[svcb.ParamKey.ALPN] = svcb.ALPNParam(self.alpn)  # type: ignore[no-untyped-call]
            if self.no_default_alpn:
                p[svcb.ParamKey.NO_DEFAULT_ALPN] = None
        if self.port is not None:
            p[svcb.ParamKey.PORT] = svcb.PortParam(self.port)  # type: ignore[no-untyped-call]
        if self.ipv4 is not None:
            p[svcb.ParamKey.IPV4HINT] = svcb.IPv4HintParam(self.ipv4)  # type: ignore[no-untyped-call]
        if self.ech is not None:
            p[svcb.ParamKey.ECH] = svcb.ECHParam(self.ech.encode())  # type: ignore[no-untyped-call]
        if self.ipv6 is not None:
            p[svcb.ParamKey.IPV6HINT] = svcb.IPv6HintParam(self.ipv6)  # type: ignore[no-untyped-call]
        for key, value in self.unknown.items():
            p[svcb.ParamKey.make(key)] = svcb.GenericParam(value)  # type: ignore[no-untyped-call]
        if self.mandatory:
            p[svcb.ParamKey.MANDATORY] = svcb.MandatoryParam(self.mandatory)  # type: ignore[no-untyped-call]
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.HTTPS, "1 .")
        out = rdata.replace(priority=self.priority, target=self.target, params=p)
        assert isinstance(out, dns.rdtypes.svcbbase.SVCBBase)
        return out


@st.composite
def params(draw: st.DrawFn) -> Params:
    alpn = draw(
        st.none()
        | st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=4).map(
            tuple
        )
    )
    unknown = draw(
        st.dictionaries(unknown_keys, st.binary(min_size=1, max_size=16), max_size=2)
    )
    made = Params(
        priority=draw(st.integers(1, 0xFFFF)),
        target=draw(names),
        alpn=alpn,
        no_default_alpn=alpn is not None and draw(st.booleans()),
        port=draw(st.none() | u16),
        ipv4=draw(st.none() | st.lists(ipv4s, min_size=1, max_size=3).map(tuple)),
        ech=draw(st.none() | ech_lists),
        ipv6=draw(st.none() | st.lists(ipv6s, min_size=1, max_size=3).map(tuple)),
        unknown=unknown,
        mandatory=(),
    )
    present = [k for k, v in _present(made).items() if v]
    use_mandatory: bool = draw(st.booleans())
    if present and use_mandatory:
        chosen: list[int] = draw(
            st.lists(st.sampled_from(present), min_size=1, unique=True)
        )
        made.mandatory = tuple(chosen)
    return made


def _present(p: Params) -> dict[int, bool]:
    keys = {
        1: p.alpn is not None,
        2: p.no_default_alpn,
        3: p.port is not None,
        4: p.ipv4 is not None,
        5: p.ech is not None,
        6: p.ipv6 is not None,
    }
    keys.update(dict.fromkeys(p.unknown, True))
    return keys


@given(params())
def test_rdata_round_trips_through_wire_and_text(p: Params) -> None:
    rdata = p.rdata()
    wire = rdata.to_wire()
    assert wire is not None
    from_wire = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.HTTPS, wire, 0, len(wire)
    )
    assert from_wire == rdata
    text = rdata.to_text()
    from_text = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.HTTPS, text)
    assert from_text == rdata
    assert from_text.to_wire() == wire


@given(params(), st.integers(1, 0xFFFF))
def test_endpoint_reads_back_what_was_published(p: Params, origin_port: int) -> None:
    rdata = p.rdata()
    if any(k not in UNDERSTOOD_KEYS for k in p.mandatory):
        with pytest.raises(InvalidHTTPSRecord, match="not implemented") as info:
            endpoint_from_rdata(rdata, OWNER, origin_port)
        assert not info.value.malformed
        return
    endpoint = endpoint_from_rdata(rdata, OWNER, origin_port)
    assert endpoint.priority == p.priority
    expected_target = OWNER if p.target == dns.name.root else p.target
    assert endpoint.target == expected_target.to_text(omit_final_dot=True)
    assert endpoint.port == (p.port if p.port is not None else origin_port)
    assert endpoint.alpn == tuple(a.decode("latin-1") for a in p.alpn or ())
    assert tuple(a.encode("latin-1") for a in endpoint.alpn) == (p.alpn or ())
    assert endpoint.no_default_alpn == p.no_default_alpn
    assert endpoint.ipv4hint == (p.ipv4 or ())
    assert endpoint.ipv6hint == (p.ipv6 or ())
    assert endpoint.ech == p.ech
    assert endpoint.mandatory == tuple(sorted(p.mandatory))


@given(st.lists(params(), min_size=1, max_size=5))
def test_rrset_order_is_by_priority(ps: list[Params]) -> None:
    rrset = dns.rrset.from_rdata_list(OWNER, 300, [p.rdata() for p in ps])
    parsed = endpoints_from_rrset(rrset)
    priorities = [e.priority for e in parsed.endpoints]
    assert priorities == sorted(priorities)
    assert len(parsed.endpoints) + len(parsed.rejected) == len(rrset)
    resolution = HTTPSResolution("o.test", "o.test", parsed.endpoints, 300)
    with_ech = [e for e in parsed.endpoints if e.ech is not None]
    assert resolution.svcb_reliant == (
        bool(with_ech) and with_ech == list(parsed.endpoints)
    )
    assert resolution.ech_configs() == (with_ech[0].ech if with_ech else None)


# -- garbage ------------------------------------------------------------------------


def _parse_and_interpret(wire: bytes) -> None:
    try:
        rdata = dns.rdata.from_wire(
            dns.rdataclass.IN, dns.rdatatype.HTTPS, wire, 0, len(wire)
        )
    except dns.exception.DNSException:
        return
    rrset = dns.rrset.from_rdata(OWNER, 300, rdata)
    endpoints_from_rrset(rrset)  # rejects records, never raises for them


@given(st.binary(max_size=200))
def test_random_rdata_never_crashes(wire: bytes) -> None:
    _parse_and_interpret(wire)


near_valid_params = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 65535]),
        st.binary(max_size=40),
    ),
    max_size=5,
)


@given(st.integers(0, 3), near_valid_params, st.booleans())
def test_near_valid_rdata_never_crashes(
    priority: int, raw: list[tuple[int, bytes]], sort: bool
) -> None:
    if sort:
        raw = sorted(dict(raw).items())
    wire = struct.pack("!H", priority) + b"\x00"
    for key, value in raw:
        wire += struct.pack("!HH", key, len(value)) + value
    _parse_and_interpret(wire)


@given(st.binary(min_size=4, max_size=120))
def test_random_ech_values_parse_or_are_rejected(contents: bytes) -> None:
    """Random ECHConfigList bodies: either an endpoint or InvalidHTTPSRecord."""
    value = struct.pack("!H", len(contents)) + contents
    wire = struct.pack("!HBHH", 1, 0, 5, len(value)) + value
    rdata = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.HTTPS, wire, 0, len(wire)
    )
    assert isinstance(rdata, dns.rdtypes.svcbbase.SVCBBase)
    try:
        ECHConfigList.parse(value)
    except DecodeError:
        with pytest.raises(InvalidHTTPSRecord, match="not an ECHConfigList") as info:
            endpoint_from_rdata(rdata, OWNER)
        assert info.value.malformed
        return
    endpoint = endpoint_from_rdata(rdata, OWNER)
    assert endpoint.ech is not None
    assert endpoint.ech.encode() == value


ZONE = Zone("example.test", x25519_configs, hosts=("@", "www"))


@given(st.binary(max_size=300))
def test_doh_responder_survives_garbage(wire: bytes) -> None:
    try:
        reply = answer(wire, ZONE)
    except ValueError:
        return
    parsed = dns.message.from_wire(reply)
    assert parsed.flags & dns.flags.QR


@given(names, st.sampled_from(["A", "AAAA", "HTTPS", "TXT", "ANY", "SOA"]))
def test_doh_responder_answers_any_question(name: dns.name.Name, rdtype: str) -> None:
    query = dns.message.make_query(name, rdtype)
    reply = dns.message.from_wire(answer(query.to_wire(), ZONE))
    assert reply.id == query.id
    assert reply.question == query.question
