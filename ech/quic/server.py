"""Serve QUIC with ECH, on asyncio (aioquic's server glue).

:func:`serve` is :func:`aioquic.asyncio.serve` with our handshake in every
connection. ``config`` may be a callable returning the current
:class:`~ech.server.config.ServerConfig`, read once per connection: that is
how ECH keys rotate without a restart, as over TCP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.asyncio.server import QuicServer
from aioquic.asyncio.server import serve as aioquic_serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from ech.quic.connection import ECHQuicConnection
from ech.server.config import ServerConfig


def quic_configuration(config: ServerConfig) -> QuicConfiguration:
    """Aioquic's server settings matching ``config`` (ALPN, a certificate).

    aioquic wants a certificate and key for a server; our handshake picks
    its own from ``config``.
    """
    if not config.alpn_protocols:
        raise ValueError("QUIC needs ALPN protocols (RFC 9001 §8.1)")
    first = config.certificates[0]
    return QuicConfiguration(
        is_client=False,
        alpn_protocols=list(config.alpn_protocols),
        certificate=first.chain[0],
        private_key=first.private_key,
    )


async def serve(
    host: str,
    port: int,
    config: ServerConfig | Callable[[], ServerConfig],
    *,
    configuration: QuicConfiguration | None = None,
    create_protocol: Callable[..., QuicConnectionProtocol] = QuicConnectionProtocol,
    stream_handler: QuicStreamHandler | None = None,
    retry: bool = False,
) -> QuicServer:
    """Listen for QUIC on ``host``:``port`` (UDP) with our TLS and ECH.

    Returns aioquic's server (``close()`` stops it).
    """
    provider = config if callable(config) else (lambda: config)
    current = provider()
    settings = configuration or quic_configuration(current)

    def adopt(
        connection: QuicConnection,
        **kwargs: Any,  # noqa: ANN401 - aioquic's
    ) -> QuicConnectionProtocol:
        tls = provider()
        if list(tls.alpn_protocols) != list(settings.alpn_protocols or ()):
            tls = dataclasses.replace(
                tls, alpn_protocols=tuple(settings.alpn_protocols or ())
            )
        ECHQuicConnection.adopt(connection, tls)
        return create_protocol(connection, **kwargs)

    return await aioquic_serve(
        host,
        port,
        configuration=settings,
        create_protocol=adopt,
        stream_handler=stream_handler,  # type: ignore[arg-type]  # None is fine
        retry=retry,
    )


__all__ = ["quic_configuration", "serve"]
