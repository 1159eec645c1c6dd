"""What the HTTP layer needs from a connection: bytes in, bytes out.

:class:`ByteStream` is satisfied by :class:`ech.aio.TLSStream` (HTTPS) and
:class:`ech.aio.PlainStream` (plain TCP, the metrics endpoint), so one
server code path serves both; :class:`BlockingByteStream` by
:class:`ech.blocking.TLSSocket`, for the blocking client.
"""

from __future__ import annotations

from typing import Protocol

from ech.events import HandshakeComplete

__all__ = ["BlockingByteStream", "ByteStream"]


class ByteStream(Protocol):
    """An asyncio byte stream, TLS or not."""

    @property
    def handshake(self) -> HandshakeComplete | None:
        """The TLS handshake (its ALPN picks the HTTP version), or None."""

    async def recv(self, max_bytes: int = ...) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer closed."""

    async def send(self, data: bytes) -> None:
        """Send ``data``, waiting while the transport's buffer is full."""

    async def close(self) -> None:
        """Close the stream (sending close_notify on TLS)."""


class BlockingByteStream(Protocol):
    """A blocking byte stream, as :class:`ech.blocking.TLSSocket` is."""

    def recv(self, max_bytes: int = ...) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer closed."""

    def sendall(self, data: bytes) -> None:
        """Send all of ``data``."""
