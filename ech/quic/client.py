"""Connect over QUIC with ECH, on asyncio (aioquic's event loop glue).

:func:`connect` is :func:`aioquic.asyncio.connect` with our handshake in the
connection; after a rejection it raises :class:`~ech.errors.ECHRejectedError`
with the server's authenticated retry_configs, and :func:`connect_with_retry`
makes the one retry RFC 9849 §6.1.6 allows on a new QUIC connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration

from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.errors import ECHRejectedError, PeerAlert
from ech.quic.connection import ECHQuicConnection
from ech.tls.enums import AlertDescription
from ech.tls.quic import CRYPTO_ERROR
from ech.tls.session import SessionTicket

P = TypeVar("P", bound=QuicConnectionProtocol)


def quic_configuration(config: ClientConfig) -> QuicConfiguration:
    """The aioquic client settings matching ``config`` (ALPN from it)."""
    return QuicConfiguration(is_client=True, alpn_protocols=list(config.alpn_protocols))


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str | None = None,
    *,
    ech_configs: ECHConfigList | None = None,
    session: SessionTicket | None = None,
    configuration: QuicConfiguration | None = None,
    create_protocol: Callable[[ECHQuicConnection], P] = QuicConnectionProtocol,  # type: ignore[assignment]
    timeout: float | None = 30.0,
) -> AsyncIterator[P]:
    """Open a QUIC connection and complete our handshake as a client.

    Yields the protocol once the handshake is complete; closes it on exit.

    Raises:
        ECHRejectedError: the server rejected ECH; the connection was closed
            with CRYPTO_ERROR ech_required (RFC 9849 §6.1.6).
        PeerAlert: the server closed with another CRYPTO_ERROR.
        ConnectionError: the handshake failed otherwise.
        TimeoutError: no handshake within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    connection = ECHQuicConnection(
        configuration=configuration or quic_configuration(config),
        tls=config,
        server_name=server_name or host,
        ech_configs=ech_configs,
        session=session,
    )
    local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)  # noqa: S104 - a client's own ephemeral port
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: create_protocol(connection), local_addr=local
    )
    try:
        protocol.connect(address)
        try:
            async with asyncio.timeout(timeout):
                await protocol.wait_connected()
        except ConnectionError:
            _raise_handshake_failure(connection)
            raise
        yield protocol
    finally:
        protocol.close()
        await protocol.wait_closed()
        transport.close()


def _raise_handshake_failure(connection: ECHQuicConnection) -> None:
    """Turn how the handshake ended into our exceptions, where we can."""
    rejected = connection.ech_rejected
    if rejected is not None:
        raise ECHRejectedError(rejected.retry_configs, rejected.public_name)
    event = connection._close_event  # aioquic's record of how it closed
    if event is not None and CRYPTO_ERROR <= event.error_code < CRYPTO_ERROR + 256:
        raise PeerAlert(AlertDescription(event.error_code - CRYPTO_ERROR))


__all__ = ["connect", "quic_configuration"]
