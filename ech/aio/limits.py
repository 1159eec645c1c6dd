"""What one connection may cost the asyncio server.

Limits (defaults here; ``ech serve`` flags in brackets):

* handshake timeout [``--handshake-timeout``, 10 s]: the whole handshake,
  from accept to the client's Finished, so a client dribbling bytes
  (slowloris) is cut off; no alert is sent.
* idle timeout [``--idle-timeout``, 60 s]: after the handshake, any read or
  write that waits longer fails with :class:`ConnectionTimeoutError` (a
  :class:`~ech.errors.ConnectionClosedError`), and the connection is closed.
* maximum connections [``--max-connections``, 1024]: a connection accepted
  while that many are open is closed at once, without a byte read or sent
  (not queued: queueing would let a flood hold memory). The kernel's listen
  backlog is the only queue.
* maximum ClientHello [``--max-client-hello``, 16384 bytes]: passed to the
  sans-IO connection as ``ServerConfig.max_client_hello``, whose handshake
  reassembler refuses a longer message with ``decode_error`` as soon as its
  4-byte header is in a complete record (records are at most 16 KiB).
* bounded buffers: each read takes at most ``buffer_size`` bytes, and the
  asyncio reader stops reading from the socket once it holds twice that,
  so a connection's memory is bounded whatever the client sends.
* shutdown timeout [``--shutdown-timeout``, 10 s]: how long a graceful
  shutdown waits for open connections before closing them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ech.errors import ConnectionClosedError

__all__ = ["ConnectionTimeoutError", "Limits"]


@dataclass(frozen=True)
class Limits:
    """What one connection may cost (see the module docstring).

    Raises:
        ValueError: a limit is not positive.
    """

    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 1024
    max_client_hello: int = 16384
    buffer_size: int = 16384
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "handshake_timeout",
            "idle_timeout",
            "max_connections",
            "max_client_hello",
            "buffer_size",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")


class ConnectionTimeoutError(ConnectionClosedError):
    """No progress for the idle timeout; the connection is being closed."""
