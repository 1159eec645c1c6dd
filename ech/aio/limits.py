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
* maximum connections per client address [``--max-connections-per-address``,
  half of the maximum]: a connection from an address that already holds
  that many is closed at once, like one over the maximum, so one client
  cannot take every slot. IPv4 addresses count one by one; IPv6 addresses
  by their /64 prefix, the smallest block one subscriber is given (RFC
  6177), which a single host can otherwise fill with fresh addresses.
  Many users behind one NAT share an address: raise the limit for them
  rather than turn it off. Over QUIC the address is the one the client's
  Initial came from, not yet validated (RFC 9000 §8.1): the handshake
  timeout frees slots taken by spoofed addresses.
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

import ipaddress
from collections import Counter
from dataclasses import dataclass

from ech.errors import ConnectionClosedError

__all__ = ["AddressCounts", "ConnectionTimeoutError", "Limits", "address_key"]


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
    max_connections_per_address: int | None = None

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
        per_address = self.max_connections_per_address
        if per_address is not None and not per_address > 0:
            raise ValueError("max_connections_per_address must be positive")

    @property
    def per_address(self) -> int:
        """Connections one client address may hold at once.

        ``max_connections_per_address``, or by default half of
        ``max_connections`` (at least 1): whatever one address does, the
        other half stays for everyone else.
        """
        if self.max_connections_per_address is not None:
            return self.max_connections_per_address
        return max(1, self.max_connections // 2)


def address_key(host: str) -> str:
    """What the per-address limit counts ``host`` as (see the module docstring).

    An IPv4 address is itself (an IPv4-mapped IPv6 address too); an IPv6
    address is its /64 prefix; anything else (a Unix socket's name) is
    kept as it is.
    """
    if ":" not in host and "%" not in host:
        # IPv4 (the kernel's peername is canonical) or no address at all:
        # itself either way, without the cost of parsing it.
        return host
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AddressCounts:
    """Open connections per client address (its :func:`address_key`).

    The TCP and the QUIC server both hold one, so ``per_address`` means the
    same on both: :meth:`take` before serving, :meth:`give_back` after.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    def take(self, client: str) -> bool:
        """Count one more connection from ``client``; False at the limit."""
        if self._held[client] >= self.limit:
            return False
        self._held[client] += 1
        return True

    def give_back(self, client: str) -> None:
        """Count a connection from ``client`` out."""
        self._held[client] -= 1
        if self._held[client] <= 0:
            del self._held[client]


class ConnectionTimeoutError(ConnectionClosedError):
    """No progress for the idle timeout; the connection is being closed."""
