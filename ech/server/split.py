"""Split mode: the client-facing server relays to a backend (RFC 9849 §3.1, §7.1).

After :class:`~ech.server.connection.ServerConnection` accepts ECH for a
name a backend serves, it emits :class:`~ech.events.ForwardToBackend` and
steps aside. :class:`SplitRelay` (sans-IO) then sends ClientHelloInner to
the backend and relays records both ways without terminating TLS. The one
exception is the case other proxies give up on: after a backend's
HelloRetryRequest, the client's second ClientHelloOuter is decrypted with the
same HPKE context and ClientHelloInner2 goes to the same backend connection
(§7.1.1, ECH-80, ECH-83 to ECH-85). The backend must run in backend mode
(``ServerConfig(ech_backend=True)``) so that it signals acceptance (§7.2).

The channel to the backend is plain TCP here; §10.1 assumes it is
authenticated, which is the operator's to arrange (ECH-92).
"""

from __future__ import annotations

import enum
import logging

from ech.errors import Alert, UnexpectedMessage
from ech.server.ech import open_second_client_hello
from ech.server.events import ForwardToBackend
from ech.tls.enums import ContentType, HandshakeType
from ech.tls.messages import ClientHello, ServerHello
from ech.tls.records import HandshakeReassembler, RecordLayer, plaintext_alert
from ech.tls.wire import FrameBuffer, frame_handshake

log = logging.getLogger("ech.split")

#: ClientHellos are far smaller; this bounds what we buffer while parsing.
_MAX_HELLO = 1 << 16


class RelayState(enum.Enum):
    """Where the relay is."""

    WAIT_BACKEND_HELLO = "wait_backend_hello"
    WAIT_SECOND_HELLO = "wait_second_hello"
    RELAY = "relay"
    FAILED = "failed"


class SplitRelay:
    """Relays one split-mode connection. Performs no I/O.

    Feed client bytes to :meth:`client_data` and backend bytes to
    :meth:`backend_data`; take what to send with :meth:`data_to_client` and
    :meth:`data_to_backend`.
    """

    def __init__(self, forward: ForwardToBackend) -> None:
        self.forward = forward
        self.state = RelayState.WAIT_BACKEND_HELLO
        self.hello_retry = False
        self._to_client = bytearray()
        self._to_backend = bytearray()
        self._client_records = FrameBuffer(5, 2)
        self._backend_records = FrameBuffer(5, 2)
        self._backend_hello = HandshakeReassembler(_MAX_HELLO)
        self._client_hello = HandshakeReassembler(_MAX_HELLO)
        self._send_hello_to_backend(forward.inner_hello)
        if forward.pending:
            self.client_data(forward.pending)

    def _send_hello_to_backend(self, hello: bytes) -> None:
        records = RecordLayer()
        records.write(ContentType.HANDSHAKE, hello)
        self._to_backend += records.data_to_send()

    # client side --------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        """Bytes from the client.

        Raises:
            Alert: a second ClientHelloOuter that breaks §7.1.1; the alert
                for the client is queued and the relay has failed.
        """
        if self.state is not RelayState.WAIT_SECOND_HELLO:
            self._to_backend += data
            return
        try:
            self._client_records.feed(data)
            self._second_hello_records()
        except Alert as alert:
            self.state = RelayState.FAILED
            self._to_client += plaintext_alert(alert.description)
            raise

    def _second_hello_records(self) -> None:
        while self.state is RelayState.WAIT_SECOND_HELLO:
            peeked = self._client_records.peek()
            if peeked is None:
                return
            content_type, length = peeked
            frame = self._client_records.pop(length)
            if frame is None:
                return
            header, body = frame
            if content_type != ContentType.HANDSHAKE:
                # change_cipher_spec (RFC 8446 §D.4) or an alert: pass it on.
                self._to_backend += header + body
                continue
            self._client_hello.feed(body)
            message = self._client_hello.pop()
            if message is None:
                continue
            msg_type, hello_body, _raw = message
            if msg_type != HandshakeType.CLIENT_HELLO or self._client_hello.pending:
                raise UnexpectedMessage("expected the second ClientHello only")
            outer = ClientHello.parse(hello_body)
            inner = open_second_client_hello(outer, self.forward.accepted)
            self._send_hello_to_backend(frame_handshake(inner.msg_type, inner.encode()))
            self.state = RelayState.RELAY
            self._to_backend += self._client_records.take_all()

    # backend side -------------------------------------------------------------

    def backend_data(self, data: bytes) -> None:
        """Bytes from the backend: relayed as they are, first hello inspected."""
        self._to_client += data
        if self.state is not RelayState.WAIT_BACKEND_HELLO:
            return
        self._backend_records.feed(data)
        while self.state is RelayState.WAIT_BACKEND_HELLO:
            peeked = self._backend_records.peek()
            if peeked is None:
                return
            content_type, length = peeked
            frame = self._backend_records.pop(length)
            if frame is None:
                return
            if content_type != ContentType.HANDSHAKE:
                continue  # an alert or CCS: the client sees it as it is
            self._backend_hello.feed(frame[1])
            message = self._backend_hello.pop()
            if message is None:
                continue
            msg_type, body, _raw = message
            hrr = (
                msg_type == HandshakeType.SERVER_HELLO
                and ServerHello.parse(body).is_hello_retry_request
                and not self.hello_retry
            )
            if hrr:
                self.hello_retry = True
                self.state = RelayState.WAIT_SECOND_HELLO
            else:
                self.state = RelayState.RELAY

    def data_to_client(self) -> bytes:
        """Bytes for the client."""
        out = bytes(self._to_client)
        self._to_client.clear()
        return out

    def data_to_backend(self) -> bytes:
        """Bytes for the backend."""
        out = bytes(self._to_backend)
        self._to_backend.clear()
        return out
