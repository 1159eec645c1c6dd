"""What the socket and asyncio adapters share: turning events into a stream.

Both adapters pump bytes between a transport and a sans-IO connection; this
base keeps what the events mean to a byte-stream user: received data, the
handshake result, session tickets, and how the connection ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ech.config import ECHConfigList
from ech.errors import ECHRejectedError, PeerAlert
from ech.events import (
    ConnectionClosed,
    DataReceived,
    ECHRejected,
    Event,
    HandshakeComplete,
    SessionTicketReceived,
)
from ech.server.events import ForwardToBackend
from ech.tls.connection import Connection
from ech.tls.enums import AlertDescription
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dial import ECHOutcome


class EventStream:
    """Application-facing state of one adapted connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.handshake: HandshakeComplete | None = None
        #: Whether this connection is the one retry after an ECH rejection,
        #: and the retry_configs it used.
        self.retried = False
        self.retry_configs: ECHConfigList | None = None
        #: A client's ECH outcome and the reason for it (set by ech.dial).
        self.ech_outcome: ECHOutcome | None = None
        self.session_tickets: list[SessionTicket] = []
        #: Split mode: set when the server hands the connection to a backend.
        self.forward: ForwardToBackend | None = None
        self.events: list[Event] = []
        self._incoming = bytearray()
        self._eof = False

    @property
    def negotiated(self) -> HandshakeComplete:
        """The finished handshake's parameters.

        Raises:
            RuntimeError: the handshake has not completed.
        """
        if self.handshake is None:
            raise RuntimeError("the handshake has not completed")
        return self.handshake

    def _absorb(self, events: list[Event]) -> None:
        """Record events; raise for the ones that end the connection badly.

        Raises:
            ECHRejectedError: the server rejected ECH.
            PeerAlert: the peer aborted with a fatal alert.
        """
        for event in events:
            self.events.append(event)
            if isinstance(event, DataReceived):
                self._incoming += event.data
            elif isinstance(event, HandshakeComplete):
                self.handshake = event
            elif isinstance(event, SessionTicketReceived):
                self.session_tickets.append(event.ticket)
            elif isinstance(event, ForwardToBackend):
                self.forward = event
            elif isinstance(event, ECHRejected):
                self._eof = True
                raise ECHRejectedError(event.retry_configs, event.public_name)
            elif isinstance(event, ConnectionClosed):
                self._eof = True
                if event.alert not in (None, AlertDescription.CLOSE_NOTIFY):
                    raise PeerAlert(event.alert)

    def _take(self, max_bytes: int) -> bytes:
        out = bytes(self._incoming[:max_bytes])
        del self._incoming[:max_bytes]
        return out
