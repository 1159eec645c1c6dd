"""What client and server connections share: records, alerts, post-handshake.

:class:`Connection` is sans-IO: bytes go in through :meth:`receive_data`,
events come out, and bytes to send are taken with :meth:`data_to_send`.
Subclasses implement the handshake in ``_handle_handshake``. On any error
the peer caused, the matching alert is queued *before* the
:class:`~ech.tls.errors.Alert` is raised, and the connection is dead.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from typing import TypeVar

from ech.tls.enums import (
    AlertDescription,
    AlertLevel,
    ContentType,
    HandshakeType,
    KeyUpdateRequest,
)
from ech.tls.errors import (
    Alert,
    ConnectionClosedError,
    DecodeError,
    InternalError,
    UnexpectedMessage,
)
from ech.tls.events import ConnectionClosed, DataReceived, Event, KeyUpdateReceived
from ech.tls.key_schedule import MasterSecret, exporter, next_traffic_secret
from ech.tls.messages import KeyUpdate, Message
from ech.tls.records import HandshakeReassembler, PaddingPolicy, RecordLayer
from ech.tls.suites import SuiteParams
from ech.tls.wire import Reader, handshake_header

T = TypeVar("T")


def required(value: T | None, what: str) -> T:
    """``value``, which the state machine guarantees is set by now.

    None here is our bug, never the peer's doing, so it is a RuntimeError
    (which ``receive_data`` turns into an internal_error alert).
    """
    if value is None:
        raise RuntimeError(f"internal error: {what} is not set")
    return value


#: Largest handshake message we buffer. Certificate chains are the biggest.
MAX_HANDSHAKE_MESSAGE = 1 << 18


class Phase(enum.Enum):
    """Where a connection is, independent of role."""

    HANDSHAKE = "handshake"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


class Connection:
    """The role-independent half of a TLS 1.3 connection."""

    def __init__(
        self,
        padding: PaddingPolicy | None = None,
        max_handshake_message: int = MAX_HANDSHAKE_MESSAGE,
    ) -> None:
        self._records = RecordLayer(padding)
        self._reassembler = HandshakeReassembler(max_handshake_message)
        self._phase = Phase.HANDSHAKE
        self._events: list[Event] = []
        self._suite: SuiteParams | None = None
        self._read_secret = b""
        self._write_secret = b""
        self._sent_close = False
        self._received_close = False
        #: Whether a plaintext change_cipher_spec may still arrive (RFC 8446 §5).
        self._ccs_allowed = False
        # Set when the handshake's Finished messages are done; the exporter and
        # resumption secrets are derived from them only when first needed.
        self._master: MasterSecret | None = None
        self._server_finished_hash = b""
        self._client_finished_hash = b""

    # public API ------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake finished (application data may flow)."""
        return self._phase is Phase.CONNECTED

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the transport; ``b""`` means the transport ended.

        Returns:
            The events those bytes caused, in order.

        Raises:
            Alert: the peer violated the protocol; the alert to send is
                already queued in :meth:`data_to_send`.
            ConnectionClosedError: the connection failed earlier.
        """
        if self._phase is Phase.FAILED:
            raise ConnectionClosedError("connection failed earlier")
        if self._received_close:
            return []
        events, self._events = self._events, []
        try:
            if not data:
                self._received_close = True
                if self._phase is not Phase.CLOSED:
                    self._phase = Phase.CLOSED
                events.append(ConnectionClosed(None))
                return events
            self._records.receive(data)
            while not self._received_close:
                record = self._records.next_record()
                if record is None:
                    break
                self._handle_record(record.content_type, record.payload)
                events.extend(self._events)
                self._events = []
        except Alert as alert:
            self._fail(alert.description)
            raise
        except Exception:
            # Anything else is our bug; still tell the peer before failing.
            self._fail(AlertDescription.INTERNAL_ERROR)
            raise
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport, and forget them."""
        return self._records.data_to_send()

    def send(self, data: bytes) -> None:
        """Queue application data.

        Raises:
            RuntimeError: the handshake has not finished, or we closed.
            ConnectionClosedError: the connection failed.
        """
        if self._phase is Phase.FAILED:
            raise ConnectionClosedError("connection failed")
        if self._sent_close:
            raise RuntimeError("send() after close()")
        if self._phase is not Phase.CONNECTED:
            raise RuntimeError("send() before the handshake completed")
        if data:
            self._records.write(ContentType.APPLICATION_DATA, bytes(data))

    def close(self) -> None:
        """Queue close_notify (RFC 8446 §6.1). Receiving may go on."""
        if self._sent_close or self._phase is Phase.FAILED:
            return
        self._sent_close = True
        self._send_alert(AlertDescription.CLOSE_NOTIFY, AlertLevel.WARNING)

    def update_keys(self, *, request_peer: bool = True) -> None:
        """Send KeyUpdate and switch to the next sending keys (RFC 8446 §4.6.3).

        With ``request_peer``, the peer is asked to update its keys too.
        """
        if self._phase is not Phase.CONNECTED or self._sent_close:
            raise RuntimeError("update_keys() needs an open, connected connection")
        request = (
            KeyUpdateRequest.UPDATE_REQUESTED
            if request_peer
            else KeyUpdateRequest.UPDATE_NOT_REQUESTED
        )
        self._send_key_update(request)

    @functools.cached_property
    def exporter_master_secret(self) -> bytes:
        """``exporter_master_secret`` (RFC 8446 §7.1), once the handshake is done."""
        master = required(self._master, "master secret")
        return master.exporter_master_secret(self._server_finished_hash)

    def export_keying_material(
        self, label: bytes, context: bytes, length: int
    ) -> bytes:
        """TLS-Exporter (RFC 8446 §7.5)."""
        suite = required(self._suite, "cipher suite")
        return exporter(suite.hash, self.exporter_master_secret, label, context, length)

    @functools.cached_property
    def _resumption_master_secret(self) -> bytes:
        """``resumption_master_secret``: needed only when tickets are issued or used."""
        if not self._client_finished_hash:
            raise RuntimeError("internal error: client Finished not processed")
        master = required(self._master, "master secret")
        return master.resumption_master_secret(self._client_finished_hash)

    # for subclasses ----------------------------------------------------------

    def _handle_handshake(self, msg_type: int, body: bytes, raw: bytes) -> None:
        raise NotImplementedError

    def _handle_post_handshake(self, msg_type: int, body: bytes) -> None:
        """Messages after the handshake; subclasses add NewSessionTicket."""
        if msg_type == HandshakeType.KEY_UPDATE:
            self._receive_key_update(KeyUpdate.parse(body))
        else:
            raise UnexpectedMessage(
                f"unexpected post-handshake {HandshakeType(msg_type)}"
            )

    def _send_handshake(self, message: Message) -> bytes:
        """Frame, queue and return one handshake message (for the transcript)."""
        body = message.encode()
        raw = handshake_header(message.msg_type, len(body)) + body
        self._records.write(ContentType.HANDSHAKE, raw)
        return raw

    def _set_read_secret(self, secret: bytes) -> None:
        """Install inbound keys; a message must not straddle the change (§5.1)."""
        self._reassembler.check_key_change()
        self._read_secret = secret
        self._records.set_read_key(required(self._suite, "cipher suite"), secret)

    def _set_write_secret(self, secret: bytes) -> None:
        self._write_secret = secret
        self._records.set_write_key(required(self._suite, "cipher suite"), secret)

    def _connected(self, event: Event) -> None:
        self._phase = Phase.CONNECTED
        self._ccs_allowed = False
        self._events.append(event)

    # internals ---------------------------------------------------------------

    def _handle_record(self, content_type: int, payload: bytes) -> None:
        if content_type == ContentType.HANDSHAKE:
            self._reassembler.feed(payload)
            while (message := self._reassembler.pop()) is not None:
                msg_type, body, raw = message
                if self._phase is Phase.HANDSHAKE:
                    self._handle_handshake(msg_type, body, raw)
                else:
                    self._handle_post_handshake(msg_type, body)
        elif self._reassembler.pending:
            # RFC 8446 §5.1: handshake messages must not be interleaved.
            raise UnexpectedMessage("record interleaved with a handshake message")
        elif content_type == ContentType.APPLICATION_DATA:
            if self._phase is not Phase.CONNECTED:
                raise UnexpectedMessage("application data before the handshake ended")
            if payload:
                self._events.append(DataReceived(payload))
        elif content_type == ContentType.ALERT:
            self._receive_alert(payload)
        elif content_type == ContentType.CHANGE_CIPHER_SPEC:
            # RFC 8446 §5: only the single byte 0x01, only during the handshake.
            if payload != b"\x01":
                raise UnexpectedMessage("malformed change_cipher_spec")
            if not self._ccs_allowed or self._phase is not Phase.HANDSHAKE:
                raise UnexpectedMessage("change_cipher_spec outside the handshake")
        else:
            raise UnexpectedMessage(f"unexpected record type {content_type}")

    def _receive_alert(self, payload: bytes) -> None:
        r = Reader(payload)
        r.u8()  # level: in TLS 1.3 the description alone decides (§6)
        description = AlertDescription(r.u8())
        r.expect_end()
        if description == AlertDescription.USER_CANCELED:
            return
        self._received_close = True
        if description == AlertDescription.CLOSE_NOTIFY:
            if self._phase is Phase.HANDSHAKE:
                self._phase = Phase.FAILED
            elif self._sent_close:
                self._phase = Phase.CLOSED
        else:
            self._phase = Phase.FAILED
        self._events.append(ConnectionClosed(description))

    def _receive_key_update(self, message: KeyUpdate) -> None:
        suite = required(self._suite, "cipher suite")
        self._set_read_secret(next_traffic_secret(suite.hash, self._read_secret))
        requested = message.request_update == KeyUpdateRequest.UPDATE_REQUESTED
        self._events.append(KeyUpdateReceived(requested))
        # §4.6.3: answer every request, even when our own requests cross it.
        if requested and not self._sent_close:
            self._send_key_update(KeyUpdateRequest.UPDATE_NOT_REQUESTED)

    def _send_key_update(self, request: int) -> None:
        suite = required(self._suite, "cipher suite")
        self._send_handshake(KeyUpdate(request))
        self._set_write_secret(next_traffic_secret(suite.hash, self._write_secret))

    def _send_alert(self, description: int, level: int = AlertLevel.FATAL) -> None:
        self._records.write(ContentType.ALERT, bytes((level, description)))

    def _fail(self, description: AlertDescription) -> None:
        if self._phase is not Phase.FAILED:
            self._phase = Phase.FAILED
            # Best effort: failing to queue the alert must not mask the error.
            with contextlib.suppress(Exception):
                self._send_alert(description)


__all__ = ["Connection", "DecodeError", "InternalError", "Phase"]
