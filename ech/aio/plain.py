"""A plain TCP stream with the same face as :class:`ech.aio.TLSStream`.

The metrics endpoint is plain HTTP (Prometheus scrapes it on a private
address); wrapping its asyncio streams in this class lets
:func:`ech.http.serve_http` serve it with the same HTTP/1.1 code as HTTPS.
"""

from __future__ import annotations

import asyncio
import contextlib

from ech.events import HandshakeComplete

__all__ = ["PlainStream"]

_READ_SIZE = 65536


class PlainStream:
    """Bytes over an asyncio stream pair, no TLS."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def handshake(self) -> HandshakeComplete | None:
        """None: there is no TLS handshake (so no ALPN: HTTP/1.1)."""
        return None

    async def recv(self, max_bytes: int = _READ_SIZE) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer closed."""
        return await self.reader.read(max_bytes)

    async def send(self, data: bytes) -> None:
        """Send ``data``."""
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        """Close the transport."""
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
