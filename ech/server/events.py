"""Events only a server connection emits."""

from __future__ import annotations

from dataclasses import dataclass

from ech.server.ech import ECHAccepted
from ech.tls.events import Event


@dataclass(frozen=True, slots=True)
class ForwardToBackend(Event):
    """Split mode: ECH was accepted for a name a backend serves (RFC 9849 §3.1).

    The client-facing server's part is now to relay: ``inner_hello`` (the
    reconstructed ClientHelloInner, a handshake message with its header)
    goes to ``backend``, followed by ``pending`` client bytes; then records
    pass both ways unchanged, except a second ClientHelloOuter after a
    backend's HRR, which ``accepted`` decrypts (§7.1.1).
    """

    backend: tuple[str, int]
    server_name: str
    outer_server_name: str | None
    inner_hello: bytes
    accepted: ECHAccepted
    pending: bytes
