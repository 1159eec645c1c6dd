"""ech.dns.resolver: SVCB resolution over a fake DoH transport (RFC 9460 §3)."""

from __future__ import annotations

import random

import dns.name
import dns.rcode
import dns.rdatatype
import httpx2
import pytest

from ech.dns.cache import TTLCache
from ech.dns.discovery import discover
from ech.dns.resolver import DNSLookupError, DoHResolver, HTTPSResolution
from tests.unit.dnsrecords.dns_fakes import (
    URL,
    FakeClock,
    FakeDoH,
    p256_configs,
    x25519_configs,
)
from tests.unit.dnsrecords.test_records import (
    BAD_INNER_ECH,
    BAD_LENGTH_ECH,
    https_wire,
)

X = x25519_configs().to_base64()
P = p256_configs().to_base64()

ZONE = f"""
@ 300 IN A 127.0.0.1
@ 300 IN HTTPS 1 . alpn=h2 ech={X}
www 120 IN HTTPS 2 . alpn=http/1.1 ech={P}
www 120 IN HTTPS 1 backend.example.test. alpn=h2 port=18443 ipv4hint=192.0.2.9 ech={X}
www 300 IN A 127.0.0.1
backend 300 IN A 127.0.0.2
backend 300 IN AAAA ::2
_8443._https 300 IN HTTPS 1 example.test. port=8443 ech={X}
_8443._https.www 300 IN HTTPS ( 1 . port=8443 ipv4hint=192.0.2.7
    ipv6hint=2001:db8::7 ech={X} )
_9443._https 300 IN HTTPS 1 . port=9443 ech={X}
alias 300 IN HTTPS 0 www.example.test.
cname 60 IN CNAME www.example.test.
outside 300 IN CNAME svc.example.net.
badech 300 IN HTTPS 1 . alpn=h2 ech={BAD_INNER_ECH}
badech 300 IN HTTPS 2 . alpn=h2 ech={X}
mandatory 300 IN HTTPS 1 . key65000=x mandatory=key65000 alpn=h3
mandatory 300 IN HTTPS 2 . alpn=h2 ech={X}
mixed 300 IN HTTPS 1 . alpn=h2 ech={X}
mixed 300 IN HTTPS 2 . alpn=h2
noech 300 IN HTTPS 1 . alpn=h2
hintonly 300 IN HTTPS 1 nowhere.example.test. ipv4hint=192.0.2.1 ipv6hint=2001:db8::1
gone 300 IN HTTPS 0 .
loop1 300 IN HTTPS 0 loop2.example.test.
loop2 300 IN HTTPS 0 loop1.example.test.
cloop1 300 IN CNAME cloop2.example.test.
cloop2 300 IN CNAME cloop1.example.test.
"""


def chain_zone(length: int) -> str:
    """hop0 -> hop1 -> ... -> hop{length} (ServiceMode), via AliasMode."""
    lines = [f"hop{i} 300 IN HTTPS 0 hop{i + 1}.example.test." for i in range(length)]
    lines.append(f"hop{length} 300 IN HTTPS 1 . alpn=h2 ech={X}")
    return "\n".join(lines)


def resolver(**kwargs: object) -> FakeDoH:
    return FakeDoH(ZONE, rng=random.Random(0), **kwargs)  # type: ignore[arg-type]


def test_service_mode() -> None:
    result = resolver().resolve_https("example.test")
    assert result.query_name == "example.test"
    assert result.target_name == "example.test"
    (endpoint,) = result.endpoints
    assert endpoint.target == "example.test"
    assert endpoint.port == 443
    assert endpoint.alpn == ("h2",)
    assert endpoint.ech == x25519_configs()
    assert result.svcb_reliant
    assert not result.mixed
    assert result.ech_configs() == x25519_configs()
    assert result.ttl == 300


def test_priority_order_and_per_endpoint_ech() -> None:
    result = resolver().resolve_https("www.example.test")
    first, second = result.endpoints
    assert (first.priority, first.target, first.port) == (
        1,
        "backend.example.test",
        18443,
    )
    assert first.ipv4hint == ("192.0.2.9",)
    assert first.ech == x25519_configs()
    assert (second.priority, second.target, second.port) == (2, "www.example.test", 443)
    assert second.ech == p256_configs()
    assert result.ech_configs() == x25519_configs()  # the preferred endpoint's
    assert result.ttl == 120


def test_port_prefix_query_name() -> None:
    fake = resolver()
    result = fake.resolve_https("example.test", 8443)
    assert fake.queries == [("_8443._https.example.test.", "HTTPS")]
    assert result.query_name == "_8443._https.example.test"
    assert result.target_name == "example.test"  # no alias: the origin host
    (endpoint,) = result.endpoints
    assert (endpoint.target, endpoint.port) == ("example.test", 8443)


def test_dot_target_at_port_prefix_is_the_prefixed_owner() -> None:
    """RFC 9460 §2.5.2: "." at _8443._https.NAME means that owner, not NAME."""
    fake = resolver()
    result = fake.resolve_https("www.example.test", 8443)
    assert result.query_name == "_8443._https.www.example.test"
    (endpoint,) = result.endpoints
    assert (endpoint.target, endpoint.port) == ("_8443._https.www.example.test", 8443)
    assert endpoint.ipv4hint == ("192.0.2.7",)
    assert endpoint.ipv6hint == ("2001:db8::7",)
    # The owner has no A/AAAA: the hints are the addresses (RFC 9460 §7.3).
    assert fake.addresses_for(endpoint) == ["192.0.2.7", "2001:db8::7"]
    assert ("_8443._https.www.example.test.", "A") in fake.queries


def test_alias_mode_is_followed_without_prefix() -> None:
    fake = resolver()
    result = fake.resolve_https("alias.example.test")
    assert [e.priority for e in result.endpoints] == [1, 2]
    assert result.aliases == ("alias.example.test",)
    assert result.target_name == "www.example.test"
    assert fake.queries == [
        ("alias.example.test.", "HTTPS"),
        ("www.example.test.", "HTTPS"),
    ]


@pytest.mark.parametrize("follow", [True, False])
def test_cname_followed_in_response_or_by_requery(follow: bool) -> None:
    """BIND puts the target's RRset in the answer; Unbound local data does not."""
    fake = FakeDoH(ZONE, follow_cnames=follow)
    result = fake.resolve_https("cname.example.test")
    assert [e.priority for e in result.endpoints] == [1, 2]
    assert result.aliases == ("cname.example.test",)
    assert result.target_name == "www.example.test"
    assert result.ttl == 60  # the CNAME's TTL is the smallest
    assert len(fake.queries) == (1 if follow else 2)


def test_cname_out_of_zone_is_chased() -> None:
    fake = resolver()
    result = fake.resolve_https("outside.example.test")
    assert fake.queries[-1] == ("svc.example.net.", "HTTPS")
    assert result.endpoints == ()  # the fake knows nothing outside its zone


def test_chain_within_the_bound() -> None:
    fake = FakeDoH(chain_zone(8))
    result = fake.resolve_https("hop0.example.test")
    assert result.target_name == "hop8.example.test"
    assert len(result.endpoints) == 1
    assert len(result.aliases) == 8


def test_chain_beyond_the_bound_falls_back() -> None:
    """RFC 9460 §3.1: past the chain limit, act as if there were no record."""
    fake = FakeDoH(chain_zone(9))
    result = fake.resolve_https("hop0.example.test")
    assert result.endpoints == ()
    assert result.target_name == "hop0.example.test"
    assert "more than 8 aliases" in result.rejected[-1].reason
    assert len(fake.queries) == 9
    assert (
        FakeDoH(chain_zone(3), max_aliases=2)
        .resolve_https("hop0.example.test")
        .endpoints
        == ()
    )


@pytest.mark.parametrize("name", ["loop1.example.test", "cloop1.example.test"])
def test_alias_loops_end_resolution(name: str) -> None:
    result = resolver().resolve_https(name)
    assert result.endpoints == ()
    assert result.rejected
    reason = result.rejected[-1].reason
    assert "loop" in reason or "aliases" in reason


def test_alias_to_root_means_no_service() -> None:
    result = resolver().resolve_https("gone.example.test")
    assert result.endpoints == ()
    assert "service unavailable" in result.rejected[-1].reason


def test_nxdomain_and_nodata_give_no_endpoints_with_negative_ttl() -> None:
    fake = resolver()
    for name in ("nothing.example.test", "backend.example.test"):
        result = fake.resolve_https(name)
        assert result.endpoints == ()
        assert not result.svcb_reliant
        assert result.ech_configs() is None
        assert result.ttl == 30  # SOA minimum (RFC 2308 §5)


def test_malformed_ech_record_is_dropped_with_reason_when_lenient() -> None:
    result = resolver(reject_malformed_rrset=False).resolve_https("badech.example.test")
    assert [e.priority for e in result.endpoints] == [2]
    assert result.svcb_reliant
    (rejected,) = result.rejected
    assert rejected.owner == "badech.example.test"
    assert "not an ECHConfigList" in rejected.reason


def test_malformed_record_rejects_rrset_by_default() -> None:
    """RFC 9460 §2.2: "the client MUST reject the entire RRSet"."""
    result = resolver().resolve_https("badech.example.test")
    assert result.endpoints == ()
    assert "RFC 9460 §2.2" in result.rejected[-1].reason


def test_unknown_mandatory_key_skips_record() -> None:
    result = resolver().resolve_https("mandatory.example.test")
    assert [e.priority for e in result.endpoints] == [2]
    assert "key65000" in result.rejected[0].reason


@pytest.mark.requirement("ECH-105", "ECH-109")
def test_mixed_and_no_ech() -> None:
    """RFC 9848 §5.1 and §8; ECH-105, ECH-109."""
    mixed = resolver().resolve_https("mixed.example.test")
    assert mixed.mixed
    assert not mixed.svcb_reliant
    assert mixed.ech_configs() == x25519_configs()
    none = resolver().resolve_https("noech.example.test")
    assert not none.mixed
    assert not none.svcb_reliant
    assert none.ech_configs() is None


def test_svcb_reliant_needs_endpoints() -> None:
    empty = HTTPSResolution("a.test", "a.test", (), 0)
    assert not empty.svcb_reliant
    assert not empty.mixed


def test_wire_malformed_rrset_raises_naming_the_resolver() -> None:
    fake = FakeDoH(
        ZONE, raw_https={"badlen.example.test.": https_wire(1, [(5, BAD_LENGTH_ECH)])}
    )
    with pytest.raises(DNSLookupError) as info:
        fake.resolve_https("badlen.example.test")
    assert URL in str(info.value)
    assert "ECHConfigList" in str(info.value)
    assert info.value.url == URL
    assert info.value.rdtype == "HTTPS"


@pytest.mark.parametrize(
    "rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR]
)
def test_error_rcodes_raise(rcode: dns.rcode.Rcode) -> None:
    fake = FakeDoH(ZONE, rcodes={"example.test.": rcode})
    with pytest.raises(DNSLookupError, match=dns.rcode.to_text(rcode)) as info:
        fake.resolve_https("example.test")
    assert info.value.url == URL
    assert (
        fake.cache.get((dns.name.from_text(info.value.name), dns.rdatatype.HTTPS))
        is None
    )
    assert len(fake.cache) == 0


def test_transport_error_raises_naming_the_resolver() -> None:
    fake = FakeDoH(ZONE, errors={"example.test.": httpx2.ConnectError("refused")})
    with pytest.raises(DNSLookupError, match="ConnectError: refused") as info:
        fake.resolve_https("example.test")
    assert str(info.value).startswith(f"DoH {URL}: example.test. HTTPS:")


def test_cache_respects_ttl() -> None:
    clock = FakeClock()
    fake = FakeDoH(ZONE, cache=TTLCache(clock=clock))
    first = fake.resolve_https("cname.example.test")
    queries = len(fake.queries)
    clock.now += 30
    again = fake.resolve_https("cname.example.test")
    assert len(fake.queries) == queries  # all from the cache
    assert again.endpoints == first.endpoints
    assert again.ttl == 30  # 60 - 30 seconds
    clock.now += 31
    fake.resolve_https("cname.example.test")
    assert len(fake.queries) == 2 * queries


def test_cache_can_be_disabled() -> None:
    fake = FakeDoH(ZONE, cache=TTLCache(max_entries=0))
    fake.resolve_https("example.test")
    fake.resolve_https("example.test")
    assert len(fake.queries) == 2


def test_addresses() -> None:
    fake = resolver()
    assert fake.resolve_addresses("backend.example.test") == ["127.0.0.2", "::2"]
    assert fake.queries[-2:] == [
        ("backend.example.test.", "A"),
        ("backend.example.test.", "AAAA"),
    ]
    assert fake.resolve_addresses("cname.example.test") == ["127.0.0.1"]
    assert fake.resolve_addresses("nothing.example.test") == []
    assert FakeDoH(ZONE, follow_cnames=False).resolve_addresses(
        "cname.example.test"
    ) == ["127.0.0.1"]


def test_addresses_for_prefers_dns_then_hints() -> None:
    """RFC 9460 §7.3: A/AAAA for the TargetName first; hints otherwise."""
    fake = resolver()
    (www_first, _) = fake.resolve_https("www.example.test").endpoints
    assert fake.addresses_for(www_first) == ["127.0.0.2", "::2"]  # hint ignored
    (hinted,) = fake.resolve_https("hintonly.example.test").endpoints
    assert fake.addresses_for(hinted) == ["192.0.2.1", "2001:db8::1"]


# -- discover: where to connect -------------------------------------------------------


def test_discover_dot_target_with_hints_connects_to_the_hints() -> None:
    fake = resolver()
    found = discover(fake, "www.example.test", 8443)
    assert found.endpoint is not None
    assert found.endpoint.target == "_8443._https.www.example.test"
    assert found.addresses == ("192.0.2.7", "2001:db8::7")  # not www's 127.0.0.1
    assert ("www.example.test.", "A") not in fake.queries  # no fallback needed
    assert found.port == 8443
    assert found.ech_configs == x25519_configs()
    assert found.ech_required


def test_discover_dot_target_without_hints_falls_back_to_the_origin() -> None:
    """As curl does: the prefixed owner has no addresses and there are no hints."""
    fake = resolver()
    found = discover(fake, "example.test", 9443)
    assert found.endpoint is not None
    assert found.endpoint.target == "_9443._https.example.test"
    assert (found.endpoint.ipv4hint, found.endpoint.ipv6hint) == ((), ())
    assert found.addresses == ("127.0.0.1",)  # the origin's A
    assert fake.queries[-4:] == [
        ("_9443._https.example.test.", "A"),
        ("_9443._https.example.test.", "AAAA"),
        ("example.test.", "A"),
        ("example.test.", "AAAA"),
    ]
    assert found.port == 9443
    assert found.ech_configs == x25519_configs()
    assert found.ech_required


def test_discover_named_target_uses_its_addresses() -> None:
    found = discover(resolver(), "www.example.test")
    assert found.endpoint is not None
    assert found.endpoint.target == "backend.example.test"
    assert found.addresses == ("127.0.0.2", "::2")
    assert found.port == 18443


def test_discover_without_record_uses_the_origin() -> None:
    found = discover(resolver(), "backend.example.test")
    assert found.endpoint is None
    assert found.addresses == ("127.0.0.2", "::2")
    assert found.ech_configs is None
    assert not found.ech_required


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("http://127.0.0.1/dns-query", {}),
        ("https:///dns-query", {}),
        (URL, {"http_version": "h3"}),
        (URL, {"max_aliases": 0}),
    ],
)
def test_bad_arguments(url: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DoHResolver(url, **kwargs)  # type: ignore[arg-type]


def test_ip_literal_has_no_https_record() -> None:
    with pytest.raises(ValueError, match="IP address"):
        resolver().resolve_https("192.0.2.1")


def test_unreachable_resolver_raises_lookup_error() -> None:
    """The real transport: nothing listens on port 1 of the loopback."""
    with (
        DoHResolver("https://127.0.0.1:1/dns-query", timeout=2) as doh,
        pytest.raises(DNSLookupError, match=r"https://127\.0\.0\.1:1/dns-query"),
    ):
        doh.resolve_https("example.test")
