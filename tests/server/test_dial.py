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
from ech.config import ECHConfigList
from ech.dns.doh_server import Zone
from ech.dns.resolver import DNSLookupError, DoHResolver
from ech.events import HandshakeComplete
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


async def dial(
    adapter: str, port: int, config: ClientConfig, resolver: DoHResolver
) -> tuple[HandshakeComplete, bool]:
    """Connect to ``HIDDEN_NAME`` with discovery; the handshake and ``retried``."""
    if adapter == "quic":
        h3 = dataclasses.replace(config, alpn_protocols=("h3",))
        async with await open_http3(
            "127.0.0.1", port, h3, HIDDEN_NAME, resolver=resolver
        ) as connection:
            return connection.negotiated, connection.retried
    if adapter == "aio":
        stream = await open_connection(
            "127.0.0.1", port, config, HIDDEN_NAME, resolver=resolver
        )
        await stream.close()
        return stream.negotiated, stream.retried

    def blocking() -> tuple[HandshakeComplete, bool]:
        with connect("127.0.0.1", port, config, HIDDEN_NAME, resolver=resolver) as tls:
            return tls.negotiated, tls.retried

    return await asyncio.to_thread(blocking)


@asynccontextmanager
async def http3_service(config: ServerConfig) -> AsyncIterator[HTTP3Server]:
    """An HTTP/3 server (status page) on 127.0.0.1, port 0."""
    server = HTTP3Server(config, status_page)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.shutdown(0)


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
