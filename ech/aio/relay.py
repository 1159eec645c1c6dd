"""Split mode over asyncio: carry out a :class:`ForwardToBackend`.

:class:`ech.server.split.SplitRelay` decides what goes where; this driver
moves the bytes between the client's and the backend's streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ech.aio.tcp import StreamReader, StreamWriter
from ech.server.events import ForwardToBackend
from ech.server.split import SplitRelay
from ech.tls.enums import AlertDescription
from ech.tls.errors import Alert
from ech.tls.records import plaintext_alert

log = logging.getLogger("ech.split")

Connector = Callable[
    [str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
]


async def relay(
    forward: ForwardToBackend,
    client_reader: StreamReader,
    client_writer: StreamWriter,
    *,
    connect: Connector = asyncio.open_connection,
    chunk: int = 16384,
    idle_timeout: float | None = None,
) -> SplitRelay:
    """Carry out a :class:`ForwardToBackend` over asyncio streams.

    Returns when either side closes, or neither side sent anything for
    ``idle_timeout`` seconds; both connections are closed then.

    Raises:
        OSError: the backend cannot be reached (the client is sent an
            internal_error alert first).
    """
    state = SplitRelay(forward)
    host, port = forward.backend
    try:
        backend_reader, backend_writer = await connect(host, port)
    except OSError:
        client_writer.write(plaintext_alert(AlertDescription.INTERNAL_ERROR))
        await client_writer.drain()
        client_writer.close()
        raise

    async def flush() -> None:
        to_backend = state.data_to_backend()
        if to_backend:
            backend_writer.write(to_backend)
            await backend_writer.drain()
        to_client = state.data_to_client()
        if to_client:
            client_writer.write(to_client)
            await client_writer.drain()

    last_activity = [asyncio.get_running_loop().time()]

    async def pump(reader: StreamReader, feed: Callable[[bytes], None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if idle_timeout is None:
                data = await reader.read(chunk)
            else:
                try:
                    data = await asyncio.wait_for(reader.read(chunk), idle_timeout)
                except TimeoutError:
                    # Idle only if the other direction was quiet too.
                    if loop.time() - last_activity[0] >= idle_timeout:
                        return
                    continue
            if not data:
                return
            last_activity[0] = loop.time()
            feed(data)
            await flush()

    try:
        await flush()
        tasks = [
            asyncio.create_task(pump(client_reader, state.client_data)),
            asyncio.create_task(pump(backend_reader, state.backend_data)),
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            error = task.exception()
            if isinstance(error, Alert):
                await flush()
                log.info("split relay to %s:%d failed: %s", host, port, error)
            elif error is not None and not isinstance(error, OSError):
                raise error
    finally:
        for writer in (backend_writer, client_writer):
            writer.close()
    return state
