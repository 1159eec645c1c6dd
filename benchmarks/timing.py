"""What the in-memory handshake benchmarks share: per-side timers and the pump.

Each side's calls run inside its :class:`Side`, so client and server CPU
are counted apart even though both run in one process.
"""

from __future__ import annotations

import cProfile
import time
from collections.abc import Callable
from types import TracebackType

import ech

Clock = Callable[[], int]


class Side:
    """Accumulates the time (and optionally a profile) of one side's calls."""

    __slots__ = ("_start", "clock", "ns", "profiler")

    def __init__(
        self,
        clock: Clock = time.process_time_ns,
        profiler: cProfile.Profile | None = None,
    ) -> None:
        self.clock = clock
        self.profiler = profiler
        self.ns = 0
        self._start = 0

    def __enter__(self) -> None:
        if self.profiler is not None:
            self.profiler.enable()
        self._start = self.clock()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ns += self.clock() - self._start
        if self.profiler is not None:
            self.profiler.disable()


def pump(
    client: ech.ClientConnection,
    server: ech.ServerConnection,
    to_server: bytes,
    cs: Side,
    ss: Side,
) -> None:
    """Move bytes between the two until both report HandshakeComplete.

    ``to_server`` is the client's first flight; each side's calls are timed
    by its own :class:`Side`.
    """
    client_done = server_done = False
    to_client = b""
    while not (client_done and server_done):
        if not to_server and not to_client:
            raise RuntimeError("handshake stalled")
        if to_server:
            with ss:
                events = server.receive_data(to_server)
                to_client = server.data_to_send()
            to_server = b""
            server_done |= any(isinstance(e, ech.HandshakeComplete) for e in events)
        if to_client:
            with cs:
                events = client.receive_data(to_client)
                to_server = client.data_to_send()
            to_client = b""
            client_done |= any(isinstance(e, ech.HandshakeComplete) for e in events)
