"""How a :class:`ech.aio.TLSStream` times its waits: ``deadline`` and ``io_timeout``.

The server's handshake timeout is the stream's ``deadline`` (one bound on
all waits together, ``TimeoutError``); its idle timeout is ``io_timeout``
(a bound on each wait, :class:`~ech.aio.limits.ConnectionTimeoutError`).
Both hold over the server's :class:`~ech.aio.tcp.TCPConnection`, which
times reads with its own timer, and over asyncio's streams, timed by
``asyncio.timeout_at``. The client here connects and sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest

from ech.aio import TLSStream
from ech.aio.limits import ConnectionTimeoutError
from ech.aio.tcp import TCPConnection
from ech.errors import ConnectionClosedError
from ech.server.connection import ServerConnection
from tests.server.conftest import IO_TIMEOUT, ServerPKI

T = TypeVar("T")

SHORT = 0.05
LONG = 3600.0


@asynccontextmanager
async def silent_client(
    server_pki: ServerPKI, *, tcp: bool
) -> AsyncIterator[TLSStream]:
    """A server stream whose client connected and says nothing.

    ``tcp``: over a :class:`TCPConnection` (as ``ech serve``), else over
    asyncio's StreamReader and StreamWriter.
    """
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[TLSStream] = loop.create_future()
    connection = ServerConnection(server_pki.server_config())

    def on_connect(conn: TCPConnection) -> None:
        accepted.set_result(TLSStream(conn, conn, connection))

    async def on_streams(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.set_result(TLSStream(reader, writer, connection))

    if tcp:
        server = await loop.create_server(
            lambda: TCPConnection(1024, on_connect), "127.0.0.1", 0
        )
    else:
        server = await asyncio.start_server(on_streams, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield await bounded(accepted)
    finally:
        writer.close()
        server.close()


async def bounded(awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, failing the test if it takes ``IO_TIMEOUT``.

    Not ``asyncio.timeout``: its ``TimeoutError`` would pass for the
    deadline's.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=IO_TIMEOUT)
    if not done:
        task.cancel()
        pytest.fail(f"still waiting after {IO_TIMEOUT} s")
    return task.result()


@pytest.mark.parametrize("tcp", [True, False], ids=["TCPConnection", "asyncio"])
@pytest.mark.parametrize(
    ("io_timeout", "deadline_in", "idle"),
    [(LONG, SHORT, False), (SHORT, LONG, True)],
    ids=["deadline-first", "idle-first"],
)
def test_the_sooner_bound_ends_the_wait_and_names_itself(
    server_pki: ServerPKI, tcp: bool, io_timeout: float, deadline_in: float, idle: bool
) -> None:
    """The deadline raises TimeoutError; io_timeout, the idle ConnectionTimeoutError."""

    async def main() -> None:
        async with silent_client(server_pki, tcp=tcp) as stream:
            stream.io_timeout = io_timeout
            stream.deadline = asyncio.get_running_loop().time() + deadline_in
            with pytest.raises((TimeoutError, ConnectionTimeoutError)) as raised:
                await bounded(stream.do_handshake())
            if idle:
                assert isinstance(raised.value, ConnectionTimeoutError)
                assert str(raised.value) == "idle for 0.05 s, closing"
            else:
                assert type(raised.value) is TimeoutError
            assert stream.timed_out is idle

    asyncio.run(main())


@pytest.mark.parametrize("tcp", [True, False], ids=["TCPConnection", "asyncio"])
def test_without_either_a_wait_ends_only_with_the_peer(
    server_pki: ServerPKI, tcp: bool
) -> None:
    async def main() -> None:
        async with silent_client(server_pki, tcp=tcp) as stream:
            waiting = asyncio.create_task(stream.do_handshake())
            await asyncio.sleep(2 * SHORT)
            assert not waiting.done()
            stream.writer.transport.abort()  # the wait ends with the connection
            with pytest.raises(ConnectionClosedError, match="during the handshake"):
                await waiting

    asyncio.run(main())
