"""A TLS 1.3 connection over a byte stream: records around a handshake.

:class:`Connection` is sans-IO: bytes go in through :meth:`receive_data`,
events come out, and bytes to send are taken with :meth:`data_to_send`. It
owns the record layer (RFC 8446 §5) and applies what its
:class:`~ech.tls.handshake.Handshake` asks for: messages become handshake
records, secrets become record protection. What only a byte stream has
stays here: change_cipher_spec, KeyUpdate (§4.6.3), close_notify and
alerts. On any error the peer caused, the matching alert is queued *before*
the :class:`~ech.tls.errors.Alert` is raised, and the connection is dead.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable

from ech.tls.enums import (
    AlertDescription,
    AlertLevel,
    ContentType,
    HandshakeType,
    KeyUpdateRequest,
)
from ech.tls.errors import Alert, ConnectionClosedError, UnexpectedMessage
from ech.tls.events import (
    ConnectionClosed,
    DataReceived,
    EarlyDataReceived,
    Event,
    KeyUpdateReceived,
)
from ech.tls.handshake import (
    Abort,
    Direction,
    Epoch,
    Handshake,
    InstallSecret,
    Output,
    SendChangeCipherSpec,
    SendMessage,
    SkipEarlyData,
)
from ech.tls.key_schedule import next_traffic_secret
from ech.tls.messages import KeyUpdate
from ech.tls.records import HandshakeReassembler, PaddingPolicy, RecordLayer
from ech.tls.suites import SuiteParams
from ech.tls.wire import Reader

#: Largest handshake message we buffer. Certificate chains are the biggest.
MAX_HANDSHAKE_MESSAGE = 1 << 18

#: change_cipher_spec records dropped in a row before the peer is refused
#: (see :meth:`Connection._receive_change_cipher_spec`).
MAX_CCS_IN_A_ROW = 32

#: Rewrites one outgoing handshake message after the transcript took it:
#: ``(epoch, message with header)`` to the bytes to send instead (``b""``
#: sends nothing). A fault-injection seam for tests, probes and fuzzers.
MessageHook = Callable[[Epoch, bytes], bytes]


class Phase(enum.Enum):
    """The transport's life, whatever its role; the handshake keeps its own."""

    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"


class _Traffic:
    """One direction's application traffic secret, for KeyUpdate (§7.2)."""

    __slots__ = ("secret", "suite")

    def __init__(self, suite: SuiteParams, secret: bytes) -> None:
        self.suite = suite
        self.secret = secret

    def advance(self) -> bytes:
        self.secret = next_traffic_secret(self.suite.hash, self.secret)
        return self.secret


class Connection:
    """A TLS 1.3 connection over TCP, whatever its role.

    Args:
        handshake: the client or server handshake this connection carries.
        padding: TLSInnerPlaintext padding policy (RFC 8446 §5.4).
        max_handshake_message: longest handshake message buffered.

    Attributes:
        outgoing_message_hook: see :data:`MessageHook`; None sends every
            message as the handshake built it.
    """

    def __init__(
        self,
        handshake: Handshake,
        padding: PaddingPolicy | None = None,
        max_handshake_message: int = MAX_HANDSHAKE_MESSAGE,
    ) -> None:
        self.handshake = handshake
        self.outgoing_message_hook: MessageHook | None = None
        self._records = RecordLayer(padding)
        self._reassembler = HandshakeReassembler(max_handshake_message)
        self._phase = Phase.OPEN
        self._read_epoch = Epoch.INITIAL
        self._write_epoch = Epoch.INITIAL
        #: 0-RTT application data received so far (RFC 8446 §4.6.1).
        self._early_data_received = 0
        self._events: list[Event] = []
        self._read: _Traffic | None = None
        self._write: _Traffic | None = None
        self._sent_close = False
        self._received_close = False
        #: A plaintext change_cipher_spec may arrive once the first
        #: ClientHello has crossed the wire, until the peer's Finished
        #: (RFC 8446 §5); see :meth:`_receive_change_cipher_spec`.
        self._ccs_allowed = False
        self._ccs_in_a_row = 0

    # public API ------------------------------------------------------------

    @property
    def _failed(self) -> bool:
        return self._phase is Phase.FAILED

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake finished (application data may flow)."""
        return self._phase is Phase.OPEN and self.handshake.complete

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
            while not (self._received_close or self._failed):
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
        if not self.handshake_complete:
            raise RuntimeError("send() before the handshake completed")
        if data:
            self._records.write(ContentType.APPLICATION_DATA, bytes(data))

    def close(self) -> None:
        """Queue close_notify (RFC 8446 §6.1). Receiving may go on.

        The sender "will not send any more messages on this connection": a
        handshake under way still reads what the peer sends, but nothing it
        would answer leaves. After the peer's close_notify, the connection
        is closed both ways.
        """
        if self._sent_close or self._phase is Phase.FAILED:
            return
        self._sent_close = True
        self._send_alert(AlertDescription.CLOSE_NOTIFY, AlertLevel.WARNING)
        if self._received_close and self._phase is Phase.OPEN:
            self._phase = Phase.CLOSED

    def abort(self, description: AlertDescription) -> None:
        """Send a fatal alert and end the connection (RFC 8446 §6.2)."""
        self._fail(description)

    def update_keys(self, *, request_peer: bool = True) -> None:
        """Send KeyUpdate and switch to the next sending keys (RFC 8446 §4.6.3).

        With ``request_peer``, the peer is asked to update its keys too.
        """
        if not self.handshake_complete or self._sent_close:
            raise RuntimeError("update_keys() needs an open, connected connection")
        request = (
            KeyUpdateRequest.UPDATE_REQUESTED
            if request_peer
            else KeyUpdateRequest.UPDATE_NOT_REQUESTED
        )
        self._send_key_update(request)

    def inject_record(self, content_type: ContentType, data: bytes) -> None:
        """Queue ``data`` as records of ``content_type`` under the current keys.

        For conformance tests, probes and fuzzers that must send what a
        correct connection never would (a protected change_cipher_spec, a
        second ClientHello, a malformed KeyUpdate); the handshake's state
        does not change. Handshake bytes are coalesced as usual.
        """
        self._records.write(content_type, data)

    @property
    def exporter_master_secret(self) -> bytes:
        """``exporter_master_secret`` (RFC 8446 §7.1), once the handshake is done."""
        return self.handshake.exporter_master_secret

    def export_keying_material(
        self, label: bytes, context: bytes, length: int
    ) -> bytes:
        """TLS-Exporter (RFC 8446 §7.5)."""
        return self.handshake.export_keying_material(label, context, length)

    # applying the handshake's outputs ------------------------------------------

    def _apply_outputs(self) -> None:
        for output in self.handshake.take_outputs():
            self._apply(output)

    def _apply(self, output: Output) -> None:
        if self._sent_close and isinstance(output, SendMessage | SendChangeCipherSpec):
            return  # nothing more after our close_notify (RFC 8446 §6.1)
        if isinstance(output, SendMessage):
            data = output.data
            if data[0] == HandshakeType.CLIENT_HELLO:
                self._ccs_allowed = True
            if output.epoch is Epoch.INITIAL and self._write_epoch is not Epoch.INITIAL:
                # The second ClientHello after 0-RTT records (RFC 8446 §4.1.4).
                self._records.clear_write_key()
                self._write_epoch = Epoch.INITIAL
            if self.outgoing_message_hook is not None:
                data = self.outgoing_message_hook(output.epoch, data)
            if data:
                self._records.write(ContentType.HANDSHAKE, data)
        elif isinstance(output, InstallSecret):
            self._install(output)
        elif isinstance(output, SendChangeCipherSpec):
            self._records.write_change_cipher_spec()
        elif isinstance(output, SkipEarlyData):
            self._records.skip_early_data(output.budget, trial=output.trial)
        elif isinstance(output, Abort):
            self._fail(output.description)
        else:
            self._events.append(self._deliver(output))

    def _install(self, output: InstallSecret) -> None:
        if output.direction is Direction.READ:
            # A message must not straddle a key change (§5.1).
            self._reassembler.check_key_change()
            self._records.set_read_key(output.suite, output.secret)
            self._read_epoch = output.epoch
            if output.epoch is Epoch.APPLICATION:
                self._read = _Traffic(output.suite, output.secret)
        else:
            self._records.set_write_key(
                output.suite, output.secret, self._write_padding(output.epoch)
            )
            self._write_epoch = output.epoch
            if output.epoch is Epoch.APPLICATION:
                self._write = _Traffic(output.suite, output.secret)

    def _write_padding(self, epoch: Epoch) -> PaddingPolicy | None:
        """The padding of records sent at ``epoch``; None: the connection's.

        A subclass pads a flight whose length would reveal something (the
        server's flight when ECH is accepted: RFC 9849 §6.1.3, §10.11).
        """
        return None

    def _deliver(self, event: Event) -> Event:
        """The event the application sees; a subclass may complete it."""
        return event

    # receiving -------------------------------------------------------------------

    def _handle_record(self, content_type: int, payload: bytes) -> None:
        if content_type == ContentType.CHANGE_CIPHER_SPEC:
            self._receive_change_cipher_spec(payload)
            return
        self._ccs_in_a_row = 0
        if content_type == ContentType.HANDSHAKE:
            self._reassembler.feed(payload)
            while (message := self._reassembler.pop()) is not None:
                msg_type, body, _ = message
                if self.handshake.complete and msg_type == HandshakeType.KEY_UPDATE:
                    self._receive_key_update(KeyUpdate.parse(body))
                else:
                    if msg_type == HandshakeType.CLIENT_HELLO:
                        self._ccs_allowed = True
                    self.handshake.handle_message(self._read_epoch, msg_type, body)
                    self._apply_outputs()
                if self._failed:
                    return
        elif self._reassembler.pending:
            # RFC 8446 §5.1: handshake messages must not be interleaved.
            raise UnexpectedMessage("record interleaved with a handshake message")
        elif content_type == ContentType.APPLICATION_DATA:
            if self._read_epoch is Epoch.EARLY_DATA:
                self._receive_early_data(payload)
                return
            if not self.handshake.complete:
                raise UnexpectedMessage("application data before the handshake ended")
            if payload:
                self._events.append(DataReceived(payload))
        elif content_type == ContentType.ALERT:
            self._receive_alert(payload)
        else:
            raise UnexpectedMessage(f"unexpected record type {content_type}")

    def _receive_early_data(self, payload: bytes) -> None:
        """0-RTT data under client_early_traffic_secret (RFC 8446 §2.3).

        Raises:
            UnexpectedMessage: more than max_early_data_size bytes: "A server
                receiving more than max_early_data_size bytes of 0-RTT data
                SHOULD terminate the connection with an unexpected_message
                alert" (§4.6.1).
        """
        self._early_data_received += len(payload)
        if self._early_data_received > self.handshake.early_data_limit:
            raise UnexpectedMessage(
                f"more than {self.handshake.early_data_limit} bytes of 0-RTT data"
            )
        if payload:
            self._events.append(EarlyDataReceived(payload))

    def _write_early_data(self, data: bytes) -> None:
        """Queue 0-RTT application data under the early traffic key.

        Raises:
            RuntimeError: the early traffic key is not (or no longer) in use,
                or we closed.
        """
        if self._sent_close:
            raise RuntimeError("early data after close()")
        if self._write_epoch is not Epoch.EARLY_DATA:
            raise RuntimeError("0-RTT data is sent only before the second flight")
        if data:
            self._records.write(ContentType.APPLICATION_DATA, bytes(data))

    def _receive_change_cipher_spec(self, payload: bytes) -> None:
        """RFC 8446 §5: drop the compatibility CCS, refuse any other.

        "An implementation may receive an unencrypted record of type
        change_cipher_spec consisting of the single byte value 0x01 at any
        time after the first ClientHello message has been sent or received
        and before the peer's Finished message has been received and MUST
        simply drop it without further processing. ... An implementation
        which receives any other change_cipher_spec value or which receives
        a protected change_cipher_spec record MUST abort the handshake with
        an unexpected_message alert. If an implementation detects a
        change_cipher_spec record received before the first ClientHello
        message or after the peer's Finished message, it MUST be treated as
        an unexpected record type."

        "At any time" puts no bound on their number, so several in a row are
        each dropped. A peer sending nothing else would cost us a record
        parse per 6 bytes forever, so at most :data:`MAX_CCS_IN_A_ROW` may
        come without another record between them (BoringSSL's bound for
        records without content); a compliant peer sends one (§D.4).
        (A protected change_cipher_spec is refused by the record layer.)

        Raises:
            UnexpectedMessage: any of the cases above.
        """
        if self._reassembler.pending:
            # RFC 8446 §5.1: handshake messages must not be interleaved.
            raise UnexpectedMessage("record interleaved with a handshake message")
        if payload != b"\x01":
            raise UnexpectedMessage("malformed change_cipher_spec")
        if not self._ccs_allowed or self.handshake.complete:
            raise UnexpectedMessage(
                "change_cipher_spec before the first ClientHello or after "
                "the peer's Finished"
            )
        self._ccs_in_a_row += 1
        if self._ccs_in_a_row > MAX_CCS_IN_A_ROW:
            raise UnexpectedMessage(
                f"more than {MAX_CCS_IN_A_ROW} change_cipher_spec records in a row"
            )

    def _receive_alert(self, payload: bytes) -> None:
        r = Reader(payload)
        r.u8()  # level: in TLS 1.3 the description alone decides (§6)
        description = AlertDescription(r.u8())
        r.expect_end()
        if description == AlertDescription.USER_CANCELED:
            return
        self._received_close = True
        if description == AlertDescription.CLOSE_NOTIFY:
            if not self.handshake.complete:
                self._phase = Phase.FAILED
            elif self._sent_close:
                self._phase = Phase.CLOSED
        else:
            self._phase = Phase.FAILED
        self._events.append(ConnectionClosed(description))

    # KeyUpdate (RFC 8446 §4.6.3) ----------------------------------------------------

    def _receive_key_update(self, message: KeyUpdate) -> None:
        read = self._read
        if read is None:
            raise RuntimeError("internal error: no application read secret")
        self._reassembler.check_key_change()
        self._records.set_read_key(read.suite, read.advance())
        requested = message.request_update == KeyUpdateRequest.UPDATE_REQUESTED
        self._events.append(KeyUpdateReceived(requested))
        # Answer every request, even when our own requests cross it.
        if requested and not self._sent_close:
            self._send_key_update(KeyUpdateRequest.UPDATE_NOT_REQUESTED)

    def _send_key_update(self, request: int) -> None:
        write = self._write
        if write is None:
            raise RuntimeError("internal error: no application write secret")
        self._records.write(ContentType.HANDSHAKE, KeyUpdate(request).framed())
        self._records.set_write_key(write.suite, write.advance())

    # failing ------------------------------------------------------------------------

    def _send_alert(self, description: int, level: int = AlertLevel.FATAL) -> None:
        self._records.write(ContentType.ALERT, bytes((level, description)))

    def _fail(self, description: AlertDescription) -> None:
        if self._phase is not Phase.FAILED:
            self._phase = Phase.FAILED
            # Best effort: failing to queue the alert must not mask the error.
            with contextlib.suppress(Exception):
                self._send_alert(description)


__all__ = [
    "MAX_CCS_IN_A_ROW",
    "MAX_HANDSHAKE_MESSAGE",
    "Connection",
    "MessageHook",
    "Phase",
]
