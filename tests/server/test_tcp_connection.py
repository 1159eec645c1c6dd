""":class:`ech.aio.tcp.TCPConnection`: asyncio's stream semantics, leaner, on loopback.

Each test accepts one connection with ``loop.create_server`` and drives its
client side with plain asyncio streams.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ech.aio.tcp import TCPConnection

IO_TIMEOUT = 10.0
LIMIT = 1024


def _in(seconds: float) -> float:
    """The event-loop time ``seconds`` from now: a read's deadline."""
    return asyncio.get_running_loop().time() + seconds


@asynccontextmanager
async def pair(
    limit: int = LIMIT,
) -> AsyncIterator[tuple[TCPConnection, asyncio.StreamReader, asyncio.StreamWriter]]:
    """A server-side TCPConnection and the client's asyncio streams."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[TCPConnection] = loop.create_future()
    server = await loop.create_server(
        lambda: TCPConnection(limit, accepted.set_result), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(IO_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            tcp = await accepted
            yield tcp, reader, writer
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_reads_what_was_sent_in_pieces_of_at_most_n() -> None:
    payload = bytes(range(256)) * 400  # 100 KiB: many chunks, some split

    async def main() -> bytes:
        async with pair(limit=1 << 20) as (tcp, _, writer):
            writer.write(payload)
            writer.write_eof()
            received = bytearray()
            while chunk := await tcp.read(5000):
                assert len(chunk) <= 5000
                received += chunk
            assert tcp.at_eof()
            assert await tcp.read(5000) == b""  # and again at the end
            return bytes(received)

    assert asyncio.run(main()) == payload


def test_reading_pauses_past_twice_the_limit_and_resumes_at_the_limit() -> None:
    async def main() -> None:
        async with pair() as (tcp, _, writer):
            writer.write(bytes(4 * LIMIT))
            await writer.drain()
            while tcp.transport.is_reading():  # it stops once over 2 * LIMIT
                await asyncio.sleep(0.01)
            await tcp.read(LIMIT)  # still more than LIMIT buffered: paused
            assert not tcp.transport.is_reading()
            await tcp.read(2 * LIMIT)  # down to LIMIT at most: reading again
            assert tcp.transport.is_reading()

    asyncio.run(main())


def test_a_read_times_out_and_a_later_read_still_works() -> None:
    async def main() -> bytes:
        async with pair() as (tcp, _, writer):
            with pytest.raises(TimeoutError):
                await tcp.read(100, _in(0.05))
            writer.write(b"late")
            return await tcp.read(100, _in(IO_TIMEOUT))

    assert asyncio.run(main()) == b"late"


def test_a_shorter_timeout_is_not_held_back_by_an_earlier_longer_one() -> None:
    async def main() -> None:
        async with pair() as (tcp, _, writer):
            writer.write(b"x")
            assert await tcp.read(100, _in(3600)) == b"x"  # its timer stays
            with pytest.raises(TimeoutError):  # at 0.05 s, not in an hour
                await tcp.read(100, _in(0.05))

    asyncio.run(main())


def test_an_earlier_timer_does_not_cut_a_later_wait_short() -> None:
    async def main() -> bytes:
        async with pair() as (tcp, _, writer):
            writer.write(b"x")
            assert await tcp.read(100, _in(0.05)) == b"x"  # its timer stays
            waiting = asyncio.create_task(tcp.read(100, _in(IO_TIMEOUT)))
            await asyncio.sleep(0.2)  # the first timer fires meanwhile
            writer.write(b"y")
            return await waiting

    assert asyncio.run(main()) == b"y"


def test_two_readers_at_once_are_refused() -> None:
    async def main() -> None:
        async with pair() as (tcp, _, writer):
            first = asyncio.create_task(tcp.read(100))
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError):
                await tcp.read(100)
            writer.write(b"x")
            assert await first == b"x"

    asyncio.run(main())


def test_a_reset_connection_raises_from_read_and_drain() -> None:
    async def main() -> None:
        async with pair() as (tcp, _, writer):
            sock = writer.get_extra_info("socket")
            # SO_LINGER 0: close() sends RST instead of FIN.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
            with pytest.raises(ConnectionResetError):
                await tcp.read(100)
            with pytest.raises(ConnectionResetError):
                await tcp.drain()
            with pytest.raises(ConnectionResetError):
                await tcp.wait_closed()

    asyncio.run(main())


def test_drain_waits_while_the_peer_does_not_read() -> None:
    async def main() -> int:
        async with pair() as (tcp, reader, _):
            tcp.transport.set_write_buffer_limits(high=1)
            big = bytes(8 << 20)  # more than the kernel buffers take
            tcp.write(big)
            draining = asyncio.create_task(tcp.drain())
            await asyncio.sleep(0)
            assert not draining.done()  # paused: the peer has read nothing
            received = len(await reader.readexactly(len(big)))
            await draining
            tcp.close()
            await tcp.wait_closed()
            assert tcp.is_closing()
            return received

    assert asyncio.run(main()) == 8 << 20
