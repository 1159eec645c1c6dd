"""ech.dns.doh_server (the zone, DNS answers) and ech.serve.doh (RFC 8484 HTTP)."""

from __future__ import annotations

import base64

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from ech.config import ECHConfigList
from ech.dns.doh_server import DNS_MESSAGE, Zone, answer
from ech.dns.publish import DEFAULT_DNS_TTL, https_record_line
from ech.dns.records import endpoints_from_rrset
from ech.pki import LOOPBACK_NAMES, TestCA
from ech.serve.doh import handle_request, serve_zone
from ech.server.config import ServerConfig
from tests.unit.dnsrecords.dns_fakes import p256_configs, x25519_configs

PATH = "/dns-query"


class Keys:
    """The server's current configs, changeable as keys rotate."""

    def __init__(self, configs: ECHConfigList | None) -> None:
        self.configs = configs

    def __call__(self) -> ECHConfigList | None:
        return self.configs


def make_zone(port: int = 443, keys: Keys | None = None) -> Zone:
    return Zone(
        "example.test",
        keys or Keys(x25519_configs()),
        hosts=("@", "www"),
        port=port,
        addresses=("127.0.0.1", "::1"),
        ttl=60,
    )


def ask(zone: Zone, name: str, rdtype: str = "HTTPS") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.message.from_wire(answer(query.to_wire(), zone))


def test_https_answer_with_addresses_in_additional() -> None:
    response = ask(make_zone(), "www.example.test.")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    (rrset,) = response.answer
    parsed = endpoints_from_rrset(rrset)
    (endpoint,) = parsed.endpoints
    assert rrset[0].target == dns.name.root  # TargetName "." (the owner)
    assert endpoint.target == "www.example.test"
    assert endpoint.port == 443
    assert endpoint.alpn == ("h2", "http/1.1")
    assert (endpoint.ipv4hint, endpoint.ipv6hint) == ((), ())  # A/AAAA suffice
    assert endpoint.ech == x25519_configs()
    additional = {(r.name.to_text(), r.rdtype) for r in response.additional}
    assert additional == {
        ("www.example.test.", dns.rdatatype.A),
        ("www.example.test.", dns.rdatatype.AAAA),
    }


def test_other_port_publishes_at_prefixed_name() -> None:
    """TargetName "." with hints: the only form curl 8.23 applies there."""
    zone = make_zone(8443)
    response = ask(zone, "_8443._https.example.test.")
    (rrset,) = response.answer
    (rdata,) = rrset
    assert rdata.target == dns.name.root
    (endpoint,) = endpoints_from_rrset(rrset).endpoints
    # "." means the owner (RFC 9460 §2.5.2), which has no addresses ...
    assert (endpoint.target, endpoint.port) == ("_8443._https.example.test", 8443)
    assert not response.additional
    # ... so the zone's addresses travel as hints (RFC 9460 §7.3).
    assert endpoint.ipv4hint == ("127.0.0.1",)
    assert endpoint.ipv6hint == ("::1",)
    assert endpoint.ech == x25519_configs()
    # Nothing at the bare name for HTTPS; the prefix labels are empty
    # non-terminals (RFC 8020: NODATA, not NXDOMAIN).
    for name in ("example.test.", "_https.example.test."):
        nodata = ask(zone, name)
        assert nodata.rcode() == dns.rcode.NOERROR
        assert not nodata.answer
        assert nodata.authority[0].rdtype == dns.rdatatype.SOA


def test_hints_only_for_other_ports_and_by_family() -> None:
    v4_only = Zone(
        "example.test", Keys(x25519_configs()), port=8443, addresses=("192.0.2.1",)
    )
    (endpoint,) = endpoints_from_rrset(
        ask(v4_only, "_8443._https.example.test.").answer[0]
    ).endpoints
    assert (endpoint.ipv4hint, endpoint.ipv6hint) == (("192.0.2.1",), ())
    assert "ipv4hint" not in make_zone(443).to_text()
    assert "ipv6hint" not in make_zone(443).to_text()


@pytest.mark.requirement("ECH-87")
def test_rotation_shows_at_once() -> None:
    keys = Keys(x25519_configs())
    zone = make_zone(keys=keys)
    keys.configs = p256_configs()
    (endpoint,) = endpoints_from_rrset(ask(zone, "example.test.").answer[0]).endpoints
    assert endpoint.ech == p256_configs()
    keys.configs = None
    (endpoint,) = endpoints_from_rrset(ask(zone, "example.test.").answer[0]).endpoints
    assert endpoint.ech is None


def test_addresses_nodata_nxdomain() -> None:
    zone = make_zone()
    a = ask(zone, "www.example.test.", "A")
    assert [r.to_text() for r in a.answer[0]] == ["127.0.0.1"]
    nodata = ask(zone, "www.example.test.", "TXT")
    assert nodata.rcode() == dns.rcode.NOERROR
    assert not nodata.answer
    nx = ask(zone, "nothing.example.test.")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    (soa,) = nx.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.name == dns.name.from_text("example.test.")


def test_any_returns_the_node() -> None:
    response = ask(make_zone(), "www.example.test.", "ANY")
    assert {r.rdtype for r in response.answer} == {
        dns.rdatatype.A,
        dns.rdatatype.AAAA,
        dns.rdatatype.HTTPS,
    }


def test_refused_outside_the_zone_and_other_classes() -> None:
    zone = make_zone()
    outside = ask(zone, "example.net.")
    assert outside.rcode() == dns.rcode.REFUSED
    assert not outside.flags & dns.flags.AA
    chaos = dns.message.make_query("example.test.", "TXT", rdclass=dns.rdataclass.CH)
    reply = dns.message.from_wire(answer(chaos.to_wire(), zone))
    assert reply.rcode() == dns.rcode.REFUSED


def test_notimp_and_formerr() -> None:
    zone = make_zone()
    notify = dns.message.make_query("example.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(answer(notify.to_wire(), zone)).rcode() == (
        dns.rcode.NOTIMP
    )
    junk = dns.message.make_query("example.test.", "A").to_wire() + b"\x00junk"
    assert dns.message.from_wire(answer(junk, zone)).rcode() == dns.rcode.FORMERR
    empty = dns.message.Message(id=7)
    assert dns.message.from_wire(answer(empty.to_wire(), zone)).rcode() == (
        dns.rcode.FORMERR
    )


@pytest.mark.parametrize("wire", [b"", b"\x00\x01", b"\xff" * 40])
def test_not_a_query(wire: bytes) -> None:
    with pytest.raises(ValueError):
        answer(wire, make_zone())


def test_a_response_is_not_a_query() -> None:
    query = dns.message.make_query("example.test.", "A")
    response = dns.message.make_response(query)
    with pytest.raises(ValueError, match="response"):
        answer(response.to_wire(), make_zone())


def test_edns_and_id_are_echoed() -> None:
    query = dns.message.make_query("example.test.", "HTTPS", use_edns=0)
    query.id = 4242
    reply = dns.message.from_wire(answer(query.to_wire(), make_zone()))
    assert reply.id == 4242
    assert reply.edns == 0


def test_zone_text_lists_every_record() -> None:
    text = make_zone(8443).to_text()
    assert (
        '_8443._https.www.example.test. 60 IN HTTPS 1 . alpn="h2,http/1.1" port="8443"'
        f' ipv4hint="127.0.0.1" ech="{x25519_configs().to_base64()}" ipv6hint="::1"'
    ) in text
    assert "www.example.test. 60 IN A 127.0.0.1" in text
    assert "www.example.test. 60 IN AAAA ::1" in text
    assert "example.test. 60 IN SOA" in text


def test_zone_rejects_foreign_hosts_and_bad_addresses() -> None:
    with pytest.raises(ValueError, match="not inside"):
        Zone("example.test", Keys(None), hosts=("other.net.",))
    with pytest.raises(ValueError, match="not-an-address"):
        Zone("example.test", Keys(None), addresses=("not-an-address",))


# -- HTTP semantics ---------------------------------------------------------------


def query_wire(name: str = "example.test.", rdtype: str = "HTTPS") -> bytes:
    query = dns.message.make_query(name, rdtype)
    query.id = 0
    return query.to_wire()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_post() -> None:
    response = handle_request(
        "POST",
        PATH,
        {"content-type": DNS_MESSAGE},
        query_wire(),
        path=PATH,
        zone=make_zone(),
    )
    assert response.status == 200
    headers = dict(response.headers)
    assert headers["content-type"] == DNS_MESSAGE
    assert headers["cache-control"] == "max-age=60"
    assert dns.message.from_wire(response.body).answer


def test_get_with_and_without_padding() -> None:
    wire = query_wire()
    for encoded in (b64url(wire), base64.urlsafe_b64encode(wire).decode()):
        response = handle_request(
            "GET", f"{PATH}?dns={encoded}", {}, b"", path=PATH, zone=make_zone()
        )
        assert response.status == 200


def test_negative_answer_max_age_is_the_negative_ttl() -> None:
    """RFC 8484 §5.1 with RFC 2308 §5: min(SOA TTL, SOA minimum)."""
    response = handle_request(
        "GET",
        f"{PATH}?dns={b64url(query_wire('nothing.example.test.'))}",
        {},
        b"",
        path=PATH,
        zone=make_zone(),
    )
    assert dict(response.headers)["cache-control"] == "max-age=60"


def test_refused_has_no_cache_control() -> None:
    response = handle_request(
        "GET",
        f"{PATH}?dns={b64url(query_wire('a.net.'))}",
        {},
        b"",
        path=PATH,
        zone=make_zone(),
    )
    assert response.status == 200
    assert "cache-control" not in dict(response.headers)


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "status"),
    [
        ("GET", "/other", {}, b"", 404),
        ("GET", PATH, {}, b"", 400),
        ("GET", f"{PATH}?dns=", {}, b"", 400),
        ("GET", f"{PATH}?dns=a&dns=b", {}, b"", 400),
        ("GET", f"{PATH}?dns=!!!", {}, b"", 400),
        ("GET", f"{PATH}?dns={b64url(b'xx')}", {}, b"", 400),
        ("POST", PATH, {"content-type": "text/plain"}, b"x", 415),
        ("POST", PATH, {}, b"x", 415),
        ("POST", PATH, {"content-type": DNS_MESSAGE}, b"x" * 65536, 413),
        ("POST", PATH, {"content-type": DNS_MESSAGE}, b"\x00" * 5, 400),
        ("PUT", PATH, {}, b"", 405),
    ],
)
def test_http_errors(
    method: str, target: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    response = handle_request(
        method, target, headers, body, path=PATH, zone=make_zone()
    )
    assert response.status == status
    if status == 405:
        assert dict(response.headers)["allow"] == "GET, POST"


def test_content_type_parameters_are_ignored() -> None:
    response = handle_request(
        "POST",
        PATH,
        {"content-type": "Application/DNS-Message; charset=binary"},
        query_wire(),
        path=PATH,
        zone=make_zone(),
    )
    assert response.status == 200


def test_names_without_a_common_suffix_make_a_root_zone() -> None:
    """``ech certs``'s public certificate also names ``localhost``: the served
    names then share no suffix and the zone's origin is the root, whose SOA
    once read ``ns..`` (an empty label) and failed every DoH query.
    """
    ca = TestCA.create()
    config = ServerConfig(
        certificates=(
            ca.issue("public.example", *LOOPBACK_NAMES),
            ca.issue("secret.example"),
        ),
        ech_retry_configs=x25519_configs(),
    )
    zone = serve_zone(lambda: config, "127.0.0.1", 8443)
    assert zone.origin == dns.name.root
    response = ask(zone, "_8443._https.secret.example.")
    (rrset,) = response.answer
    assert rrset.ttl == DEFAULT_DNS_TTL
    (endpoint,) = endpoints_from_rrset(rrset).endpoints
    assert endpoint.ech == x25519_configs()
    assert endpoint.ipv4hint == ("127.0.0.1",)
    nx = ask(zone, "nothing.example.")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    (soa,) = nx.authority
    assert soa[0].mname == dns.name.from_text("ns.")


def test_serve_zone_answers_with_the_published_records_ttl() -> None:
    """``ech serve --doh`` and ``ech dns-record`` promise the same TTL."""
    ca = TestCA.create()
    config = ServerConfig(certificates=(ca.issue("www.example.test"),))
    zone = serve_zone(lambda: config, "127.0.0.1", 443)
    (rrset,) = ask(zone, "www.example.test.").answer
    assert rrset.ttl == DEFAULT_DNS_TTL
    line = https_record_line("www.example.test", x25519_configs())
    assert line.split()[1] == str(DEFAULT_DNS_TTL)
