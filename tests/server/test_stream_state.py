"""What a server's :class:`ech.aio.TLSStream` keeps while a connection lasts."""

from __future__ import annotations

import asyncio

from ech.aio import TLSStream, open_connection
from ech.events import DataReceived, HandshakeComplete
from tests.server.conftest import HIDDEN_NAME, IO_TIMEOUT, ServerPKI, run_service


def test_received_data_is_handed_over_not_kept_in_events(
    server_pki: ServerPKI,
) -> None:
    """``events`` has the handshake, not every byte the peer ever sent."""
    seen: list[tuple[bytes, list[type]]] = []

    async def app(stream: TLSStream) -> None:
        received = bytearray()
        while chunk := await stream.recv():
            received += chunk
        seen.append((bytes(received), [type(e) for e in stream.events]))

    async def main() -> None:
        async with run_service(server_pki.server_config(), app=app) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), HIDDEN_NAME
                )
                for part in (b"one", b"two", b"three"):
                    await stream.send(part)
                    await asyncio.sleep(0)  # each in its own record
                await stream.close()
                while not seen:
                    await asyncio.sleep(0.01)

    asyncio.run(main())
    ((received, kinds),) = seen
    assert received == b"onetwothree"
    assert HandshakeComplete in kinds
    assert DataReceived not in kinds
