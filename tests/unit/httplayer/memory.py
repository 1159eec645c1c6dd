"""An in-memory :class:`ech.http.ByteStream` for driving the server bindings."""

from __future__ import annotations

import asyncio

from ech.events import HandshakeComplete
from ech.tls.enums import CipherSuite


def handshake(alpn: str | None) -> HandshakeComplete:
    """A completed handshake that negotiated ``alpn``."""
    return HandshakeComplete(
        cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        group=None,
        alpn_protocol=alpn,
        server_name="example.test",
        resumed=False,
        hello_retry=False,
    )


class MemoryStream:
    """The server's side of a connection whose client is the test.

    ``feed`` queues bytes for the server, ``feed_eof`` closes the client's
    side; ``take`` returns what the server sent since the last call.
    """

    def __init__(self, alpn: str | None = None, *, tls: bool = True) -> None:
        self._handshake = handshake(alpn) if tls else None
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._sent = bytearray()
        self._sent_event = asyncio.Event()
        self.closed = False

    @property
    def handshake(self) -> HandshakeComplete | None:
        return self._handshake

    def feed(self, data: bytes) -> None:
        self._incoming.put_nowait(data)

    def feed_eof(self) -> None:
        self._incoming.put_nowait(b"")

    async def recv(self, max_bytes: int = 65536) -> bytes:
        return await self._incoming.get()

    async def send(self, data: bytes) -> None:
        self._sent += data
        self._sent_event.set()

    async def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = bytes(self._sent)
        self._sent.clear()
        self._sent_event.clear()
        return out

    async def wait_sent(self, timeout: float = 5.0) -> bytes:
        """What the server sent, once it sent something."""
        async with asyncio.timeout(timeout):
            await self._sent_event.wait()
        return self.take()
