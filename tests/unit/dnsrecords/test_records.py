"""ech.dns.records: HTTPS RRs to service endpoints (RFC 9460, RFC 9848)."""

from __future__ import annotations

import base64
import random
import struct

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset
import pytest

from ech.dns.records import (
    InvalidHTTPSRecord,
    ServiceEndpoint,
    endpoint_from_rdata,
    endpoints_from_rrset,
    query_name,
)
from tests.unit.dnsrecords.dns_fakes import https_rrset, p256_configs, x25519_configs

# An ECHConfigList whose length prefix is right (dnspython accepts it) but
# whose one ECHConfig claims 9 octets of contents and has none.
BAD_INNER_ECH = base64.b64encode(b"\x00\x04\xfe\x0d\x00\x09").decode()
# A length prefix that does not match: dnspython's wire parser refuses it.
BAD_LENGTH_ECH = b"\x00\x09\xfe\x0d\x00\x09"


def https(text: str) -> dns.rdtypes.svcbbase.SVCBBase:
    rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.HTTPS, text)
    assert isinstance(rd, dns.rdtypes.svcbbase.SVCBBase)
    return rd


def https_wire(priority: int, params: list[tuple[int, bytes]]) -> bytes:
    """Raw HTTPS rdata with target "." and SvcParams exactly as given."""
    out = struct.pack("!H", priority) + b"\x00"
    for key, value in params:
        out += struct.pack("!HH", key, len(value)) + value
    return out


def parse_wire(wire: bytes) -> dns.rdata.Rdata:
    return dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.HTTPS, wire, 0, len(wire)
    )


# -- query names (RFC 9460 §9.1) ---------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("example.test", 443, "example.test"),
        ("example.test.", 443, "example.test"),
        ("Example.TEST", 443, "Example.TEST"),
        ("example.test", 8443, "_8443._https.example.test"),
        ("www.example.test", 80, "_80._https.www.example.test"),
        ("example.test", 1, "_1._https.example.test"),
    ],
)
def test_query_name(host: str, port: int, expected: str) -> None:
    assert query_name(host, port) == expected


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 443),
        ("[::1]", 443),
        ("::1", 8443),
        ("example.test", 0),
        ("example.test", 65536),
        (".", 443),
        ("a..b", 443),
    ],
)
def test_query_name_rejects(host: str, port: int) -> None:
    with pytest.raises(ValueError):
        query_name(host, port)


# -- one record ----------------------------------------------------------------------


def test_endpoint_fields() -> None:
    ech = x25519_configs()
    rd = https(
        f"1 svc.example.net. alpn=h2,h3 port=8443 ipv4hint=192.0.2.1,192.0.2.2 "
        f"ech={ech.to_base64()} ipv6hint=2001:db8::1"
    )
    endpoint = endpoint_from_rdata(rd, "example.test.")
    assert endpoint == ServiceEndpoint(
        priority=1,
        target="svc.example.net",
        port=8443,
        alpn=("h2", "h3"),
        no_default_alpn=False,
        ipv4hint=("192.0.2.1", "192.0.2.2"),
        ipv6hint=("2001:db8::1",),
        ech=ech,
        mandatory=(),
    )
    assert endpoint.alpn_set == ("h2", "h3", "http/1.1")


def test_dot_target_is_owner_and_port_defaults_to_origin_port() -> None:
    """RFC 9460 §2.5.2 (effective TargetName) and §7.2 (port)."""
    endpoint = endpoint_from_rdata(https("2 ."), dns.name.from_text("svc.test."), 8443)
    assert endpoint.target == "svc.test"
    assert endpoint.port == 8443
    assert endpoint.ech is None
    assert endpoint.alpn_set == ("http/1.1",)


def test_no_default_alpn() -> None:
    endpoint = endpoint_from_rdata(https("1 . alpn=h2 no-default-alpn"), "a.test.")
    assert endpoint.no_default_alpn
    assert endpoint.alpn_set == ("h2",)


def test_alias_mode_is_not_an_endpoint() -> None:
    with pytest.raises(ValueError, match="AliasMode"):
        endpoint_from_rdata(https("0 other.test."), "a.test.")


@pytest.mark.requirement("ECH-18")
def test_ech_value_is_the_whole_list_with_length_prefix() -> None:
    """ECH-18: the SvcParam value is the ECHConfigList with its u16 length."""
    configs = p256_configs()
    rd = https(f"1 . ech={configs.to_base64()}")
    wire = rd.to_wire()
    assert wire is not None
    assert configs.encode() in wire
    assert struct.pack("!HH", 5, len(configs.encode())) + configs.encode() in wire
    endpoint = endpoint_from_rdata(rd, "a.test.")
    assert endpoint.ech == configs
    assert len(endpoint.ech.configs) == 2


def test_malformed_ech_rejects_the_record_with_a_reason() -> None:
    rd = https(f"1 . alpn=h2 ech={BAD_INNER_ECH}")
    with pytest.raises(InvalidHTTPSRecord, match="not an ECHConfigList") as info:
        endpoint_from_rdata(rd, "a.test.")
    assert info.value.malformed


@pytest.mark.parametrize("mandatory", ["key65000", "dohpath", "key65000,alpn"])
def test_unknown_mandatory_key_makes_record_incompatible(mandatory: str) -> None:
    """RFC 9460 §8: a record with a mandatory key we don't implement is skipped."""
    extra = ' dohpath="/q{?dns}"' if "dohpath" in mandatory else ""
    rd = https(f"1 . alpn=h2 key65000=x{extra} mandatory={mandatory}")
    with pytest.raises(InvalidHTTPSRecord, match="not implemented") as info:
        endpoint_from_rdata(rd, "a.test.")
    assert not info.value.malformed


def test_known_mandatory_keys_are_fine_and_unknown_optional_keys_ignored() -> None:
    ech = x25519_configs()
    rd = https(f"1 . alpn=h2 key65001=opaque ech={ech.to_base64()} mandatory=alpn,ech")
    endpoint = endpoint_from_rdata(rd, "a.test.")
    assert endpoint.mandatory == (1, 5)
    assert endpoint.ech == ech


# -- dnspython's wire parser enforces RFC 9460 §2.2 -------------------------------


def test_wire_keys_must_strictly_increase() -> None:
    ok = https_wire(1, [(1, b"\x02h2"), (3, b"\x01\xbb")])
    assert parse_wire(ok).to_text() == '1 . alpn="h2" port="443"'
    for params in (
        [(3, b"\x01\xbb"), (1, b"\x02h2")],  # decreasing
        [(1, b"\x02h2"), (1, b"\x02h3")],  # repeated
    ):
        with pytest.raises(dns.exception.FormError, match="strictly increasing"):
            parse_wire(https_wire(1, params))


def test_wire_value_overrunning_rdata_is_refused() -> None:
    wire = https_wire(1, [(1, b"\x02h2")])[:-1]
    with pytest.raises(dns.exception.FormError):
        parse_wire(wire)


def test_wire_self_consistency_is_enforced() -> None:
    """RFC 9460 §2.4.3, §8: mandatory keys present and increasing; alpn present."""
    with pytest.raises(dns.exception.FormError):
        parse_wire(https_wire(1, [(0, b"\x00\x05")]))  # mandatory=ech, no ech
    with pytest.raises(dns.exception.FormError):
        parse_wire(https_wire(1, [(2, b"")]))  # no-default-alpn alone
    mandatory_decreasing = b"\x00\x03\x00\x01"  # port, alpn
    with pytest.raises(dns.exception.FormError, match="strictly increasing"):
        parse_wire(
            https_wire(1, [(0, mandatory_decreasing), (1, b"\x02h2"), (3, b"\x00P")])
        )


def test_wire_ech_length_prefix_is_checked_by_dnspython() -> None:
    with pytest.raises(dns.exception.FormError, match="ECHConfigList"):
        parse_wire(https_wire(1, [(5, BAD_LENGTH_ECH)]))


def test_bad_ech_length_fails_the_whole_message() -> None:
    """A malformed record makes dnspython refuse the message: the RRset is lost."""
    query = dns.message.make_query("a.test.", "HTTPS")
    response = dns.message.make_response(query)
    good = https("1 . alpn=h2")
    bad = dns.rdata.GenericRdata(
        dns.rdataclass.IN, dns.rdatatype.HTTPS, https_wire(2, [(5, BAD_LENGTH_ECH)])
    )
    response.answer.append(dns.rrset.from_rdata("a.test.", 300, good, bad))
    with pytest.raises(dns.exception.FormError):
        dns.message.from_wire(response.to_wire())


# -- RRsets --------------------------------------------------------------------------


def test_priority_order() -> None:
    rrset = https_rrset(
        "example.test.", "3 c.test. alpn=h2", "1 a.test. alpn=h2", "2 b.test. alpn=h2"
    )
    parsed = endpoints_from_rrset(rrset)
    assert parsed.alias is None
    assert [e.target for e in parsed.endpoints] == ["a.test", "b.test", "c.test"]
    assert parsed.rejected == ()


def test_equal_priorities_are_shuffled() -> None:
    """RFC 9460 §2.4.1: a random shuffle within a priority level."""
    rrset = https_rrset(
        "example.test.", *(f"1 t{i}.test." for i in range(6)), "2 last.test."
    )
    orders = set()
    for seed in range(20):
        parsed = endpoints_from_rrset(rrset, rng=random.Random(seed))
        targets = [e.target for e in parsed.endpoints]
        assert sorted(targets[:6]) == [f"t{i}.test" for i in range(6)]
        assert targets[6] == "last.test"
        orders.add(tuple(targets))
    assert len(orders) > 1


def test_alias_mode_wins_over_service_mode() -> None:
    """RFC 9460 §2.4.1: ServiceMode records beside an AliasMode one are ignored."""
    rrset = https_rrset("example.test.", "1 . alpn=h2", "0 svc.example.net.")
    parsed = endpoints_from_rrset(rrset)
    assert parsed.alias == dns.name.from_text("svc.example.net.")
    assert parsed.endpoints == ()


def test_one_of_several_aliases_is_picked_at_random() -> None:
    rrset = https_rrset("example.test.", "0 a.test.", "0 b.test.", "0 c.test.")
    picked = {
        endpoints_from_rrset(rrset, rng=random.Random(s)).alias for s in range(30)
    }
    assert picked == {dns.name.from_text(n) for n in ("a.test.", "b.test.", "c.test.")}


def test_malformed_record_dropped_whole_others_kept() -> None:
    good = x25519_configs()
    rrset = https_rrset(
        "example.test.",
        f"1 . alpn=h2 ech={BAD_INNER_ECH}",
        f"2 . alpn=http/1.1 ech={good.to_base64()}",
    )
    parsed = endpoints_from_rrset(rrset)
    assert [e.priority for e in parsed.endpoints] == [2]
    assert parsed.endpoints[0].ech == good
    (rejected,) = parsed.rejected
    assert rejected.owner == "example.test"
    assert rejected.malformed
    assert "not an ECHConfigList" in rejected.reason
    assert rejected.record.startswith("1 . ")


def test_incompatible_record_skipped() -> None:
    rrset = https_rrset(
        "example.test.", "1 . alpn=h3 key65000=x mandatory=key65000", "2 . alpn=h2"
    )
    parsed = endpoints_from_rrset(rrset)
    assert [e.priority for e in parsed.endpoints] == [2]
    assert not parsed.rejected[0].malformed
    assert "key65000" in parsed.rejected[0].reason


def test_svcb_rrset_is_refused() -> None:
    """RFC 9460 §9: SVCB responses are not used for the https scheme."""
    rrset = dns.rrset.from_text(
        "_https.example.test.", 300, "IN", "SVCB", "1 . alpn=h2"
    )
    with pytest.raises(ValueError, match="HTTPS"):
        endpoints_from_rrset(rrset)
