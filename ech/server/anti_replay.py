"""0-RTT anti-replay for the server (RFC 8446 §8).

0-RTT data is not protected against replay by the handshake itself (§2.3,
§8): an attacker can resend a recorded ClientHello with its early data. Of
the two mechanisms §8 describes we use ClientHello recording (§8.2) with the
freshness check of §8.3, not single-use tickets (§8.1):

* Our tickets are stateless (:mod:`ech.server.tickets`). Single-use tickets
  would need the server to remember every ticket it issued until it expires
  (``ticket_lifetime``, two hours by default, up to seven days), whatever
  the connection rate: memory proportional to tickets issued over days.
* Recording needs to remember a ClientHello only while a replay of it could
  still pass the freshness check: a ClientHello is accepted only if the
  ticket age it claims agrees with the server's own clock within
  ``window`` seconds (§8.3), so a copy replayed more than ``2 * window``
  seconds later fails that check without any record. Memory is bounded by
  ``capacity`` entries: a 32-byte digest in a set and its expiry in a deque,
  185 bytes each as measured with tracemalloc, so the default 65536 entries
  take 12 MB at most, enough for 3276 0-RTT handshakes per second with the
  10-second window.

When the record is full, early data is declined (the handshake goes on in
1-RTT): failing closed is what §8.2 asks of a server that cannot check. The
unique value recorded is the SHA-256 of the PSK binder (§8.2: "either the
random value or the PSK binder"), of ClientHelloInner when ECH is accepted:
the binder covers the whole ClientHello, so a replay must repeat it exactly.

The record lives in one process. Servers that share a ticket key but not
this object (several processes, several machines) each accept a replayed
ClientHello once; §8 notes the same of any recording not shared, and the
application must only act on early data for which that is safe.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from typing import Final

#: Seconds a ticket age may differ from the server's view (§8.3).
DEFAULT_WINDOW: Final = 10.0
#: ClientHellos remembered at most.
DEFAULT_CAPACITY: Final = 1 << 16


class AntiReplay:
    """ClientHello recording with a freshness window (RFC 8446 §8.2, §8.3).

    Shared by every connection of a server (``ServerConfig.anti_replay``);
    thread-safe.

    Args:
        window: seconds a client's claimed ticket age may differ from the
            server's own measure.
        capacity: ClientHellos remembered at once; when full, 0-RTT is
            declined until entries age out.
    """

    def __init__(
        self, window: float = DEFAULT_WINDOW, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        if window <= 0 or capacity < 1:
            raise ValueError("window must be > 0 and capacity >= 1")
        self.window = window
        self.capacity = capacity
        self._seen: set[bytes] = set()
        self._expiry: collections.deque[tuple[float, bytes]] = collections.deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def admit(
        self, binder: bytes, client_age_ms: int, server_age_ms: int, now: float
    ) -> bool:
        """Whether 0-RTT may be accepted for this ClientHello; records it if so.

        Args:
            binder: the selected PSK's binder (unique to the ClientHello).
            client_age_ms: the ticket age the client claims:
                obfuscated_ticket_age minus ticket_age_add, mod 2^32 (§4.2.11.1).
            server_age_ms: the ticket's age by the server's clock.
            now: the server's clock, in seconds.

        Returns:
            False for a stale or replayed ClientHello, or a full record.
        """
        if abs(server_age_ms - client_age_ms) > self.window * 1000:
            return False  # §8.3: outside the freshness window
        digest = hashlib.sha256(binder).digest()
        with self._lock:
            self._expire(now)
            if digest in self._seen or len(self._seen) >= self.capacity:
                return False
            self._seen.add(digest)
            # A copy passes the freshness check for at most 2 * window.
            self._expiry.append((now + 2 * self.window, digest))
            return True

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            self._seen.discard(expiry.popleft()[1])


__all__ = ["DEFAULT_CAPACITY", "DEFAULT_WINDOW", "AntiReplay"]
