"""One dialing policy for all clients: DoH discovery, GREASE, one retry.

``ech.blocking.connect``, ``ech.aio.open_connection`` and (over QUIC)
``ech.quic.client.open_http3`` take the same ``resolver=`` and must behave
the same (ech.dial): the HTTPS record is
looked up before any ClientHello (RFC 9848 §5), GREASE when it has no ECH,
one retry with the authenticated retry_configs on rejection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ech.aio import TLSStream, open_connection
from ech.blocking import connect
from ech.client.config import ClientConfig
from ech.config import ECHConfig, ECHConfigList
from ech.dial import ECHOutcome, explain_error
from ech.dns.doh_server import Zone
from ech.dns.resolver import DNSLookupError, DoHResolver
from ech.errors import ECHRejectedError, ECHUnavailableError
from ech.events import ECHReason, HandshakeComplete
from ech.http import Router, serve_http
from ech.quic.client import open_http3
from ech.quic.server import HTTP3Server
from ech.serve.doh import doh_handler
from ech.serve.status_page import status_page
from ech.server.config import ServerConfig
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    ServerPKI,
    config_list,
    ech_key,
    run_service,
)

DOH_PATH = "/dns-query"


class Published:
    """What the zone's HTTPS record carries; tests change it."""

    def __init__(self) -> None:
        self.configs: ECHConfigList | None = None

    def __call__(self) -> ECHConfigList | None:
        return self.configs


@asynccontextmanager
async def doh_server(
    pki: ServerPKI, published: Published, tls_port: int
) -> AsyncIterator[str]:
    """A DoH server for ``HIDDEN_NAME`` at 127.0.0.1; yields its URL."""
    zone = Zone(
        "example.",
        published,
        hosts=(HIDDEN_NAME + ".",),
        port=tls_port,
        alpn=("http/1.1",),
        addresses=("127.0.0.1",),
    )
    router = Router({DOH_PATH: doh_handler(zone, DOH_PATH)})
    config = ServerConfig(
        certificates=(pki.ca.issue("127.0.0.1"),), alpn_protocols=("h2", "http/1.1")
    )

    async def app(stream: TLSStream) -> None:
        await serve_http(stream, router)

    async with run_service(config, app=app) as running:
        yield f"https://127.0.0.1:{running.port}{DOH_PATH}"


async def dial_explained(
    adapter: str,
    port: int,
    config: ClientConfig,
    resolver: DoHResolver,
    *,
    name: str = HIDDEN_NAME,
    require_ech: bool = False,
) -> tuple[HandshakeComplete, bool, ECHOutcome | None]:
    """Connect to ``name`` with discovery: handshake, ``retried``, outcome."""
    if adapter == "quic":
        h3 = dataclasses.replace(config, alpn_protocols=("h3",))
        async with await open_http3(
            "127.0.0.1", port, h3, name, resolver=resolver, require_ech=require_ech
        ) as connection:
            return connection.negotiated, connection.retried, connection.ech_outcome
    if adapter == "aio":
        stream = await open_connection(
            "127.0.0.1", port, config, name, resolver=resolver, require_ech=require_ech
        )
        await stream.close()
        return stream.negotiated, stream.retried, stream.ech_outcome

    def blocking() -> tuple[HandshakeComplete, bool, ECHOutcome | None]:
        with connect(
            "127.0.0.1", port, config, name, resolver=resolver, require_ech=require_ech
        ) as tls:
            return tls.negotiated, tls.retried, tls.ech_outcome

    return await asyncio.to_thread(blocking)


async def dial(
    adapter: str, port: int, config: ClientConfig, resolver: DoHResolver
) -> tuple[HandshakeComplete, bool]:
    """Connect to ``HIDDEN_NAME`` with discovery; the handshake and ``retried``."""
    handshake, retried, _ = await dial_explained(adapter, port, config, resolver)
    return handshake, retried


@asynccontextmanager
async def http3_service(config: ServerConfig) -> AsyncIterator[HTTP3Server]:
    """An HTTP/3 server (status page) on 127.0.0.1, port 0."""
    server = HTTP3Server(config, status_page)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.shutdown(0)


@pytest.mark.requirement("ECH-34", "ECH-64", "ECH-68")
@pytest.mark.parametrize("adapter", ["blocking", "aio", "quic"])
def test_discovery_grease_and_retry(server_pki: ServerPKI, adapter: str) -> None:
    key, stale = ech_key(3), ech_key(4)
    client = server_pki.client_config()
    published = Published()

    async def main() -> None:
        service = (
            http3_service(server_pki.server_config([key]))
            if adapter == "quic"
            else run_service(server_pki.server_config([key]))
        )
        async with (
            service as tls,
            doh_server(server_pki, published, tls.port) as url,
        ):
            with DoHResolver(url, cafile=str(server_pki.ca_file)) as resolver:
                async with asyncio.timeout(IO_TIMEOUT):
                    # The record's configs: ECH accepted at once.
                    published.configs = config_list(key)
                    handshake, retried = await dial(adapter, tls.port, client, resolver)
                    assert (handshake.ech_status.value, retried) == ("accepted", False)
                    # A stale record: rejected, retried with retry_configs.
                    resolver.cache.clear()
                    published.configs = config_list(stale)
                    handshake, retried = await dial(adapter, tls.port, client, resolver)
                    assert (handshake.ech_status.value, retried) == ("accepted", True)
                    # No ECH in the record: GREASE, never a bare ClientHello.
                    resolver.cache.clear()
                    published.configs = None
                    handshake, retried = await dial(adapter, tls.port, client, resolver)
                    assert (handshake.ech_status.value, retried) == ("grease", False)
                    assert handshake.server_name == HIDDEN_NAME

    asyncio.run(main())


@pytest.mark.requirement("ECH-107")
@pytest.mark.parametrize("adapter", ["blocking", "aio"])
def test_failed_lookup_sends_nothing(server_pki: ServerPKI, adapter: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{closed.getsockname()[1]}{DOH_PATH}"

    async def main() -> None:
        async with run_service(server_pki.server_config([ech_key(5)])) as tls:
            resolver = DoHResolver(dead, cafile=str(server_pki.ca_file))
            with resolver, pytest.raises(DNSLookupError):
                async with asyncio.timeout(IO_TIMEOUT):
                    await dial(adapter, tls.port, server_pki.client_config(), resolver)
            await asyncio.sleep(0.1)
            assert tls.service.open_connections == 0
            outcomes = tls.metrics.value(
                "ech_connection_outcomes_total", outcome="peer_closed"
            )
            assert outcomes == 0  # no TCP connection was even opened

    asyncio.run(main())


def unknown_kem(configs: ECHConfigList) -> ECHConfigList:
    """The same list with every config under a KEM nobody implements (0x9999)."""
    return ECHConfigList(
        tuple(
            ECHConfig.from_contents(dataclasses.replace(c.contents, kem_id=0x9999))
            for c in configs.configs
            if c.contents is not None
        )
    )


@pytest.mark.parametrize("adapter", ["blocking", "aio", "quic"])
def test_outcomes_say_why(server_pki: ServerPKI, adapter: str) -> None:
    """Every connection says what became of ECH and why (ech_outcome)."""
    key, stale = ech_key(3), ech_key(4)
    published = Published()

    async def main() -> list[tuple[str, str, str]]:
        service = (
            http3_service(server_pki.server_config([key]))
            if adapter == "quic"
            else run_service(server_pki.server_config([key]))
        )
        seen: list[tuple[str, str, str]] = []
        async with (
            service as tls,
            doh_server(server_pki, published, tls.port) as url,
        ):
            with DoHResolver(url, cafile=str(server_pki.ca_file)) as resolver:
                for configs in (config_list(key), config_list(stale), None):
                    resolver.cache.clear()
                    published.configs = configs
                    async with asyncio.timeout(IO_TIMEOUT):
                        *_, outcome = await dial_explained(
                            adapter, tls.port, server_pki.client_config(), resolver
                        )
                    assert outcome is not None
                    seen.append(
                        (str(outcome.status), str(outcome.reason), outcome.detail)
                    )
        return seen

    accepted, retried, grease = asyncio.run(main())
    assert accepted[:2] == ("accepted", "accepted")
    assert "config_id 3" in accepted[2]
    assert "public.example" in accepted[2]
    assert retried[:2] == ("accepted", "accepted_after_retry")
    assert "authenticated as public.example and sent 1 retry config" in retried[2]
    assert grease[:2] == ("grease", "record_without_ech")
    assert "has no ech parameter" in grease[2]
    assert f"{HIDDEN_NAME} was visible" in grease[2]


@pytest.mark.requirement("ECH-105")
@pytest.mark.parametrize("adapter", ["blocking", "aio", "quic"])
@pytest.mark.parametrize("require_ech", [False, True])
def test_svcb_reliant_without_a_usable_config_sends_nothing(
    server_pki: ServerPKI, adapter: str, require_ech: bool
) -> None:
    """Every record has ech, none usable: no ClientHello at all (RFC 9848 §5.1).

    Before, the client fell back to GREASE with the real name in the outer
    SNI; strict mode or not, it must refuse.
    """
    key = ech_key(6)
    published = Published()
    published.configs = unknown_kem(config_list(key))

    async def main() -> None:
        service = (
            http3_service(server_pki.server_config([key]))
            if adapter == "quic"
            else run_service(server_pki.server_config([key]))
        )
        async with (
            service as tls,
            doh_server(server_pki, published, tls.port) as url,
        ):
            with (
                DoHResolver(url, cafile=str(server_pki.ca_file)) as resolver,
                pytest.raises(ECHUnavailableError) as refused,
            ):
                async with asyncio.timeout(IO_TIMEOUT):
                    await dial_explained(
                        adapter,
                        tls.port,
                        server_pki.client_config(),
                        resolver,
                        require_ech=require_ech,
                    )
            assert refused.value.reason is ECHReason.NO_SUPPORTED_CONFIG
            detail = refused.value.detail
            assert "KEM 0x9999" in detail
            assert "unsupported KEM" in detail
            assert "HKDF_SHA256/AES_128_GCM" in detail
            assert "RFC 9848 §5.1" in detail
            await asyncio.sleep(0.1)
            if not isinstance(tls, HTTP3Server):  # the policy is ech.dial's, shared
                assert tls.service.open_connections == 0
                assert (
                    tls.metrics.value(
                        "ech_connection_outcomes_total", outcome="peer_closed"
                    )
                    == 0
                )  # no TCP connection was even opened

    asyncio.run(main())


@pytest.mark.parametrize("adapter", ["blocking", "aio", "quic"])
def test_strict_mode_refuses_grease(server_pki: ServerPKI, adapter: str) -> None:
    """require_ech: a record without ech, or no record, is an error, not GREASE."""
    published = Published()

    async def main() -> None:
        key = ech_key(8)
        service = (
            http3_service(server_pki.server_config([key]))
            if adapter == "quic"
            else run_service(server_pki.server_config([key]))
        )
        async with (
            service as tls,
            doh_server(server_pki, published, tls.port) as url,
        ):
            with DoHResolver(url, cafile=str(server_pki.ca_file)) as resolver:
                for name, reason in (
                    (HIDDEN_NAME, ECHReason.RECORD_WITHOUT_ECH),
                    ("nothing." + HIDDEN_NAME, ECHReason.NO_HTTPS_RECORD),
                ):
                    with pytest.raises(ECHUnavailableError) as refused:
                        async with asyncio.timeout(IO_TIMEOUT):
                            await dial_explained(
                                adapter,
                                tls.port,
                                server_pki.client_config(),
                                resolver,
                                name=name,
                                require_ech=True,
                            )
                    assert refused.value.reason is reason
                    assert "ECH is required" in refused.value.detail
                # With the record's configs, strict mode connects.
                published.configs = config_list(key)
                resolver.cache.clear()
                async with asyncio.timeout(IO_TIMEOUT):
                    handshake, _, outcome = await dial_explained(
                        adapter,
                        tls.port,
                        server_pki.client_config(),
                        resolver,
                        require_ech=True,
                    )
                assert str(handshake.ech_status) == "accepted"
                assert outcome is not None
                assert str(outcome.reason) == "accepted"

    asyncio.run(main())


def test_strict_mode_without_configs_or_resolver_sends_nothing(
    server_pki: ServerPKI,
) -> None:
    with pytest.raises(ECHUnavailableError) as refused:
        connect(
            "127.0.0.1", 9, server_pki.client_config(), HIDDEN_NAME, require_ech=True
        )
    assert refused.value.reason is ECHReason.NOT_REQUESTED
    # Given configs none of which is usable: an error in strict mode only.
    configs = unknown_kem(config_list(ech_key(2)))
    with pytest.raises(ECHUnavailableError) as refused:
        connect(
            "127.0.0.1",
            9,
            server_pki.client_config(),
            HIDDEN_NAME,
            ech_configs=configs,
            require_ech=True,
        )
    assert refused.value.reason is ECHReason.NO_SUPPORTED_CONFIG


def test_rejections_and_failures_are_explained() -> None:
    rejection = ECHRejectedError(config_list(ech_key(1), ech_key(2)), "public.example")
    assert str(rejection) == (
        "ECH rejected by public.example: the server authenticated as public.example"
        " and sent 2 retry configs (2 usable)"
    )
    rejection.retried = True
    assert str(rejection).endswith("; rejected again on the one retry")
    assert "sent no retry configs" in str(ECHRejectedError(None, "public.example"))
    outcome = explain_error(rejection)
    assert outcome is not None
    assert (str(outcome.status), str(outcome.reason)) == ("rejected", "rejected")
    assert outcome.fields() == {"ech_reason": "rejected", "ech_detail": str(rejection)}
    doh = explain_error(DNSLookupError("timed out", url="u", name="n", rdtype="HTTPS"))
    assert doh is not None
    assert doh.reason is ECHReason.DOH_FAILED
    assert explain_error(OSError("refused")) is None
