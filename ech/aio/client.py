"""Opening a TLS client connection over asyncio (the policy is ech.dial's)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ech.aio.stream import TLSStream
from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.config import ECHConfigList
from ech.dial import connect_with_retry_async, plan_async
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver

__all__ = ["open_connection", "start_tls"]


async def open_connection(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str | None = None,
    *,
    session: SessionTicket | None = None,
    ech_configs: ECHConfigList | None = None,
    ech_retry: bool = True,
    resolver: DoHResolver | None = None,
    require_ech: bool = False,
) -> TLSStream:
    """Connect and complete a TLS 1.3 handshake as a client.

    ECH discovery, GREASE, strict mode (``require_ech``) and the one retry
    work as in :func:`ech.blocking.connect` (see :mod:`ech.dial`); with a
    DoH ``resolver`` the lookup runs in a worker thread before anything is
    sent. :func:`open_streams` gives the same connection as an asyncio
    ``(StreamReader, StreamWriter)`` pair.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
        ECHUnavailableError: ECH was promised or required and cannot be
            offered; nothing was sent.
        DNSLookupError: the resolver failed.
    """
    name = server_name or host
    plan = await plan_async(
        config,
        name,
        port,
        ech_configs=ech_configs,
        resolver=resolver,
        ech_retry=ech_retry,
        require_ech=require_ech,
    )

    async def once(config: ClientConfig, configs: ECHConfigList | None) -> TLSStream:
        return await _open_once(host, port, config, name, session, configs)

    return await connect_with_retry_async(plan, once)


async def _open_once(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str,
    session: SessionTicket | None,
    ech_configs: ECHConfigList | None,
) -> TLSStream:
    reader, writer = await asyncio.open_connection(host, port)
    return await start_tls(
        reader, writer, config, server_name, session=session, ech_configs=ech_configs
    )


async def start_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    config: ClientConfig,
    server_name: str,
    *,
    session: SessionTicket | None = None,
    ech_configs: ECHConfigList | None = None,
) -> TLSStream:
    """One client handshake over connected streams, no retry (ech.dial's job).

    The writer is closed if the handshake fails, after the queued alert.

    Raises:
        ECHRejectedError: the server rejected ECH (this connection is over).
        Alert, PeerAlert, ConnectionClosedError: the handshake failed.
    """
    connection = ClientConnection(
        config, server_name, session=session, ech_configs=ech_configs
    )
    stream = TLSStream(reader, writer, connection)
    try:
        connection.start()
        await stream.do_handshake()
    except BaseException:
        writer.write(connection.data_to_send())
        writer.close()
        raise
    return stream
