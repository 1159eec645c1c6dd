"""Split mode through the service hook: accepted hellos for backend names relayed."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import pytest

from ech.aio import open_connection
from ech.errors import PeerAlert
from ech.keys import ECHKey
from ech.server.config import RequireECH, ServerConfig
from ech.tls.enums import AlertDescription
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    fetch,
    run_service,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def front_config(pki: ServerPKI, backend_port: int, *keys: ECHKey) -> ServerConfig:
    return ServerConfig(
        certificates=(pki.public,),
        alpn_protocols=("http/1.1",),
        ech_keys=keys,
        backends={HIDDEN_NAME: ("127.0.0.1", backend_port)},
    )


def test_forwarded_to_backend(server_pki: ServerPKI) -> None:
    key = ech_key(9)
    backend_config = ServerConfig(
        certificates=(server_pki.hidden,),
        alpn_protocols=("http/1.1",),
        ech_backend=True,
    )
    client = server_pki.client_config()

    async def main() -> None:
        async with run_service(backend_config) as backend:
            front = front_config(server_pki, backend.port, key)
            async with run_service(
                dataclasses.replace(front, require_ech=RequireECH())
            ) as running:
                _, page = await fetch(
                    running.port, client, HIDDEN_NAME, ech_configs=config_list(key)
                )
                # The backend's status page: it terminated TLS, as a backend.
                assert page["server_name"] == HIDDEN_NAME
                assert page["ech_status"] == "accepted"
                _, page = await fetch(running.port, client, PUBLIC_NAME)
                assert page["server_name"] == PUBLIC_NAME  # served by the front
                async with asyncio.timeout(IO_TIMEOUT):
                    while running.service.open_connections:
                        await asyncio.sleep(0.01)
                metrics = running.metrics
                forwarded = metrics.value(
                    "ech_connection_outcomes_total", outcome="forwarded"
                )
                assert forwarded == 1

    asyncio.run(main())


def test_unreachable_backend(server_pki: ServerPKI) -> None:
    key = ech_key(9)

    async def main() -> None:
        front = front_config(server_pki, closed_port(), key)
        async with run_service(front) as running:
            with pytest.raises(PeerAlert) as failed:
                async with asyncio.timeout(IO_TIMEOUT):
                    await open_connection(
                        "127.0.0.1",
                        running.port,
                        server_pki.client_config(),
                        HIDDEN_NAME,
                        ech_configs=config_list(key),
                    )
            assert failed.value.description == AlertDescription.INTERNAL_ERROR
            async with asyncio.timeout(IO_TIMEOUT):
                while running.service.open_connections:
                    await asyncio.sleep(0.01)
            outcome = running.metrics.value(
                "ech_connection_outcomes_total", outcome="backend_unreachable"
            )
            assert outcome == 1

    asyncio.run(main())
