"""DoH interop: our resolver against BIND 9 and Unbound; kdig and dnspython
against our own DoH responder (RFC 8484, RFC 9460, RFC 9848).

BIND 9.18 and Unbound 1.17 serve the zone of
:func:`tests.integration.dns_servers.make_zone` over HTTP/2 only. Each
resolver test runs against both, with POST and GET. ``kdig`` (Knot) is the
independent client that checks our reading of the same answers, and the
lines :func:`ech.dns.publish.https_record_line` writes must come back from
both servers byte for byte in presentation form.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx2
import pytest

from ech.aio import TLSStream
from ech.config import ECHConfigList
from ech.dns.cache import TTLCache
from ech.dns.discovery import discover
from ech.dns.doh_server import Zone
from ech.dns.records import ServiceEndpoint
from ech.dns.resolver import DNSLookupError, DoHResolver
from ech.http import ConnectionInfo, Request, Response, Router, serve_http
from ech.serve.doh import doh_handler
from ech.server.config import ServerConfig
from tests.harness.loop import BackgroundLoop

if TYPE_CHECKING:
    from tests.integration.dns_servers import DNSPKI, DoHServer, Kdig, TestZone

pytest_plugins = ("tests.integration.dns_servers",)
pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

DOH_PATH = "/dns-query"
METHODS = pytest.mark.parametrize("post", [True, False], ids=["POST", "GET"])


def https_rrset(response: dns.message.Message, name: str) -> dns.rrset.RRset:
    return response.find_rrset(
        response.answer,
        dns.name.from_text(name),
        dns.rdataclass.IN,
        dns.rdatatype.HTTPS,
    )


def www_endpoints(zone: TestZone) -> tuple[ServiceEndpoint, ...]:
    return (
        ServiceEndpoint(
            priority=1,
            target="backend.example.test",
            port=18443,
            alpn=("h2",),
            ipv4hint=("127.0.0.2",),
            ech=zone.x25519,
        ),
        ServiceEndpoint(
            priority=2,
            target="www.example.test",
            port=443,
            alpn=("http/1.1",),
            ech=zone.p256_x25519,
        ),
    )


# -- our resolver against BIND and Unbound -------------------------------------------


@METHODS
def test_apex(doh_server: DoHServer, dns_zone: TestZone, post: bool) -> None:
    with doh_server.resolver(http_version="h2", post=post) as doh:
        result = doh.resolve_https("example.test")
    assert result.endpoints == (
        ServiceEndpoint(
            priority=1,
            target="example.test",
            port=443,
            alpn=("h2", "http/1.1"),
            ipv4hint=("127.0.0.1",),
            ech=dns_zone.x25519,
        ),
    )
    assert result.svcb_reliant
    assert result.ech_configs() == dns_zone.x25519
    assert 0 < result.ttl <= 300


@METHODS
def test_priorities_targets_hints_addresses(
    doh_server: DoHServer, dns_zone: TestZone, post: bool
) -> None:
    with doh_server.resolver(http_version="h2", post=post) as doh:
        result = doh.resolve_https("www.example.test")
        assert result.endpoints == www_endpoints(dns_zone)
        assert result.ech_configs() == dns_zone.x25519
        assert doh.addresses_for(result.endpoints[0]) == ["127.0.0.2", "::2"]
        assert doh.resolve_addresses("example.test") == ["127.0.0.1", "::1"]


def test_port_prefix(doh_server: DoHServer, dns_zone: TestZone) -> None:
    """TargetName "." at _8443._https.NAME is that owner; it has no A/AAAA."""
    with doh_server.resolver() as doh:
        result = doh.resolve_https("example.test", 8443)
        (endpoint,) = result.endpoints
        addresses = doh.addresses_for(endpoint)
        found = discover(doh, "example.test", 8443)
    assert result.query_name == "_8443._https.example.test"
    assert result.target_name == "example.test"
    assert endpoint == ServiceEndpoint(
        priority=1,
        target="_8443._https.example.test",
        port=8443,
        alpn=("h2",),
        ipv4hint=("127.0.0.1",),
        ipv6hint=("::1",),
        ech=dns_zone.x25519,
    )
    assert addresses == ["127.0.0.1", "::1"]  # the hints
    assert (found.addresses, found.port) == (("127.0.0.1", "::1"), 8443)
    assert found.ech_configs == dns_zone.x25519


def test_port_prefix_without_hints_falls_back_to_the_origin(
    doh_server: DoHServer, dns_zone: TestZone
) -> None:
    with doh_server.resolver() as doh:
        (endpoint,) = doh.resolve_https("example.test", 7443).endpoints
        addresses = doh.addresses_for(endpoint)
        found = discover(doh, "example.test", 7443)
    assert endpoint.target == "_7443._https.example.test"
    assert (endpoint.ipv4hint, endpoint.ipv6hint) == ((), ())
    assert addresses == []  # nothing at the owner, no hints
    assert found.addresses == ("127.0.0.1", "::1")  # example.test's A and AAAA
    assert found.port == 7443
    assert found.ech_configs == dns_zone.x25519


@pytest.mark.parametrize("name", ["alias", "cname"])
def test_alias_and_cname(doh_server: DoHServer, dns_zone: TestZone, name: str) -> None:
    with doh_server.resolver() as doh:
        result = doh.resolve_https(f"{name}.example.test")
    assert result.endpoints == www_endpoints(dns_zone)
    assert result.aliases == (f"{name}.example.test",)
    assert result.target_name == "www.example.test"


def test_malformed_ech_record_is_rejected(
    doh_server: DoHServer, dns_zone: TestZone
) -> None:
    with doh_server.resolver(reject_malformed_rrset=False) as doh:
        result = doh.resolve_https("badech.example.test")
    (endpoint,) = result.endpoints
    assert (endpoint.priority, endpoint.ech) == (2, dns_zone.x25519)
    (rejected,) = result.rejected
    assert rejected.malformed
    assert "ech value is not an ECHConfigList (RFC 9848 §3)" in rejected.reason
    assert dns_zone.bad_inner_ech in rejected.record
    with doh_server.resolver() as strict:  # the default, RFC 9460 §2.2
        assert strict.resolve_https("badech.example.test").endpoints == ()


def test_bad_ech_length_fails_the_lookup(doh_server: DoHServer) -> None:
    with doh_server.resolver() as doh, pytest.raises(DNSLookupError) as info:
        doh.resolve_https("badlen.example.test")
    message = str(info.value)
    assert doh_server.url in message
    assert "invalid ECHConfigList" in message


def test_unknown_mandatory_key_skips_record(
    doh_server: DoHServer, dns_zone: TestZone
) -> None:
    with doh_server.resolver() as doh:
        result = doh.resolve_https("mandatory.example.test")
    assert [e.priority for e in result.endpoints] == [2]
    assert "key65000" in result.rejected[0].reason


def test_mixed_and_without_ech(doh_server: DoHServer) -> None:
    with doh_server.resolver() as doh:
        mixed = doh.resolve_https("mixed.example.test")
        none = doh.resolve_https("noech.example.test")
    assert mixed.mixed
    assert not mixed.svcb_reliant
    assert not none.svcb_reliant
    assert none.ech_configs() is None


def test_loop_and_nxdomain(doh_server: DoHServer) -> None:
    with doh_server.resolver() as doh:
        loop = doh.resolve_https("loop1.example.test")
        nothing = doh.resolve_https("nothing.example.test")
    assert loop.endpoints == ()
    assert "loop" in loop.rejected[-1].reason
    assert nothing.endpoints == ()
    assert 0 < nothing.ttl <= 60


def test_http1_only_client_fails_clearly(doh_server: DoHServer) -> None:
    """BIND and Unbound answer DoH over HTTP/2 only (interop.md lesson 5)."""
    with (
        doh_server.resolver(http_version="http/1.1") as doh,
        pytest.raises(DNSLookupError) as info,
    ):
        doh.resolve_https("example.test")
    assert doh_server.url in str(info.value)


def test_auto_negotiates(doh_server: DoHServer, dns_zone: TestZone) -> None:
    with doh_server.resolver(http_version="auto") as doh:
        assert doh.resolve_https("example.test").ech_configs() == dns_zone.x25519


# -- kdig and publication ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "example.test",
        "www.example.test",
        "_8443._https.example.test",
        "_7443._https.example.test",
        "badech.example.test",
        "mixed.example.test",
        "published.example.test",
    ],
)
@pytest.mark.parametrize("get", [False, True], ids=["POST", "GET"])
def test_kdig_agrees_with_our_parse(
    doh_server: DoHServer, dns_zone: TestZone, kdig: Kdig, name: str, get: bool
) -> None:
    lines = kdig(doh_server.port, doh_server.ca_path, name, get=get)
    theirs = {dns.rdata.from_text("IN", "HTTPS", line) for line in lines}
    with doh_server.resolver(reject_malformed_rrset=False) as doh:
        ours = set(https_rrset(doh.query(name, dns.rdatatype.HTTPS), name))
        result = doh.resolve_https(name)
    assert theirs == ours
    kdig_ech = {m.group(1) for line in lines if (m := re.search(r"ech=(\S+)", line))}
    parsed = {e.ech.to_base64() for e in result.endpoints if e.ech is not None}
    rejected = {dns_zone.bad_inner_ech} if name.startswith("badech") else set()
    assert kdig_ech == parsed | rejected


def test_published_lines_are_served_back_identically(
    doh_server: DoHServer, dns_zone: TestZone
) -> None:
    with doh_server.resolver() as doh:
        for line in dns_zone.published:
            owner = line.split()[0]
            rrset = https_rrset(doh.query(owner, dns.rdatatype.HTTPS), owner)
            served = [
                f"{rrset.name} {rrset.ttl} IN HTTPS {rd.to_text()}" for rd in rrset
            ]
            assert served == [line]


# -- our own DoH responder -------------------------------------------------------------


class Keys:
    """The configs our zone publishes; tests change them as keys rotate."""

    def __init__(self, configs: ECHConfigList) -> None:
        self.configs = configs

    def __call__(self) -> ECHConfigList:
        return self.configs


@dataclass
class OurDoH:
    """``doh_handler`` on ``serve_http`` behind our TLS server, in a thread."""

    port: int
    ca_path: Path
    keys: Keys

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{DOH_PATH}"

    def resolver(self, **kwargs: object) -> DoHResolver:
        return DoHResolver(self.url, cafile=str(self.ca_path), **kwargs)  # type: ignore[arg-type]


async def status_page(request: Request, info: ConnectionInfo) -> Response:
    body = json.dumps({"method": request.method, "target": request.target}).encode()
    return Response(200, (("content-type", "application/json"),), body)


@pytest.fixture(scope="module")
def ours(dns_pki: DNSPKI, dns_zone: TestZone) -> Iterator[OurDoH]:
    keys = Keys(dns_zone.x25519)
    zone = Zone("example.test", keys, hosts=("@", "www"), port=8443)
    config = ServerConfig(
        certificates=(dns_pki.ca.issue("127.0.0.1"),),
        alpn_protocols=("h2", "http/1.1"),
    )

    router = Router({DOH_PATH: doh_handler(zone, DOH_PATH)}, default=status_page)

    async def handler(stream: TLSStream) -> None:
        await serve_http(stream, router)

    with BackgroundLoop("our-doh") as loop:
        port = loop.start_server(handler, config)
        yield OurDoH(port, dns_pki.ca_path, keys)


@METHODS
@pytest.mark.parametrize("version", ["h2", "http/1.1"])
def test_our_responder(
    ours: OurDoH, dns_zone: TestZone, post: bool, version: str
) -> None:
    with ours.resolver(post=post, http_version=version) as doh:
        result = doh.resolve_https("www.example.test", 8443)
        assert doh.resolve_addresses("www.example.test") == ["127.0.0.1"]
        (endpoint,) = result.endpoints
        # "." is the owner, which has no addresses: the hints give them.
        assert doh.resolve_addresses(endpoint.target) == []
        assert doh.addresses_for(endpoint) == ["127.0.0.1"]
        found = discover(doh, "www.example.test", 8443)
    assert (endpoint.target, endpoint.port) == ("_8443._https.www.example.test", 8443)
    assert (endpoint.ipv4hint, endpoint.ipv6hint) == (("127.0.0.1",), ())
    assert endpoint.ech == dns_zone.x25519
    assert result.svcb_reliant
    assert (found.addresses, found.port) == (("127.0.0.1",), 8443)


@pytest.mark.parametrize("get", [False, True], ids=["POST", "GET"])
def test_kdig_reads_our_responder(
    ours: OurDoH, dns_zone: TestZone, kdig: Kdig, get: bool
) -> None:
    (line,) = kdig(ours.port, ours.ca_path, "_8443._https.example.test", get=get)
    assert f"ech={dns_zone.x25519.to_base64()}" in line
    assert line.startswith("1 . alpn=h2,http/1.1 port=8443 ipv4hint=127.0.0.1 ")
    assert "ipv6hint" not in line  # the zone has no IPv6 address
    assert kdig(ours.port, ours.ca_path, "www.example.test", "A", get=get) == [
        "127.0.0.1"
    ]


def test_our_responder_follows_key_rotation(ours: OurDoH, dns_zone: TestZone) -> None:
    with ours.resolver(cache=TTLCache(max_entries=0)) as doh:
        assert doh.resolve_https("example.test", 8443).ech_configs() == dns_zone.x25519
        ours.keys.configs = dns_zone.p256_x25519
        try:
            rotated = doh.resolve_https("example.test", 8443).ech_configs()
        finally:
            ours.keys.configs = dns_zone.x25519
    assert rotated == dns_zone.p256_x25519


@pytest.mark.parametrize("http2", [True, False])
def test_our_responder_hands_other_paths_over(ours: OurDoH, http2: bool) -> None:
    context = ssl.create_default_context(cafile=str(ours.ca_path))
    with httpx2.Client(verify=context, http1=not http2, http2=http2) as client:
        response = client.get(f"https://127.0.0.1:{ours.port}/status?x=1")
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert response.json() == {"method": "GET", "target": "/status?x=1"}
        bad = client.post(
            f"https://127.0.0.1:{ours.port}{DOH_PATH}",
            content=b"xx",
            headers={"content-type": "text/plain"},
        )
        assert bad.status_code == 415
