"""One connection of the server probe, over TCP or QUIC, and what came back.

The probe's client is our :class:`~ech.client.handshake.ClientHandshake`
run through its public seam (``handshake_class``) as
:class:`RecordingHandshake`, which keeps every message the server sent
before handling it. So a check sees the server's HelloRetryRequest,
ServerHello and EncryptedExtensions even when our client then objects to
them, and can tell which requirement the server broke.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.client.handshake import ClientHandshake
from ech.config import ECHConfigList
from ech.errors import Alert, ConnectionClosedError, DecodeError
from ech.events import ECHRejected, ECHStatus, HandshakeComplete
from ech.extension import parse_retry_configs
from ech.quic.connection import ECHQuicConnection
from ech.tls.enums import AlertDescription, ExtensionType, HandshakeType
from ech.tls.events import ConnectionClosed
from ech.tls.handshake import Epoch
from ech.tls.messages import EncryptedExtensions, ServerHello
from ech.tls.quic import CRYPTO_ERROR

E = ExtensionType


@dataclass(frozen=True)
class Target:
    """Where and how the server probe connects.

    Attributes:
        host, port: the server.
        transport: ``tcp`` or ``quic``.
        timeout: seconds of silence after which an attempt gives up.
    """

    host: str
    port: int
    transport: str = "tcp"
    timeout: float = 5.0

    @property
    def quic(self) -> bool:
        """Whether attempts run over QUIC."""
        return self.transport == "quic"


@dataclass
class Attempt:
    """What one connection showed.

    Attributes:
        hello_retry: the server's HelloRetryRequest, if any.
        server_hello: its ServerHello, if any.
        status_at_server_hello: what our client concluded about ECH from the
            ServerHello (its confirmation, RFC 9849 §6.1.4).
        encrypted_extensions: the server's EncryptedExtensions; receiving
            it means the server's handshake keys matched ours.
        completed: the handshake completed (our HandshakeComplete).
        rejected: ECH rejected and authenticated (our ECHRejected).
        peer_alert: the fatal alert the server sent.
        our_alert, our_reason: the alert our client sent, and why.
        closed: the server closed the connection without an alert.
        silent: nothing more came within the timeout.
        transport_error: the connection could not be made.
    """

    hello_retry: ServerHello | None = None
    server_hello: ServerHello | None = None
    status_at_server_hello: ECHStatus | None = None
    encrypted_extensions: EncryptedExtensions | None = None
    completed: HandshakeComplete | None = None
    rejected: ECHRejected | None = None
    peer_alert: AlertDescription | None = None
    our_alert: AlertDescription | None = None
    our_reason: str = ""
    closed: str | None = None
    silent: bool = False
    transport_error: str | None = None
    messages: list[tuple[int, bytes]] = field(default_factory=list)

    # what a check asks -------------------------------------------------------------

    @property
    def confirmed(self) -> bool:
        """The ServerHello confirmed ECH acceptance (RFC 9849 §6.1.4)."""
        return self.status_at_server_hello is ECHStatus.ACCEPTED

    @property
    def continued(self) -> bool:
        """The server went on with its flight: we decrypted its EE."""
        return self.encrypted_extensions is not None

    def ee_ech(self) -> bytes | None:
        """The encrypted_client_hello body in EncryptedExtensions, if any."""
        ee = self.encrypted_extensions
        return ee.extension(E.ENCRYPTED_CLIENT_HELLO) if ee is not None else None

    def retry_configs(self) -> ECHConfigList | None:
        """The retry_configs the server sent, parsed, or None (RFC 9849 §5).

        Taken from EncryptedExtensions even when our client did not get as
        far as authenticating them: the probe tests the server, and a
        retry with them shows whether they work.
        """
        data = self.ee_ech()
        if data is None:
            return None
        try:
            return parse_retry_configs(data)
        except DecodeError:
            return None

    @property
    def ech_in_ee_after_accept(self) -> bool:
        """The server sent retry_configs although it accepted (RFC 9849 §5)."""
        return self.confirmed and self.ee_ech() is not None

    @property
    def handshake_ok(self) -> bool:
        """The handshake completed, or ended in an authenticated rejection.

        Also true when our client stopped only because of something another
        check reports: retry_configs in EncryptedExtensions after
        acceptance, malformed retry_configs, or a certificate not valid for
        the name asked for.
        """
        if self.completed is not None or self.rejected is not None:
            return True
        return self.continued and self.our_alert in (
            AlertDescription.UNSUPPORTED_EXTENSION,
            AlertDescription.DECODE_ERROR,
            AlertDescription.BAD_CERTIFICATE,
        )

    def describe(self) -> str:
        """What came back, in a few words."""
        if self.transport_error is not None:
            return f"no connection ({self.transport_error})"
        parts: list[str] = []
        if self.hello_retry is not None:
            parts.append(_describe_hrr(self.hello_retry))
        if self.server_hello is not None:
            parts.append(
                "ServerHello confirming ECH"
                if self.confirmed
                else "ServerHello without ECH confirmation"
            )
        if self.encrypted_extensions is not None:
            data = self.ee_ech()
            if data is None:
                parts.append("EncryptedExtensions without encrypted_client_hello")
            else:
                configs = self.retry_configs()
                parts.append(
                    "EncryptedExtensions with malformed retry_configs"
                    if configs is None
                    else f"EncryptedExtensions with retry_configs "
                    f"({len(configs.configs)} config(s))"
                )
        if self.completed is not None:
            parts.append(
                f"handshake completed (ECH {self.completed.ech_status}, "
                f"name {self.completed.server_name})"
            )
        elif self.rejected is not None:
            parts.append(f"ECH rejected, authenticated as {self.rejected.public_name}")
        if self.peer_alert is not None:
            parts.append(f"alert {self.peer_alert} from the server")
        if self.our_alert is not None:
            parts.append(f"our client aborted with {self.our_alert}: {self.our_reason}")
        if self.closed is not None:
            parts.append(f"the server closed the connection ({self.closed})")
        if self.silent:
            parts.append("then silence")
        return "; ".join(parts) if parts else "nothing"

    # what the recording handshake calls -------------------------------------------

    def record(self, msg_type: int, body: bytes) -> None:
        """Keep a message the server sent, parsed where a check needs it."""
        self.messages.append((msg_type, body))
        with contextlib.suppress(Alert):
            if msg_type == HandshakeType.SERVER_HELLO:
                hello = ServerHello.parse(body)
                if hello.is_hello_retry_request:
                    self.hello_retry = hello
                else:
                    self.server_hello = hello
            elif msg_type == HandshakeType.ENCRYPTED_EXTENSIONS:
                self.encrypted_extensions = EncryptedExtensions.parse(body)


def _describe_hrr(hrr: ServerHello) -> str:
    data = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
    if data is None:
        return "HelloRetryRequest without encrypted_client_hello"
    return f"HelloRetryRequest with a {len(data)}-byte encrypted_client_hello"


class RecordingHandshake(ClientHandshake):
    """Our client handshake, keeping what the server sent (``handshake_class``)."""

    attempt: Attempt | None = None

    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        """Record the message, then handle it as our client does."""
        attempt = self.attempt
        if attempt is not None:
            attempt.record(msg_type, body)
        try:
            super().handle_message(epoch, msg_type, body)
        finally:
            if (
                attempt is not None
                and attempt.server_hello is not None
                and attempt.status_at_server_hello is None
            ):
                attempt.status_at_server_hello = self.ech_status


class _Connection(ClientConnection):
    handshake_class = RecordingHandshake


class _QuicConnection(ECHQuicConnection):
    client_handshake_class = RecordingHandshake


def run(
    target: Target,
    config: ClientConfig,
    server_name: str,
    ech_configs: ECHConfigList | None,
) -> Attempt:
    """One connection with ``config``; what came back."""
    if target.quic:
        return _run_quic(target, config, server_name, ech_configs)
    return _run_tcp(target, config, server_name, ech_configs)


# TCP ---------------------------------------------------------------------------------


def _run_tcp(
    target: Target,
    config: ClientConfig,
    server_name: str,
    ech_configs: ECHConfigList | None,
) -> Attempt:
    attempt = Attempt()
    conn = _Connection(config, server_name, ech_configs=ech_configs)
    handshake = conn.handshake
    if isinstance(handshake, RecordingHandshake):
        handshake.attempt = attempt
    try:
        sock = socket.create_connection((target.host, target.port), target.timeout)
    except OSError as error:
        attempt.transport_error = str(error)
        return attempt
    with sock:
        conn.start()
        _send(sock, conn.data_to_send())
        deadline = time.monotonic() + target.timeout
        while not _finished(attempt):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                attempt.silent = True
                break
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                attempt.silent = True
                break
            except OSError as error:
                attempt.closed = f"reset: {error.strerror or error}"
                break
            try:
                events = conn.receive_data(data)
            except Alert as alert:
                attempt.our_alert = alert.description
                attempt.our_reason = str(alert)
                _send(sock, conn.data_to_send())
                break
            except ConnectionClosedError:
                break
            _send(sock, conn.data_to_send())
            for event in events:
                if isinstance(event, HandshakeComplete):
                    attempt.completed = event
                elif isinstance(event, ECHRejected):
                    attempt.rejected = event
                elif isinstance(event, ConnectionClosed):
                    if event.alert is None:
                        attempt.closed = "end of stream"
                    elif event.alert != AlertDescription.CLOSE_NOTIFY:
                        attempt.peer_alert = AlertDescription(event.alert)
                    else:
                        attempt.closed = "close_notify"
        if attempt.completed is not None:
            conn.close()
            _send(sock, conn.data_to_send())
    return attempt


def _finished(attempt: Attempt) -> bool:
    return (
        attempt.completed is not None
        or attempt.rejected is not None
        or attempt.peer_alert is not None
        or attempt.closed is not None
    )


def _send(sock: socket.socket, data: bytes) -> None:
    if data:
        with contextlib.suppress(OSError):
            sock.sendall(data)


# QUIC (RFC 9001): aioquic's connection with our recording handshake ---------------


def _run_quic(
    target: Target,
    config: ClientConfig,
    server_name: str,
    ech_configs: ECHConfigList | None,
) -> Attempt:
    attempt = Attempt()
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
    except OSError as error:
        attempt.transport_error = str(error)
        return attempt
    family, _, _, _, address = infos[0]
    conn = _QuicConnection(
        configuration=QuicConfiguration(
            is_client=True, alpn_protocols=list(config.alpn_protocols)
        ),
        tls=config,
        server_name=server_name,
        ech_configs=ech_configs,
    )
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        conn.connect(address, now=time.monotonic())
        handshake = conn.handshake
        if isinstance(handshake, RecordingHandshake):
            handshake.attempt = attempt
        deadline = time.monotonic() + target.timeout
        terminated: ConnectionTerminated | None = None
        done = False
        while not done and terminated is None:
            for data, _ in conn.datagrams_to_send(now=time.monotonic()):
                _send_datagram(sock, data)
            now = time.monotonic()
            if now >= deadline:
                attempt.silent = True
                break
            timer = conn.get_timer()
            wake = deadline if timer is None else min(deadline, timer)
            sock.settimeout(max(wake - now, 0.001))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if timer is not None and time.monotonic() >= timer:
                    conn.handle_timer(now=time.monotonic())
            except OSError as error:
                attempt.closed = f"unreachable: {error.strerror or error}"
                break
            else:
                conn.receive_datagram(data, address, now=time.monotonic())
            while (event := conn.next_event()) is not None:
                if isinstance(event, HandshakeCompleted):
                    done = True
                elif isinstance(event, ConnectionTerminated):
                    terminated = event
        context = conn.tls_context
        for ours in context.events:
            if isinstance(ours, HandshakeComplete):
                attempt.completed = ours
            elif isinstance(ours, ECHRejected):
                attempt.rejected = ours
        failure = context.failure
        if isinstance(failure, Alert):
            attempt.our_alert = failure.description
            attempt.our_reason = str(failure)
        elif terminated is not None and attempt.rejected is None:
            _peer_close(attempt, terminated)
        conn.close()
        for data, _ in conn.datagrams_to_send(now=time.monotonic()):
            _send_datagram(sock, data)
    return attempt


def _peer_close(attempt: Attempt, event: ConnectionTerminated) -> None:
    """The server closed the QUIC connection: a TLS alert or another error."""
    code = event.error_code
    if CRYPTO_ERROR <= code < CRYPTO_ERROR + 256:
        attempt.peer_alert = AlertDescription(code - CRYPTO_ERROR)
    else:
        attempt.closed = f"QUIC error 0x{code:x} {event.reason_phrase}".rstrip()


def _send_datagram(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.send(data)


__all__ = ["Attempt", "RecordingHandshake", "Target", "run"]
