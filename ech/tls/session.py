"""Session tickets as the client keeps them (RFC 8446 §4.6.1)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """What a client needs to resume: the ticket, its PSK and its limits."""

    ticket: bytes
    psk: bytes = field(repr=False)
    cipher_suite: int
    server_name: str | None
    alpn_protocol: str | None
    ticket_age_add: int
    lifetime: int
    received_at: float
    max_early_data_size: int = 0

    def is_valid(self, now: float) -> bool:
        """Whether the ticket may still be offered (lifetime at most 7 days)."""
        return 0 <= now - self.received_at < min(self.lifetime, 604800)

    def obfuscated_age(self, now: float) -> int:
        """RFC 8446 §4.2.11.1: milliseconds since receipt plus age_add, mod 2^32."""
        age_ms = int((now - self.received_at) * 1000)
        return (age_ms + self.ticket_age_add) & 0xFFFFFFFF
