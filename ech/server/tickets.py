"""Stateless session tickets (RFC 8446 §4.6.1, §8).

A ticket is the resumption state sealed with AES-256-GCM under the server's
ticket key, so the server keeps nothing per client. Only the holder of the
key can open or forge one.

The sealed state holds the server name, which with ECH is the hidden one,
and a NewSessionTicket's length must not tell it (RFC 9849 §10.11): the
state is zero-padded as if the name had its longest length (255 bytes),
then to a multiple of :data:`TICKET_BUCKET` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ech.errors import DecodeError
from ech.tls.wire import Reader, Writer

#: Bumped whenever the sealed layout changes: older tickets then fail to open.
_AAD = b"ech session ticket v2"

#: Sealed states are padded to a multiple of this many bytes.
TICKET_BUCKET = 256


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
    #: The leaf of the client's authenticated chain (DER), or empty.
    client_certificate: bytes = b""
    #: The max_early_data_size the ticket was issued with (0: no 0-RTT).
    max_early_data_size: int = 0


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
    w.opaque(3, state.client_certificate)
    w.u32(state.max_early_data_size)
    # opaque padding<0..2^16-1>, all zeros: as if the name were 255 bytes,
    # then to the next bucket.
    name_padding = 255 - len(state.server_name.encode())
    length = len(w.getvalue()) + 2 + name_padding
    w.opaque(2, bytes(name_padding + -length % TICKET_BUCKET))
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
    client_certificate = r.opaque(3)
    max_early_data_size = r.u32()
    r.opaque(2)  # padding
    r.expect_end()
    return TicketState(
        suite,
        psk,
        issued_at,
        age_add,
        lifetime,
        server_name,
        alpn,
        client_certificate,
        max_early_data_size,
    )
