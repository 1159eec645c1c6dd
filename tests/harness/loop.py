"""An asyncio event loop in a thread, for blocking tests that need an asyncio server.

:class:`BackgroundLoop` is a context manager: entering starts the loop in a
daemon thread; :meth:`BackgroundLoop.run` runs a coroutine there and waits
for it; :meth:`BackgroundLoop.start_server` starts :func:`ech.aio.start_server`
on 127.0.0.1, port 0. Leaving closes the servers, cancels every task still
running (connection handlers included), stops the loop and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from ech.aio import TLSStream, start_server
from ech.server.config import ServerConfig

T = TypeVar("T")

TIMEOUT = 10.0
"""Seconds a coroutine run from the test thread may take."""


class BackgroundLoop:
    """An asyncio loop running in its own thread until the ``with`` block ends."""

    def __init__(self, name: str = "background-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=name, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.run(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(TIMEOUT)
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        """Run ``coroutine`` on the loop; its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start_server(
        self,
        handler: Callable[[TLSStream], Awaitable[None]],
        config: ServerConfig | Callable[[], ServerConfig],
    ) -> int:
        """Serve TLS with ``handler`` on 127.0.0.1; the port it listens on."""

        async def start() -> int:
            server = await start_server(handler, "127.0.0.1", 0, config)
            self._servers.append(server)
            port: int = server.sockets[0].getsockname()[1]
            return port

        return self.run(start())

    async def _shutdown(self) -> None:
        """Stop listening and end the connection handlers still running."""
        for server in self._servers:
            server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
