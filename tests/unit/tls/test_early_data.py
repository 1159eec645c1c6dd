"""0-RTT early data (RFC 8446 §2.3, §4.2.10, §4.5, §8), over TCP, with ECH.

The client writes early data under client_early_traffic_secret right after
ClientHello; the server reads it (EarlyDataReceived, then EndOfEarlyData)
or passes over it: by trial decryption with the handshake keys when it
declines, or by skipping every protected record after a HelloRetryRequest.
"""

from __future__ import annotations

import dataclasses

import pytest

import ech
from ech.errors import (
    BadRecordMac,
    DecodeError,
    IllegalParameter,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ech.events import (
    EarlyDataReceived,
    EarlyDataStatus,
    ECHStatus,
    HandshakeComplete,
)
from ech.extension import parse_client_hello_extension
from ech.keys import ECHKey
from ech.server.anti_replay import AntiReplay
from ech.tls.enums import ContentType, ExtensionType, HandshakeType, NamedGroup
from ech.tls.extensions import Extension
from ech.tls.handshake import Epoch
from ech.tls.messages import ClientHello, EncryptedExtensions, EndOfEarlyData
from ech.tls.records import MAX_PLAINTEXT
from tests.helpers import Pair, build_record, handshake, parse_records, split_handshake
from tests.unit.ech import ech_helpers as eh

E = ExtensionType
ACCEPTED = EarlyDataStatus.ACCEPTED
REJECTED = EarlyDataStatus.REJECTED
NOT_OFFERED = EarlyDataStatus.NOT_OFFERED
EARLY = b"GET /early HTTP/1.1\r\nHost: example.test\r\n\r\n"


@pytest.fixture
def early_server(server_config: ech.ServerConfig) -> ech.ServerConfig:
    """A server accepting 1000 bytes of 0-RTT, with its own replay record."""
    return dataclasses.replace(
        server_config, max_early_data_size=1000, anti_replay=AntiReplay()
    )


def _ticket(cc: ech.ClientConfig, sc: ech.ServerConfig) -> ech.SessionTicket:
    client, _, _, _ = handshake(cc, sc)
    (ticket,) = client.session_tickets
    return ticket


def _pair(
    cc: ech.ClientConfig,
    sc: ech.ServerConfig,
    ticket: ech.SessionTicket | None,
    early: bytes | None = EARLY,
    server_name: str = "example.test",
) -> Pair:
    client = ech.ClientConnection(cc, server_name, session=ticket, early_data=early)
    client.start()
    return Pair(client, ech.ServerConnection(sc), [], [], [])


def _done(events: list[ech.Event]) -> HandshakeComplete:
    (done,) = [e for e in events if isinstance(e, HandshakeComplete)]
    return done


def _early(events: list[ech.Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, EarlyDataReceived))


def _hello(first_flight: bytes) -> ClientHello:
    records = parse_records(first_flight)
    ((msg_type, body),) = split_handshake(records[0][1])
    assert msg_type == HandshakeType.CLIENT_HELLO
    return ClientHello.parse(body)


# accepted ----------------------------------------------------------------------------


def test_early_data_accepted(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, early_server)
    assert ticket.max_early_data_size == 1000  # RFC 8446 §4.6.1
    pair = _pair(client_config, early_server, ticket)
    first = pair.client.data_to_send()
    # ClientHello with early_data, the compatibility CCS right after it
    # (§D.4), then the 0-RTT record.
    assert _hello(first).has_extension(E.EARLY_DATA)
    types = [t for t, _ in parse_records(first)]
    assert types == [
        ContentType.HANDSHAKE,
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.APPLICATION_DATA,
    ]
    pair.server_events.extend(pair.server.receive_data(first))
    assert pair.server_events == [EarlyDataReceived(EARLY)]  # before the handshake
    pair.pump()
    assert _done(pair.server_events).early_data is ACCEPTED
    assert _done(pair.client_events).early_data is ACCEPTED
    assert pair.client.early_data_status is ACCEPTED
    assert pair.server.early_data_status is ACCEPTED
    assert _done(pair.server_events).resumed
    # 1-RTT data flows after it, and resumption from this connection works.
    pair.client.send(b"after")
    assert pair.server.receive_data(pair.client.data_to_send()) == [
        ech.DataReceived(b"after")
    ]


def test_more_early_data_before_the_servers_reply(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, early_server)
    pair = _pair(client_config, early_server, ticket, early=b"one ")
    pair.client.send_early_data(b"two ")
    pair.client.send_early_data(b"three")
    pair.pump()
    assert _early(pair.server_events) == b"one two three"
    with pytest.raises(RuntimeError, match="before the server's reply"):
        pair.client.send_early_data(b"late")


def test_client_keeps_to_the_tickets_max_early_data_size(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, early_server)
    with pytest.raises(ValueError, match="allows 1000"):
        ech.ClientConnection(
            client_config, "example.test", session=ticket, early_data=bytes(1001)
        )
    pair = _pair(client_config, early_server, ticket, early=bytes(1000))
    with pytest.raises(ValueError, match="allows 1000"):
        pair.client.send_early_data(b"x")
    pair.pump()
    assert len(_early(pair.server_events)) == 1000


def test_the_handshake_key_follows_end_of_early_data(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """§4.5: the client switches to its handshake key after EndOfEarlyData,
    the server too; drop the message and the server, still reading with
    the 0-RTT key, cannot open the client's Finished."""
    ticket = _ticket(client_config, early_server)
    pair = _pair(client_config, early_server, ticket)
    sent: list[tuple[object, int]] = []

    def drop_eoed(epoch: Epoch, message: bytes) -> bytes:
        sent.append((epoch, message[0]))
        return b"" if message[0] == HandshakeType.END_OF_EARLY_DATA else message

    pair.client.outgoing_message_hook = drop_eoed
    pair.to_server()
    pair.to_client()
    with pytest.raises(BadRecordMac):
        # The Finished comes under the handshake key; the server still reads
        # with the 0-RTT key, so it cannot decrypt it (§5.2).
        pair.to_server()
    assert any(t == HandshakeType.END_OF_EARLY_DATA for _, t in sent)


def test_end_of_early_data_with_a_body_is_decode_error(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, early_server)
    pair = _pair(client_config, early_server, ticket)

    def bad_eoed(_epoch: Epoch, message: bytes) -> bytes:
        if message[0] == HandshakeType.END_OF_EARLY_DATA:
            return bytes((HandshakeType.END_OF_EARLY_DATA, 0, 0, 1, 0))
        return message

    pair.client.outgoing_message_hook = bad_eoed
    pair.to_server()
    pair.to_client()
    with pytest.raises(DecodeError):
        pair.to_server()


def test_more_than_max_early_data_size_is_unexpected_message(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """§4.6.1: "A server receiving more than max_early_data_size bytes of
    0-RTT data SHOULD terminate the connection with an unexpected_message
    alert." The ticket allowed 1000; this server now takes 10."""
    ticket = _ticket(client_config, early_server)
    small = dataclasses.replace(early_server, max_early_data_size=10)
    pair = _pair(client_config, small, ticket, early=bytes(11))
    with pytest.raises(UnexpectedMessage, match="0-RTT"):
        pair.to_server()
    assert pair.server.data_to_send()  # the alert


def test_early_data_after_end_of_early_data_is_refused(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """After EndOfEarlyData the server reads with the handshake key: a 0-RTT
    record there fails to authenticate (bad_record_mac, §5.2)."""
    ticket = _ticket(client_config, early_server)
    pair = _pair(client_config, early_server, ticket)
    pair.to_server()
    pair.to_client()
    flight = pair.client.data_to_send()
    records = parse_records(flight)
    # The 0-RTT key's EndOfEarlyData record, then a copy of it: a second
    # record under the 0-RTT key where the handshake key is now expected.
    eoed = build_record(*records[0])
    pair.server.receive_data(eoed)
    with pytest.raises(BadRecordMac):
        pair.server.receive_data(eoed)


# not offered, declined ---------------------------------------------------------------


def test_not_offered_without_a_ticket_that_allows_it(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    ticket = _ticket(client_config, server_config)
    assert ticket.max_early_data_size == 0
    pair = _pair(client_config, server_config, ticket)
    assert not _hello(pair.client.data_to_send()).has_extension(E.EARLY_DATA)
    with pytest.raises(RuntimeError, match="not offered"):
        pair.client.send_early_data(b"x")
    pair = _pair(client_config, server_config, None)
    pair.pump()
    assert _done(pair.client_events).early_data is NOT_OFFERED
    assert _done(pair.server_events).early_data is NOT_OFFERED


@pytest.mark.parametrize(
    "change",
    [
        {"max_early_data_size": 0},  # the server no longer takes 0-RTT
        {"alpn_protocols": ("h2",)},  # another ALPN protocol than the ticket's
        {
            "cipher_suites": (
                ech.CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
                ech.CipherSuite.TLS_AES_128_GCM_SHA256,
            )
        },  # another suite (same hash: the PSK is still used)
    ],
    ids=["disabled", "alpn", "suite"],
)
def test_declined_early_data_is_skipped_by_trial_decryption(
    client_config: ech.ClientConfig,
    early_server: ech.ServerConfig,
    change: dict[str, object],
) -> None:
    """§4.2.10: the server "skips past early data by attempting to deprotect
    received records using the handshake traffic key, discarding records
    which fail deprotection"; the handshake completes in 1-RTT."""
    cc = dataclasses.replace(client_config, alpn_protocols=("h2",))
    issuer = dataclasses.replace(early_server, alpn_protocols=("http/1.1", "h2"))
    ticket = _ticket(dataclasses.replace(cc, alpn_protocols=("http/1.1", "h2")), issuer)
    assert ticket.alpn_protocol == "http/1.1"
    sc = dataclasses.replace(issuer, **change)  # type: ignore[arg-type]
    client_alpn = ("h2",) if "alpn" in str(change) else ("http/1.1", "h2")
    pair = _pair(dataclasses.replace(cc, alpn_protocols=client_alpn), sc, ticket)
    pair.client.send_early_data(bytes(200))
    pair.pump()
    assert _early(pair.server_events) == b""
    assert _done(pair.server_events).early_data is REJECTED
    assert _done(pair.client_events).early_data is REJECTED
    assert _done(pair.server_events).resumed


def test_replayed_client_hello_gets_no_early_data(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """§8.2: the server records ClientHellos; the same first flight sent again
    is answered in 1-RTT, its early data skipped."""
    ticket = _ticket(client_config, early_server)
    pair = _pair(client_config, early_server, ticket)
    first = pair.client.data_to_send()
    server = ech.ServerConnection(early_server)
    assert _early(server.receive_data(first)) == EARLY
    replay = ech.ServerConnection(early_server)
    assert replay.receive_data(first) == []
    assert replay.early_data_status is REJECTED
    assert replay.data_to_send()  # it answered, in 1-RTT


def test_stale_ticket_age_gets_no_early_data(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """§8.3: the age the client claims must match the server's view within
    the window; a client whose clock ran 60 s ahead is declined."""
    ticket = _ticket(client_config, early_server)
    now = client_config.now()
    cc = dataclasses.replace(client_config, now=lambda: now + 60)
    pair = _pair(cc, early_server, ticket)
    pair.pump()
    assert _done(pair.server_events).early_data is REJECTED
    assert _done(pair.client_events).early_data is REJECTED


def test_hello_retry_request_rejects_early_data(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """§4.2.10: after HRR the server "ignores early data by skipping all
    records with an external content type of application_data"; the second
    ClientHello "MUST NOT include the early_data extension"."""
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
        key_share_groups=(NamedGroup.X25519,),
    )
    ticket = _ticket(cc, early_server)
    sc = dataclasses.replace(early_server, groups=(NamedGroup.SECP256R1,))
    pair = _pair(cc, sc, ticket)
    pair.client.send_early_data(bytes(300))
    pair.pump()
    done = _done(pair.server_events)
    assert done.hello_retry
    assert done.early_data is REJECTED
    assert _done(pair.client_events).early_data is REJECTED
    assert _early(pair.server_events) == b""
    second = [d for who, d in pair.log if who == "client"][1]
    hellos = [
        ClientHello.parse(body)
        for t, f in parse_records(second)
        if t == ContentType.HANDSHAKE
        for msg_type, body in split_handshake(f)
        if msg_type == HandshakeType.CLIENT_HELLO
    ]
    assert len(hellos) == 1
    assert not hellos[0].has_extension(E.EARLY_DATA)


@pytest.mark.parametrize("trial", [True, False], ids=["trial", "after-hrr"])
def test_skipping_is_bounded(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig, trial: bool
) -> None:
    """Past ``early_data_skip_limit`` (or max_early_data_size), records are
    judged as usual: bad_record_mac for one that fails to decrypt, or
    unexpected_message for application data before keys."""
    cc = client_config
    if not trial:
        cc = dataclasses.replace(
            client_config,
            groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
            key_share_groups=(NamedGroup.X25519,),
        )
    ticket = _ticket(cc, early_server)
    sc = dataclasses.replace(
        early_server,
        max_early_data_size=0 if trial else 1000,
        early_data_skip_limit=1000,
        groups=early_server.groups if trial else (NamedGroup.SECP256R1,),
    )
    pair = _pair(cc, sc, ticket, early=bytes(1000))
    # What a client would not send: early data beyond the ticket's size.
    pair.client._write_early_data(bytes(MAX_PLAINTEXT))
    with pytest.raises(BadRecordMac if trial else UnexpectedMessage):
        pair.to_server()


# the client's checks -----------------------------------------------------------------


def test_unsolicited_early_data_in_encrypted_extensions(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    def add(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.with_extension(Extension(E.EARLY_DATA, b""))

    sc = dataclasses.replace(early_server, encrypted_extensions_hook=add)
    pair = _pair(client_config, sc, None, early=None)
    pair.to_server()
    with pytest.raises(UnsupportedExtension):
        pair.to_client()


def test_early_data_accepted_with_another_alpn_is_illegal_parameter(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """The server must check the ticket's ALPN (§4.2.10); a client seeing
    early data accepted with another protocol aborts."""
    cc = dataclasses.replace(client_config, alpn_protocols=("http/1.1", "h2"))
    issuer = dataclasses.replace(early_server, alpn_protocols=("http/1.1",))
    ticket = _ticket(cc, issuer)

    def accept_anyway(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.with_extension(Extension(E.EARLY_DATA, b""))

    sc = dataclasses.replace(
        issuer, alpn_protocols=("h2",), encrypted_extensions_hook=accept_anyway
    )
    pair = _pair(cc, sc, ticket)
    pair.to_server()
    with pytest.raises(IllegalParameter, match="0-RTT"):
        pair.to_client()


def test_end_of_early_data_outside_0rtt_is_unexpected_message(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    client.inject_record(ContentType.HANDSHAKE, EndOfEarlyData().framed())
    with pytest.raises(UnexpectedMessage):
        server.receive_data(client.data_to_send())


# over QUIC: never --------------------------------------------------------------------


def test_no_early_data_over_quic(client_config: ech.ClientConfig) -> None:
    from ech.client.handshake import ClientHandshake
    from ech.tls.quic import QuicOptions

    cc = dataclasses.replace(client_config, alpn_protocols=("h3",))
    with pytest.raises(ValueError, match="QUIC"):
        ClientHandshake(
            cc,
            "example.test",
            quic=QuicOptions(transport_parameters=lambda: b""),
            early_data=True,
        )


# with ECH ----------------------------------------------------------------------------


def _ech_setup() -> tuple[
    ech.ClientConfig, ech.ServerConfig, ech.SessionTicket, ECHKey
]:
    key = eh.ech_key()
    sc = eh.server_config(key, max_early_data_size=1000, anti_replay=AntiReplay())
    cc = eh.client_config()
    first = eh.ech_pair(cc, sc, eh.config_list(key))
    first.pump()
    (ticket,) = first.client.session_tickets
    return cc, sc, ticket, key


@pytest.mark.requirement("ECH-46")
def test_early_data_with_ech_uses_the_inner_psk_and_both_hellos_say_so() -> None:
    """RFC 9849 §6.1 (ECH-46): "If ClientHelloInner offers early data,
    ClientHelloOuter also includes early_data"; the 0-RTT keys come from
    ClientHelloInner and its PSK, which the client-facing server decrypts."""
    cc, sc, ticket, key = _ech_setup()
    client = ech.ClientConnection(
        cc,
        eh.INNER_NAME,
        session=ticket,
        ech_configs=eh.config_list(key),
        early_data=EARLY,
    )
    client.start()
    first = client.data_to_send()
    outer = _hello(first)
    assert outer.has_extension(E.EARLY_DATA)
    offer = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
    assert offer is not None
    assert parse_client_hello_extension(offer) is not None  # the outer form
    pair = Pair(client, ech.ServerConnection(sc), [], [], [])
    pair.server_events.extend(pair.server.receive_data(first))
    pair.pump()
    done = _done(pair.server_events)
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.resumed
    assert done.early_data is ACCEPTED
    assert _early(pair.server_events) == EARLY
    assert _done(pair.client_events).early_data is ACCEPTED


@pytest.mark.requirement("ECH-46", "ECH-104")
def test_a_server_rejecting_ech_rejects_the_early_data() -> None:
    """RFC 9849 §6.1: the outer hello's early_data lets a rejecting server
    skip the early data safely (ECH-46, ECH-104): trial decryption."""
    cc, _, ticket, key = _ech_setup()
    stranger = eh.server_config(eh.ech_key(), max_early_data_size=1000)
    client = ech.ClientConnection(
        cc,
        eh.INNER_NAME,
        session=ticket,
        ech_configs=eh.config_list(key),
        early_data=EARLY,
    )
    client.start()
    pair = Pair(client, ech.ServerConnection(stranger), [], [], [])
    eh.pump_to_end(pair)
    assert pair.server.ech_status is ECHStatus.REJECTED
    assert pair.server.early_data_status is REJECTED
    assert _early(pair.server_events) == b""
    assert pair.client.ech_status is ECHStatus.REJECTED


# the replay record (RFC 8446 §8.2, §8.3) ---------------------------------------------


def test_anti_replay_admits_each_client_hello_once() -> None:
    record = AntiReplay(window=10, capacity=100)
    assert record.admit(b"binder", 5000, 5000, now=100.0)
    assert not record.admit(b"binder", 5000, 5000, now=101.0)
    assert record.admit(b"another", 5000, 5000, now=101.0)
    assert len(record) == 2


def test_anti_replay_freshness_window() -> None:
    """§8.3: the claimed age must match the server's within the window."""
    record = AntiReplay(window=10, capacity=100)
    assert not record.admit(b"late", 1_000, 11_001, now=1.0)
    assert not record.admit(b"early", 11_001, 1_000, now=1.0)
    assert record.admit(b"fine", 1_000, 11_000, now=1.0)


def test_anti_replay_forgets_after_twice_the_window() -> None:
    """A copy older than 2 * window fails the freshness check on its own, so
    the record may drop it; memory stays bounded by the rate."""
    record = AntiReplay(window=10, capacity=100)
    assert record.admit(b"binder", 0, 0, now=0.0)
    assert not record.admit(b"binder", 0, 0, now=19.9)
    assert record.admit(b"other", 0, 0, now=20.0)
    assert len(record) == 1  # the first one expired


def test_anti_replay_fails_closed_when_full() -> None:
    """§8.2: when the record cannot take more, 0-RTT is declined."""
    record = AntiReplay(window=10, capacity=2)
    assert record.admit(b"a", 0, 0, now=0.0)
    assert record.admit(b"b", 0, 0, now=0.0)
    assert not record.admit(b"c", 0, 0, now=1.0)
    assert record.admit(b"c", 0, 0, now=20.0)
    with pytest.raises(ValueError, match="capacity"):
        AntiReplay(capacity=0)


def test_early_data_fed_one_byte_at_a_time(
    client_config: ech.ClientConfig, early_server: ech.ServerConfig
) -> None:
    """Records split anywhere give the same events (the 0-RTT key is in place
    before the first early record is parsed)."""
    ticket = _ticket(client_config, early_server)
    pair = _pair(client_config, early_server, ticket)
    pair.client.send_early_data(b" and more")
    first = pair.client.data_to_send()
    events: list[ech.Event] = []
    for i in range(len(first)):
        events.extend(pair.server.receive_data(first[i : i + 1]))
    assert events == [EarlyDataReceived(EARLY), EarlyDataReceived(b" and more")]
