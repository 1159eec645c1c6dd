"""The handshakes over QUIC CRYPTO streams (RFC 9001), in memory, with ECH.

Two :class:`QuicTLS` carriers exchange CRYPTO data per epoch; nothing else
of QUIC is needed to check what RFC 9001 §4 and §8 ask of the TLS side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

import ech
from ech import hpke
from ech.client.handshake import ClientHandshake
from ech.errors import (
    Alert,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    UnexpectedMessage,
)
from ech.events import ECHRejected, ECHStatus, HandshakeComplete
from ech.extension import parse_client_hello_extension
from ech.keys import ECHKey, generate_ech_key
from ech.server.handshake import ServerHandshake
from ech.tls.enums import AlertDescription, ExtensionType, HandshakeType, NamedGroup
from ech.tls.events import Event, SessionTicketReceived
from ech.tls.handshake import (
    Abort,
    Direction,
    Epoch,
    InstallSecret,
    Output,
    SendMessage,
)
from ech.tls.messages import ClientHello, EncryptedExtensions, KeyUpdate
from ech.tls.quic import (
    CRYPTO_ERROR,
    QuicOptions,
    QuicProtocolViolation,
    QuicTLS,
    crypto_error_code,
)
from tests.helpers import frame, split_handshake
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    PUBLIC_NAME,
    client_config,
    config_list,
    ech_key,
    hrr_client_config,
    server_config,
)

E = ExtensionType
CLIENT_PARAMETERS = b"\x04\x04\x80\x10\x00\x00client"
SERVER_PARAMETERS = b"\x04\x04\x80\x20\x00\x00server"
ALPN = ("h3",)


@dataclass
class Side:
    """One end: its carrier and everything its handshake asked for."""

    tls: QuicTLS
    seen_parameters: list[tuple[bytes, str]] = field(default_factory=list)
    secrets: dict[tuple[Direction, Epoch], bytes] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    aborted: AlertDescription | None = None
    pending: list[SendMessage] = field(default_factory=list)

    def absorb(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, SendMessage):
                self.pending.append(output)
            elif isinstance(output, InstallSecret):
                key = (output.direction, output.epoch)
                assert key not in self.secrets, f"{key} installed twice"
                self.secrets[key] = output.secret
            elif isinstance(output, Abort):
                self.aborted = output.description
            elif isinstance(output, Event):
                self.events.append(output)
            else:
                raise AssertionError(f"{output} over QUIC")


@dataclass
class QuicPair:
    client: Side
    server: Side
    #: Every CRYPTO chunk delivered: (sender, epoch, data).
    log: list[tuple[str, Epoch, bytes]] = field(default_factory=list)

    def deliver(self, sender: Side, receiver: Side, name: str) -> bool:
        moved = bool(sender.pending)
        for message in sender.pending:
            self.log.append((name, message.epoch, message.data))
            receiver.absorb(receiver.tls.receive(message.epoch, message.data))
        sender.pending = []
        return moved

    def pump(self) -> None:
        for _ in range(10):
            if self.client.aborted or self.server.aborted:
                return
            moved = self.deliver(self.client, self.server, "client")
            moved |= self.deliver(self.server, self.client, "server")
            if not moved:
                return
        raise AssertionError("never went quiet")


def quic_options(parameters: bytes, seen: list[tuple[bytes, str]]) -> QuicOptions:
    return QuicOptions(
        transport_parameters=lambda: parameters,
        on_peer_transport_parameters=lambda p, alpn: seen.append((p, alpn)),
    )


def make_pair(
    cc: ech.ClientConfig | None = None,
    sc: ech.ServerConfig | None = None,
    *,
    ech_configs: ech.config.ECHConfigList | None = None,
    server_name: str = INNER_NAME,
    session: ech.SessionTicket | None = None,
) -> QuicPair:
    cc = cc or client_config(alpn_protocols=ALPN)
    sc = sc or server_config(alpn_protocols=ALPN)
    client_seen: list[tuple[bytes, str]] = []
    server_seen: list[tuple[bytes, str]] = []
    client = ClientHandshake(
        cc,
        server_name,
        session=session,
        ech_configs=ech_configs,
        quic=quic_options(CLIENT_PARAMETERS, client_seen),
    )
    server = ServerHandshake(sc, quic=quic_options(SERVER_PARAMETERS, server_seen))
    pair = QuicPair(
        Side(QuicTLS(client), client_seen), Side(QuicTLS(server), server_seen)
    )
    client.start()
    pair.client.absorb(pair.client.tls.take_outputs())
    return pair


def complete(side: Side) -> HandshakeComplete:
    (done,) = [e for e in side.events if isinstance(e, HandshakeComplete)]
    return done


def first_hello(pair: QuicPair) -> ClientHello:
    ((msg_type, body),) = split_handshake(pair.client.pending[0].data)
    assert msg_type == HandshakeType.CLIENT_HELLO
    return ClientHello.parse(body)


# the handshake over QUIC -------------------------------------------------------


def test_handshake_secrets_and_transport_parameters() -> None:
    """RFC 9001 §4: messages per epoch, secrets per level; §8.2 parameters."""
    pair = make_pair()
    hello = first_hello(pair)
    assert hello.legacy_session_id == b""  # RFC 9001 §8.4
    assert hello.extension(E.QUIC_TRANSPORT_PARAMETERS) == CLIENT_PARAMETERS
    pair.pump()
    client, server = complete(pair.client), complete(pair.server)
    assert client.alpn_protocol == server.alpn_protocol == "h3"
    assert pair.server.seen_parameters == [(CLIENT_PARAMETERS, "h3")]
    assert pair.client.seen_parameters == [(SERVER_PARAMETERS, "h3")]
    client_handshake = pair.client.tls.handshake
    assert isinstance(client_handshake, ClientHandshake)
    assert client_handshake.peer_transport_parameters == SERVER_PARAMETERS
    # Each level's secret is the same on both ends, one per direction.
    for epoch in (Epoch.HANDSHAKE, Epoch.APPLICATION):
        for writer, reader in ((pair.client, pair.server), (pair.server, pair.client)):
            assert (
                writer.secrets[Direction.WRITE, epoch]
                == reader.secrets[Direction.READ, epoch]
            )
    assert set(pair.client.secrets) == set(pair.server.secrets)
    # Messages went at the levels RFC 9001 §4.1.4 names.
    levels = [(who, epoch, split_handshake(d)[0][0]) for who, epoch, d in pair.log]
    assert levels[:3] == [
        ("client", Epoch.INITIAL, HandshakeType.CLIENT_HELLO),
        ("server", Epoch.INITIAL, HandshakeType.SERVER_HELLO),
        ("server", Epoch.HANDSHAKE, HandshakeType.ENCRYPTED_EXTENSIONS),
    ]
    assert ("client", Epoch.HANDSHAKE, HandshakeType.FINISHED) in levels
    assert ("server", Epoch.APPLICATION, HandshakeType.NEW_SESSION_TICKET) in levels
    assert any(isinstance(e, SessionTicketReceived) for e in pair.client.events)


def test_crypto_data_in_any_split() -> None:
    """CRYPTO frames may cut messages anywhere (RFC 9001 §4.1.3)."""
    pair = make_pair()
    for _ in range(4):
        for sender, receiver in (
            (pair.client, pair.server),
            (pair.server, pair.client),
        ):
            messages, sender.pending = sender.pending, []
            for message in messages:
                data = message.data
                for i in range(0, len(data), 7):
                    receiver.absorb(
                        receiver.tls.receive(message.epoch, data[i : i + 7])
                    )
    complete(pair.client)
    complete(pair.server)


def test_resumption_over_quic() -> None:
    sc = server_config(alpn_protocols=ALPN)  # one ticket key for both
    pair = make_pair(sc=sc)
    pair.pump()
    client = pair.client.tls.handshake
    assert isinstance(client, ClientHandshake)
    (ticket,) = client.session_tickets
    again = make_pair(sc=sc, session=ticket)
    again.pump()
    assert complete(again.client).resumed
    assert complete(again.server).resumed


# ECH over QUIC -----------------------------------------------------------------


def test_ech_accepted_with_parameters_inside_and_out() -> None:
    """The outer hello carries the parameters too, by compression (RFC 9849 §5.1)."""
    key = ech_key()
    pair = make_pair(
        sc=server_config(key, alpn_protocols=ALPN), ech_configs=config_list(key)
    )
    outer = first_hello(pair)
    assert outer.extension(E.QUIC_TRANSPORT_PARAMETERS) == CLIENT_PARAMETERS
    assert INNER_NAME.encode() not in pair.client.pending[0].data
    pair.pump()
    for side in (pair.client, pair.server):
        done = complete(side)
        assert done.ech_status is ECHStatus.ACCEPTED
        assert done.server_name == INNER_NAME
        assert done.outer_server_name == PUBLIC_NAME
    assert pair.server.seen_parameters == [(CLIENT_PARAMETERS, "h3")]
    # The inner hello referenced them instead of repeating them.
    server = pair.server.tls.handshake
    assert isinstance(server, ServerHandshake)
    assert server.client_hello is not None
    assert server.client_hello.extension(E.QUIC_TRANSPORT_PARAMETERS) == (
        CLIENT_PARAMETERS
    )


def test_ech_rejected_aborts_with_ech_required_and_retries() -> None:
    """RFC 9849 §6.1.6 over QUIC: CRYPTO_ERROR 0x100 + ech_required (121)."""
    stale, current = ech_key(1), ech_key(2)
    sc = server_config(current, alpn_protocols=ALPN)
    pair = make_pair(sc=sc, ech_configs=config_list(stale))
    pair.pump()
    assert pair.client.aborted is AlertDescription.ECH_REQUIRED
    assert crypto_error_code(pair.client.aborted) == CRYPTO_ERROR + 121 == 0x179
    (rejected,) = [e for e in pair.client.events if isinstance(e, ECHRejected)]
    assert rejected.public_name == PUBLIC_NAME
    assert rejected.retry_configs == config_list(current)
    assert not any(isinstance(e, HandshakeComplete) for e in pair.client.events)
    # One retry on a new connection with the authenticated retry configs.
    retry = make_pair(sc=sc, ech_configs=rejected.retry_configs)
    retry.pump()
    assert complete(retry.client).ech_status is ECHStatus.ACCEPTED


def test_ech_with_hello_retry_request() -> None:
    key = ech_key()
    sc = server_config(key, alpn_protocols=ALPN, groups=(NamedGroup.SECP256R1,))
    pair = make_pair(
        hrr_client_config(alpn_protocols=ALPN), sc, ech_configs=config_list(key)
    )
    pair.pump()
    done = complete(pair.client)
    assert done.hello_retry
    assert done.ech_status is ECHStatus.ACCEPTED
    hellos = [
        ClientHello.parse(split_handshake(d)[0][1])
        for who, epoch, d in pair.log
        if who == "client" and epoch is Epoch.INITIAL
    ]
    assert len(hellos) == 2
    for hello in hellos:
        assert hello.legacy_session_id == b""
        assert hello.extension(E.QUIC_TRANSPORT_PARAMETERS) == CLIENT_PARAMETERS
    second = hellos[1].extension(E.ENCRYPTED_CLIENT_HELLO)
    assert second is not None
    offer = parse_client_hello_extension(second)
    assert offer is not None
    assert offer.enc == b""  # the same HPKE context (§6.1.5)


def test_grease_over_quic() -> None:
    pair = make_pair(client_config(alpn_protocols=ALPN, ech_grease=True))
    assert first_hello(pair).has_extension(E.ENCRYPTED_CLIENT_HELLO)
    pair.pump()
    assert complete(pair.client).ech_status is ECHStatus.GREASE


@pytest.mark.parametrize(
    "kem", [hpke.KEM.ML_KEM_768, hpke.KEM.MLKEM768_X25519], ids=["mlkem768", "xwing"]
)
def test_post_quantum_ech_over_quic(kem: int) -> None:
    key: ECHKey = generate_ech_key(PUBLIC_NAME, config_id=3, kem_id=kem)
    pair = make_pair(
        sc=server_config(key, alpn_protocols=ALPN), ech_configs=config_list(key)
    )
    pair.pump()
    assert complete(pair.server).ech_status is ECHStatus.ACCEPTED


# what RFC 9001 §8 requires ----------------------------------------------------


def test_alpn_is_required_of_both_configs() -> None:
    with pytest.raises(ValueError, match="ALPN"):
        ClientHandshake(client_config(), INNER_NAME, quic=quic_options(b"", []))
    with pytest.raises(ValueError, match="ALPN"):
        ServerHandshake(server_config(), quic=quic_options(b"", []))


def test_no_alpn_in_common_is_no_application_protocol() -> None:
    """RFC 9001 §8.1: no_application_protocol, CRYPTO_ERROR 0x178."""
    pair = make_pair(client_config(alpn_protocols=("h2",)))
    with pytest.raises(NoApplicationProtocol) as info:
        pair.pump()
    assert crypto_error_code(info.value) == 0x178


def _without_parameters(hello: ClientHello) -> ClientHello:
    return hello.without_extension(E.QUIC_TRANSPORT_PARAMETERS)


def test_server_requires_client_parameters() -> None:
    """RFC 9001 §8.2: missing_extension, CRYPTO_ERROR 0x16d."""
    pair = make_pair(
        client_config(alpn_protocols=ALPN, client_hello_hook=_without_parameters)
    )
    with pytest.raises(MissingExtension) as info:
        pair.pump()
    assert crypto_error_code(info.value) == 0x16D


def test_client_requires_server_parameters() -> None:
    def strip(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.without_extension(E.QUIC_TRANSPORT_PARAMETERS)

    pair = make_pair(
        sc=server_config(alpn_protocols=ALPN, encrypted_extensions_hook=strip)
    )
    with pytest.raises(MissingExtension):
        pair.pump()


def test_server_refuses_compatibility_mode() -> None:
    """RFC 9001 §8.4: a legacy_session_id is a PROTOCOL_VIOLATION (0x0a)."""

    def with_session_id(hello: ClientHello) -> ClientHello:
        return dataclasses.replace(hello, legacy_session_id=bytes(32))

    pair = make_pair(
        client_config(alpn_protocols=ALPN, client_hello_hook=with_session_id)
    )
    with pytest.raises(QuicProtocolViolation) as info:
        pair.pump()
    assert info.value.error_code == 0x0A


def test_no_change_cipher_spec_over_quic() -> None:
    """Compatibility mode is off whatever the config says (RFC 9001 §8.4)."""
    pair = make_pair(client_config(alpn_protocols=ALPN, compatibility_mode=True))
    pair.pump()  # QuicTLS raises if a handshake asks for a change_cipher_spec
    complete(pair.server)


@pytest.mark.parametrize(
    ("msg_type", "body"),
    [
        (HandshakeType.KEY_UPDATE, KeyUpdate(0).encode()),
        (HandshakeType.END_OF_EARLY_DATA, b""),
    ],
    ids=["key_update", "end_of_early_data"],
)
def test_key_update_and_end_of_early_data_are_unexpected(
    msg_type: HandshakeType, body: bytes
) -> None:
    """RFC 9001 §6 and §8.3: unexpected_message (CRYPTO_ERROR 0x10a)."""
    pair = make_pair()
    pair.pump()
    with pytest.raises(UnexpectedMessage) as info:
        pair.client.tls.receive(Epoch.APPLICATION, frame(msg_type, body))
    assert crypto_error_code(info.value) == 0x10A


def test_message_at_the_wrong_level_is_unexpected() -> None:
    pair = make_pair()
    hello = pair.client.pending[0].data
    with pytest.raises(UnexpectedMessage):
        pair.server.tls.receive(Epoch.HANDSHAKE, hello)


def test_message_spanning_a_key_change_is_unexpected() -> None:
    """RFC 8446 §5.1 over QUIC: the Initial level ends with the ServerHello."""
    pair = make_pair()
    pair.deliver(pair.client, pair.server, "client")
    server_hello = pair.server.pending[0]
    assert server_hello.epoch is Epoch.INITIAL
    with pytest.raises(UnexpectedMessage):
        pair.client.tls.receive(Epoch.INITIAL, server_hello.data + b"\x02\x00")


def test_alert_codes() -> None:
    assert crypto_error_code(IllegalParameter()) == 0x12F
    assert crypto_error_code(AlertDescription.HANDSHAKE_FAILURE) == 0x128
    assert issubclass(QuicProtocolViolation, ech.TLSError)
    assert not issubclass(QuicProtocolViolation, Alert)
