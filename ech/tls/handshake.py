"""The seam between a TLS 1.3 handshake and what carries its messages.

A handshake (:class:`Handshake`, subclassed by the client and the server)
takes whole handshake messages, each tagged with the :class:`Epoch` it
arrived in, and answers with *outputs*: send this message at this epoch,
install this secret for reading or writing, send a change_cipher_spec, skip
the client's declined 0-RTT records, abort with this alert, and the events
for the application. It never sees a record
or a packet. Two carriers apply the outputs:

* over TCP, :class:`ech.tls.connection.Connection` frames the messages into
  records (RFC 8446 §5) and turns secrets into record protection;
* over QUIC (RFC 9001 §4), the messages go into CRYPTO frames of the
  matching packet number space and the secrets to QUIC packet protection.

This is the shape of aioquic's ``tls.Context.handle_message`` and of Go's
``QUICConn`` events.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

from ech.tls.enums import AlertDescription
from ech.tls.events import Event
from ech.tls.key_schedule import MasterSecret, exporter
from ech.tls.messages import Message
from ech.tls.suites import SuiteParams


class Epoch(enum.IntEnum):
    """Which keys protect a handshake message (RFC 9001 §4.1.4 encryption levels).

    The values are aioquic's ``tls.Epoch`` numbers.
    """

    #: In the clear: ClientHello, ServerHello, HelloRetryRequest.
    INITIAL = 0
    #: client_early_traffic_secret (0-RTT).
    EARLY_DATA = 1
    #: [sender]_handshake_traffic_secret.
    HANDSHAKE = 2
    #: [sender]_application_traffic_secret_N: after Finished (1-RTT).
    APPLICATION = 3


class Direction(enum.Enum):
    """Which way a secret protects traffic."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send ``data``, one whole handshake message with its header, at ``epoch``."""

    epoch: Epoch
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallSecret:
    """Protect ``direction``'s traffic at ``epoch`` with ``secret`` from now on."""

    direction: Direction
    epoch: Epoch
    suite: SuiteParams
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SendChangeCipherSpec:
    """The middlebox-compatibility record (RFC 8446 §D.4); TCP only."""


@dataclass(frozen=True, slots=True)
class SkipEarlyData:
    """The client's 0-RTT records will not be read: pass over them (TCP only).

    RFC 8446 §4.2.10: a server that declines early data "skips past early
    data by attempting to deprotect received records using the handshake
    traffic key, discarding records which fail deprotection (up to the
    configured max_early_data_size)" (``trial``), or, after a
    HelloRetryRequest, "ignores early data by skipping all records with an
    external content type of application_data ... up to the configured
    max_early_data_size" (not ``trial``). Over QUIC the transport drops
    0-RTT packets itself and this is never asked for.
    """

    budget: int
    trial: bool


@dataclass(frozen=True, slots=True)
class Abort:
    """End the connection now with this fatal alert (no exception: not a fault).

    The one case: a client that authenticated a server's ECH rejection
    aborts with ``ech_required`` (RFC 9849 §6.1.6).
    """

    description: AlertDescription


#: What a handshake asks its carrier to do, in order.
Output = (
    SendMessage | InstallSecret | SendChangeCipherSpec | SkipEarlyData | Abort | Event
)


class Handshake:
    """What the client and server handshakes share: outputs and the secrets.

    Subclasses implement :meth:`handle_message`. After the handshake, the
    exporter and resumption secrets are derived on first use only.
    """

    def __init__(self) -> None:
        self._outputs: list[Output] = []
        #: ClientHello.random as on the wire (the outer one with ECH), for
        #: key logs; set once the first ClientHello is sent or received.
        self.client_random: bytes | None = None
        self._suite: SuiteParams | None = None
        self._master: MasterSecret | None = None
        self._server_finished_hash = b""
        self._client_finished_hash = b""
        #: On a server that accepted 0-RTT: the most early data the client may
        #: send (RFC 8446 §4.6.1 max_early_data_size); the carrier counts.
        self.early_data_limit = 0

    # the carrier's side ----------------------------------------------------------

    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        """Process one whole handshake message received at ``epoch``.

        Raises:
            Alert: the peer broke the protocol; the carrier sends the alert.
        """
        raise NotImplementedError

    def take_outputs(self) -> list[Output]:
        """What to do because of the calls so far, in order; and forget it."""
        outputs, self._outputs = self._outputs, []
        return outputs

    @property
    def complete(self) -> bool:
        """Whether the handshake has finished (the 1-RTT keys are in use)."""
        return self._master is not None and bool(self._client_finished_hash)

    @property
    def suite(self) -> SuiteParams | None:
        """The negotiated cipher suite's parameters, once known."""
        return self._suite

    @functools.cached_property
    def exporter_master_secret(self) -> bytes:
        """``exporter_master_secret`` (RFC 8446 §7.1), once the handshake is done."""
        return self._finished_master().exporter_master_secret(
            self._server_finished_hash
        )

    def export_keying_material(
        self, label: bytes, context: bytes, length: int
    ) -> bytes:
        """TLS-Exporter (RFC 8446 §7.5)."""
        suite = self._suite
        if suite is None or not self.complete:
            raise RuntimeError("keying material is exported after the handshake")
        return exporter(suite.hash, self.exporter_master_secret, label, context, length)

    @functools.cached_property
    def resumption_master_secret(self) -> bytes:
        """``resumption_master_secret`` (RFC 8446 §7.1): for tickets only."""
        if not self._client_finished_hash:
            raise RuntimeError("resumption secret before the client's Finished")
        return self._finished_master().resumption_master_secret(
            self._client_finished_hash
        )

    # for subclasses -----------------------------------------------------------------

    def _finished_master(self) -> MasterSecret:
        if self._master is None:
            raise RuntimeError("the handshake has not reached its Finished messages")
        return self._master

    def _send(self, message: Message, epoch: Epoch) -> bytes:
        """Queue one message; return its bytes (with header) for the transcript."""
        raw = message.framed()
        self._outputs.append(SendMessage(epoch, raw))
        return raw

    def _send_raw(self, raw: bytes, epoch: Epoch) -> None:
        """Queue a message already framed (a cached Certificate, say)."""
        self._outputs.append(SendMessage(epoch, raw))

    def _install(
        self, direction: Direction, epoch: Epoch, suite: SuiteParams, secret: bytes
    ) -> None:
        self._outputs.append(InstallSecret(direction, epoch, suite, secret))

    def _emit(self, output: Output) -> None:
        self._outputs.append(output)
