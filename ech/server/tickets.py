"""Stateless session tickets (RFC 8446 §4.6.1, §8).

A ticket is the resumption state sealed with AES-256-GCM under the server's
ticket key, so the server keeps nothing per client. Only the holder of the
key can open or forge one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ech.errors import DecodeError
from ech.tls.wire import Reader, Writer

_AAD = b"ech session ticket v1"


@dataclass(frozen=True, slots=True)
class TicketState:
    """What a ticket carries back to us."""

    cipher_suite: int
    psk: bytes = field(repr=False)
    issued_at_ms: int
    ticket_age_add: int
    lifetime: int
    server_name: str
    alpn_protocol: str


def seal_ticket(key: bytes, nonce: bytes, state: TicketState) -> bytes:
    """Encrypt ``state`` into an opaque ticket; ``nonce`` is 12 random bytes."""
    w = Writer()
    w.u16(state.cipher_suite)
    w.opaque(1, state.psk)
    w.u32(state.issued_at_ms >> 32)
    w.u32(state.issued_at_ms & 0xFFFFFFFF)
    w.u32(state.ticket_age_add)
    w.u32(state.lifetime)
    w.opaque(1, state.server_name.encode())
    w.opaque(1, state.alpn_protocol.encode())
    return nonce + AESGCM(key).encrypt(nonce, w.getvalue(), _AAD)


def open_ticket(key: bytes, ticket: bytes) -> TicketState | None:
    """Decrypt a ticket; None if it is not one of ours (or is damaged)."""
    r = Reader(ticket)
    try:
        nonce = r.raw(12)
        plaintext = AESGCM(key).decrypt(nonce, r.rest(), _AAD)
    except (DecodeError, InvalidTag):
        return None
    r = Reader(plaintext)
    suite = r.u16()
    psk = r.opaque(1)
    issued_at = (r.u32() << 32) | r.u32()
    age_add = r.u32()
    lifetime = r.u32()
    server_name = r.opaque(1).decode()
    alpn = r.opaque(1).decode()
    r.expect_end()
    return TicketState(suite, psk, issued_at, age_add, lifetime, server_name, alpn)
