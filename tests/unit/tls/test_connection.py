"""Whole handshakes in memory: the happy paths and the connection API."""

from __future__ import annotations

import dataclasses
import time

import pytest

import ech
from ech.errors import ConnectionClosedError
from ech.events import (
    ConnectionClosed,
    DataReceived,
    HandshakeComplete,
    KeyUpdateReceived,
    SessionTicketReceived,
)
from ech.pki import KeyType, TestCA
from ech.server.connection import ServerState
from ech.tls import extensions as ext
from ech.tls.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from ech.tls.groups import SUPPORTED_GROUPS
from ech.tls.messages import (
    Certificate,
    ClientHello,
    ServerHello,
)
from tests.helpers import (
    deterministic_configs,
    handshake,
    make_pair,
    parse_records,
    plain_alert,
    split_handshake,
)

E = ExtensionType
ALL_SUITES = list(CipherSuite)
#: Every group we implement (RFC 8446 §4.2.7); one handshake each, so the
#: large finite-field groups cost little. The server serves them all only
#: when configured to (``DEFAULT_SERVER_GROUPS`` keeps the common four).
ALL_GROUPS = sorted(SUPPORTED_GROUPS)


def _complete(events: list[ech.Event]) -> HandshakeComplete:
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert len(done) == 1
    return done[0]


def _core(event: HandshakeComplete) -> tuple[object, ...]:
    """What both sides must agree on (the client alone sees outer names)."""
    return (
        event.cipher_suite,
        event.group,
        event.alpn_protocol,
        event.resumed,
        event.hello_retry,
        event.version,
    )


def _hrr_configs(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> tuple[ech.ClientConfig, ech.ServerConfig]:
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
        key_share_groups=(NamedGroup.X25519,),
    )
    sc = dataclasses.replace(server_config, groups=(NamedGroup.SECP256R1,))
    return cc, sc


def test_full_handshake(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, client_events, server_events = handshake(
        client_config, server_config
    )
    done = _complete(client_events)
    assert done.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert done.group in client_config.key_share_groups  # no HelloRetryRequest
    assert done.alpn_protocol is None
    assert done.server_name == "example.test"
    assert not done.resumed
    assert not done.hello_retry
    assert done.version == "TLSv1.3"
    assert client_events[0] is done
    assert len(server_events) == 1
    assert _core(_complete(server_events)) == _core(done)
    assert _complete(server_events).server_name == "example.test"
    assert isinstance(client_events[1], SessionTicketReceived)
    assert len(client_events) == 2
    assert client.handshake_complete
    assert server.handshake_complete
    assert client.exporter_master_secret == server.exporter_master_secret
    assert server.server_name == "example.test"


@pytest.mark.parametrize("suite", ALL_SUITES, ids=str)
def test_handshake_every_suite(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, suite: CipherSuite
) -> None:
    """RFC 8446 §B.4: all five suites, CCM_8 behind its opt-in on both ends."""
    cc = dataclasses.replace(client_config, cipher_suites=(suite,), allow_ccm_8=True)
    sc = dataclasses.replace(
        server_config,
        cipher_suites=(*server_config.cipher_suites, suite),
        allow_ccm_8=suite == CipherSuite.TLS_AES_128_CCM_8_SHA256,
    )
    client, server, client_events, server_events = handshake(cc, sc)
    assert _complete(client_events).cipher_suite == suite
    assert _complete(server_events).cipher_suite == suite
    client.send(b"ping")
    data = client.data_to_send()
    # One protected record: content, inner type byte, the suite's tag.
    ((_, fragment),) = parse_records(data)
    tag = 8 if suite == CipherSuite.TLS_AES_128_CCM_8_SHA256 else 16
    assert len(fragment) == len(b"ping") + 1 + tag
    assert server.receive_data(data) == [DataReceived(b"ping")]
    # Resumption runs on the same suite's hash.
    (ticket,) = client.session_tickets
    _, _, resumed_events, _ = handshake(cc, sc, session=ticket)
    assert _complete(resumed_events).resumed
    assert _complete(resumed_events).cipher_suite == suite


def test_ccm_8_needs_an_explicit_opt_in(leaf: ech.CertifiedKey) -> None:
    """CCM_8's 8-byte tag is for constrained devices only (RFC 8446 §B.4)."""
    ccm_8 = CipherSuite.TLS_AES_128_CCM_8_SHA256
    with pytest.raises(ValueError, match="allow_ccm_8"):
        ech.ClientConfig(cipher_suites=(ccm_8,))
    with pytest.raises(ValueError, match="allow_ccm_8"):
        ech.ServerConfig(certificates=(leaf,), cipher_suites=(ccm_8,))
    with pytest.raises(ValueError, match="unsupported cipher suite"):
        ech.ClientConfig(cipher_suites=(0x13FF,))
    assert ccm_8 not in ech.ClientConfig().cipher_suites


def test_server_never_picks_a_suite_the_client_did_not_offer(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """Default configs never negotiate CCM: neither side lists it."""
    sc = dataclasses.replace(
        server_config,
        cipher_suites=(
            CipherSuite.TLS_AES_128_CCM_SHA256,
            CipherSuite.TLS_AES_128_GCM_SHA256,
        ),
    )
    _, _, client_events, _ = handshake(client_config, sc)
    assert _complete(client_events).cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256


def test_server_suite_preference_wins(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = dataclasses.replace(
        server_config,
        cipher_suites=(
            CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
            CipherSuite.TLS_AES_128_GCM_SHA256,
        ),
    )
    _, _, client_events, _ = handshake(client_config, sc)
    assert (
        _complete(client_events).cipher_suite
        == CipherSuite.TLS_CHACHA20_POLY1305_SHA256
    )


@pytest.mark.parametrize("group", ALL_GROUPS, ids=str)
def test_handshake_every_group(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, group: NamedGroup
) -> None:
    cc = dataclasses.replace(client_config, groups=(group,), key_share_groups=(group,))
    sc = dataclasses.replace(server_config, groups=tuple(ALL_GROUPS))
    _, _, client_events, server_events = handshake(cc, sc)
    assert _complete(client_events).group == group
    assert _complete(server_events).group == group
    assert not _complete(client_events).hello_retry


@pytest.mark.parametrize(
    "group", [NamedGroup.X448, NamedGroup.SECP521R1, NamedGroup.FFDHE2048], ids=str
)
def test_hello_retry_request_to_a_new_group(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, group: NamedGroup
) -> None:
    """The client lists the group but sends no share for it: HRR (§4.1.4)."""
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.X25519, group),
        key_share_groups=(NamedGroup.X25519,),
    )
    sc = dataclasses.replace(server_config, groups=(group,))
    _, _, client_events, server_events = handshake(cc, sc)
    assert _complete(client_events).group == group
    assert _complete(client_events).hello_retry
    assert _core(_complete(client_events)) == _core(_complete(server_events))


def test_new_groups_are_opt_in_on_the_server(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """A client sending only a P-521 share but listing X25519 gets an HRR."""
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.SECP521R1, NamedGroup.X25519),
        key_share_groups=(NamedGroup.SECP521R1,),
    )
    _, _, client_events, _ = handshake(cc, server_config)
    assert _complete(client_events).group == NamedGroup.X25519
    assert _complete(client_events).hello_retry


def test_server_prefers_a_group_the_client_sent_a_share_for(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    # The server likes X25519MLKEM768 best, but only X25519 has a share.
    cc = dataclasses.replace(
        client_config,
        groups=(NamedGroup.X25519, NamedGroup.X25519MLKEM768),
        key_share_groups=(NamedGroup.X25519,),
    )
    sc = dataclasses.replace(
        server_config, groups=(NamedGroup.X25519MLKEM768, NamedGroup.X25519)
    )
    _, _, client_events, _ = handshake(cc, sc)
    assert _complete(client_events).group == NamedGroup.X25519
    assert not _complete(client_events).hello_retry


@pytest.mark.parametrize(
    "key_type", ["p256", "p384", "p521", "ed25519", "ed448", "rsa2048"]
)
def test_handshake_every_certificate_key_type(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    key_type: KeyType,
) -> None:
    sc = dataclasses.replace(
        server_config, certificates=(ca.issue("example.test", key_type=key_type),)
    )
    _, _, client_events, server_events = handshake(client_config, sc)
    assert _core(_complete(client_events)) == _core(_complete(server_events))


def test_hello_retry_request(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)
    pair = make_pair(cc, sc)
    pair.pump()
    client_done = _complete(pair.client_events)
    assert client_done.hello_retry
    assert client_done.group == NamedGroup.SECP256R1
    assert _core(_complete(pair.server_events)) == _core(client_done)
    # ClientHello1, then CCS + ClientHello2 (RFC 8446 §D.4) in the next flight.
    first_client, second_client = [d for who, d in pair.log if who == "client"][:2]
    hrr_records = parse_records(next(d for who, d in pair.log if who == "server"))
    ((msg_type, body),) = split_handshake(hrr_records[0][1])
    assert msg_type == HandshakeType.SERVER_HELLO
    assert ServerHello.parse(body).is_hello_retry_request
    assert [t for t, _ in parse_records(second_client)] == [
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.HANDSHAKE,
    ]
    hello1 = ClientHello.parse(split_handshake(parse_records(first_client)[0][1])[0][1])
    hello2 = ClientHello.parse(
        split_handshake(parse_records(second_client)[1][1])[0][1]
    )
    assert hello2.random == hello1.random
    assert hello2.legacy_session_id == hello1.legacy_session_id
    assert hello2.has_extension(E.COOKIE)
    shares = hello2.extension(E.KEY_SHARE)
    assert shares is not None
    assert [s.group for s in ext.decode_client_key_shares(shares)] == [
        NamedGroup.SECP256R1
    ]


def test_alpn_negotiation(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, alpn_protocols=("http/1.1", "h2"))
    sc = dataclasses.replace(server_config, alpn_protocols=("h2", "http/1.1"))
    client, server, client_events, server_events = handshake(cc, sc)
    assert _complete(client_events).alpn_protocol == "h2"
    assert _complete(server_events).alpn_protocol == "h2"
    assert client.alpn_protocol == server.alpn_protocol == "h2"


def test_alpn_ignored_when_server_has_none(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, alpn_protocols=("h2",))
    _, _, client_events, _ = handshake(cc, server_config)
    assert _complete(client_events).alpn_protocol is None


def test_session_ticket_fields(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    sc = dataclasses.replace(server_config, alpn_protocols=("h2",), ticket_lifetime=600)
    cc = dataclasses.replace(client_config, alpn_protocols=("h2",))
    client, _, client_events, _ = handshake(cc, sc)
    (ticket,) = client.session_tickets
    assert client_events[-1] == SessionTicketReceived(ticket)
    assert ticket.server_name == "example.test"
    assert ticket.alpn_protocol == "h2"
    assert ticket.lifetime == 600
    assert ticket.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert len(ticket.psk) == 32


def test_tickets_per_connection_and_disabled(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, _, _, _ = handshake(
        client_config, dataclasses.replace(server_config, tickets_per_connection=3)
    )
    assert len(client.session_tickets) == 3
    assert len({t.ticket for t in client.session_tickets}) == 3
    assert len({t.psk for t in client.session_tickets}) == 3
    client, _, _, _ = handshake(
        client_config, dataclasses.replace(server_config, session_tickets=False)
    )
    assert client.session_tickets == []


def test_extra_session_ticket_on_demand(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    server.send_session_ticket()
    events = client.receive_data(server.data_to_send())
    assert len(events) == 1
    assert isinstance(events[0], SessionTicketReceived)
    assert len(client.session_tickets) == 2


def test_resumption(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, _, _, _ = handshake(client_config, server_config)
    ticket = client.session_tickets[0]
    client2, server2, client_events, server_events = handshake(
        client_config, server_config, session=ticket
    )
    assert _complete(client_events).resumed
    assert _complete(server_events).resumed
    assert server2.resumed
    # A resumed connection issues fresh tickets, which work in turn.
    (ticket2,) = client2.session_tickets
    assert ticket2.ticket != ticket.ticket
    _, _, client_events3, _ = handshake(client_config, server_config, session=ticket2)
    assert _complete(client_events3).resumed
    client2.send(b"resumed data")
    assert server2.receive_data(client2.data_to_send()) == [
        DataReceived(b"resumed data")
    ]


def test_resumption_after_hello_retry_request(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc, sc = _hrr_configs(client_config, server_config)
    client, _, _, _ = handshake(cc, sc)
    ticket = client.session_tickets[0]
    _, _, client_events, server_events = handshake(cc, sc, session=ticket)
    done = _complete(client_events)
    assert done.resumed
    assert done.hello_retry
    assert _core(_complete(server_events)) == _core(done)


def test_resumption_with_another_server_key_falls_back(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, _, _, _ = handshake(client_config, server_config)
    other = dataclasses.replace(server_config, ticket_key=bytes(32))
    _, _, client_events, server_events = handshake(
        client_config, other, session=client.session_tickets[0]
    )
    assert not _complete(client_events).resumed
    assert not _complete(server_events).resumed


def test_resumption_with_mismatched_hash_falls_back(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, _, _, _ = handshake(client_config, server_config)  # SHA-256 ticket
    sc = dataclasses.replace(
        server_config, cipher_suites=(CipherSuite.TLS_AES_256_GCM_SHA384,)
    )
    _, _, client_events, _ = handshake(
        client_config, sc, session=client.session_tickets[0]
    )
    done = _complete(client_events)
    assert not done.resumed
    assert done.cipher_suite == CipherSuite.TLS_AES_256_GCM_SHA384


def test_ticket_for_another_name_is_not_offered(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    client, _, _, _ = handshake(client_config, server_config)
    sc = dataclasses.replace(
        server_config, certificates=(ca.issue("example.test", "other.test"),)
    )
    pair = make_pair(client_config, sc, "other.test", client.session_tickets[0])
    hello = split_handshake(parse_records(pair.client.data_to_send())[0][1])[0][1]
    assert not ClientHello.parse(hello).has_extension(E.PRE_SHARED_KEY)


def test_expired_ticket_is_not_offered(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, _, _, _ = handshake(client_config, server_config)
    later = time.time() + 8 * 86400
    cc = dataclasses.replace(
        client_config, now=lambda: later, verify_certificates=False
    )
    pair = make_pair(cc, server_config, session=client.session_tickets[0])
    hello = split_handshake(parse_records(pair.client.data_to_send())[0][1])[0][1]
    assert not ClientHello.parse(hello).has_extension(E.PRE_SHARED_KEY)


def test_application_data_both_ways_and_large(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    client.send(b"hello server")
    assert server.receive_data(client.data_to_send()) == [DataReceived(b"hello server")]
    big = bytes(i % 256 for i in range(100_000))
    server.send(big)
    events = client.receive_data(server.data_to_send())
    assert all(isinstance(e, DataReceived) for e in events)
    assert len(events) == 7  # 16 KiB records
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == big
    client.send(b"")  # no-op
    assert client.data_to_send() == b""


@pytest.mark.parametrize("initiator", ["client", "server"])
def test_key_update_requested(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, initiator: str
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    a, b = (client, server) if initiator == "client" else (server, client)
    a.update_keys(request_peer=True)
    a.send(b"after update")
    assert b.receive_data(a.data_to_send()) == [
        KeyUpdateReceived(update_requested=True),
        DataReceived(b"after update"),
    ]
    b.send(b"reply")
    assert a.receive_data(b.data_to_send()) == [
        KeyUpdateReceived(update_requested=False),
        DataReceived(b"reply"),
    ]
    for _ in range(3):
        a.send(b"more")
        assert b.receive_data(a.data_to_send()) == [DataReceived(b"more")]
        b.send(b"more")
        assert a.receive_data(b.data_to_send()) == [DataReceived(b"more")]


def test_key_update_not_requested(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    client.update_keys(request_peer=False)
    client.send(b"x")
    assert server.receive_data(client.data_to_send()) == [
        KeyUpdateReceived(update_requested=False),
        DataReceived(b"x"),
    ]
    assert server.data_to_send() == b""  # nothing owed in return
    server.send(b"y")
    assert client.receive_data(server.data_to_send()) == [DataReceived(b"y")]


def test_ticket_then_key_update_back_to_back(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    server.send_session_ticket()
    server.update_keys()
    server.send(b"x")
    events = client.receive_data(server.data_to_send())
    assert [type(e) for e in events] == [
        SessionTicketReceived,
        KeyUpdateReceived,
        DataReceived,
    ]
    assert server.receive_data(client.data_to_send()) == [KeyUpdateReceived(False)]


def test_crossing_key_updates(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    client.update_keys()
    server.update_keys()
    to_server, to_client = client.data_to_send(), server.data_to_send()
    assert server.receive_data(to_server) == [KeyUpdateReceived(True)]
    assert client.receive_data(to_client) == [KeyUpdateReceived(True)]
    assert server.receive_data(client.data_to_send()) == [KeyUpdateReceived(False)]
    assert client.receive_data(server.data_to_send()) == [KeyUpdateReceived(False)]
    client.send(b"c")
    server.send(b"s")
    assert server.receive_data(client.data_to_send()) == [DataReceived(b"c")]
    assert client.receive_data(server.data_to_send()) == [DataReceived(b"s")]


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_notify(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, closer: str
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    a, b = (client, server) if closer == "client" else (server, client)
    a.send(b"last words")
    a.close()
    a.close()  # idempotent
    assert b.receive_data(a.data_to_send()) == [
        DataReceived(b"last words"),
        ConnectionClosed(AlertDescription.CLOSE_NOTIFY),
    ]
    with pytest.raises(RuntimeError):
        a.send(b"more")
    # The other direction stays open until b closes too.
    b.send(b"reply")
    b.close()
    assert a.receive_data(b.data_to_send()) == [
        DataReceived(b"reply"),
        ConnectionClosed(AlertDescription.CLOSE_NOTIFY),
    ]
    assert a.receive_data(b"") == []


def test_eof_without_close_notify(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    assert client.receive_data(b"") == [ConnectionClosed(None)]
    assert client.receive_data(b"") == []
    assert server.receive_data(b"") == [ConnectionClosed(None)]


def test_eof_during_handshake(client_config: ech.ClientConfig) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    assert client.receive_data(b"") == [ConnectionClosed(None)]
    assert not client.handshake_complete


def test_fatal_alert_from_peer(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client, server, _, _ = handshake(client_config, server_config)
    server.abort(AlertDescription.INTERNAL_ERROR)
    assert client.receive_data(server.data_to_send()) == [
        ConnectionClosed(AlertDescription.INTERNAL_ERROR)
    ]


def test_internal_error_is_reported_to_peer(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    # Anything but an Alert escaping receive_data is a bug; the peer is
    # still told with internal_error before the exception propagates.
    def broken_hook(sh: ServerHello) -> ServerHello:
        raise ZeroDivisionError

    pair = make_pair(
        client_config, dataclasses.replace(server_config, server_hello_hook=broken_hook)
    )
    with pytest.raises(ZeroDivisionError):
        pair.to_server()
    assert pair.server.data_to_send() == plain_alert(AlertDescription.INTERNAL_ERROR)
    assert pair.client.receive_data(plain_alert(AlertDescription.INTERNAL_ERROR)) == [
        ConnectionClosed(AlertDescription.INTERNAL_ERROR)
    ]


def test_cleartext_alert_accepted_before_peer_switches_keys(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    # The server already reads with the client's handshake keys when the
    # client, rejecting the ServerHello, answers with a plaintext alert.
    def hook(sh: ServerHello) -> ServerHello:
        return dataclasses.replace(sh, legacy_session_id_echo=bytes(32))

    pair = make_pair(
        client_config, dataclasses.replace(server_config, server_hello_hook=hook)
    )
    pair.to_server()
    with pytest.raises(ech.Alert):
        pair.to_client()
    alert = pair.client.data_to_send()
    assert alert == plain_alert(AlertDescription.ILLEGAL_PARAMETER)
    assert pair.server.receive_data(alert) == [
        ConnectionClosed(AlertDescription.ILLEGAL_PARAMETER)
    ]


def test_receive_after_failure_is_connection_closed_error(
    client_config: ech.ClientConfig,
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    client.start()
    with pytest.raises(ech.Alert):
        client.receive_data(b"\x17\x03\x03\x00\x01x")
    with pytest.raises(ConnectionClosedError):
        client.receive_data(b"more")
    with pytest.raises(ConnectionClosedError):
        client.send(b"data")


def test_api_misuse(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    client = ech.ClientConnection(client_config, "example.test")
    with pytest.raises(RuntimeError):
        client.send(b"too early")
    with pytest.raises(RuntimeError):
        client.update_keys()
    client.start()
    with pytest.raises(RuntimeError):
        client.start()
    with pytest.raises(ValueError, match="server_name"):
        ech.ClientConnection(client_config, None)
    server = ech.ServerConnection(server_config)
    with pytest.raises(RuntimeError):
        server.send_session_ticket()


def test_config_validation(ca: TestCA, leaf: ech.CertifiedKey) -> None:
    with pytest.raises(ValueError, match="empty"):
        ech.ClientConfig(cipher_suites=())
    with pytest.raises(ValueError, match="subset"):
        ech.ClientConfig(
            groups=(NamedGroup.X25519,), key_share_groups=(NamedGroup.SECP256R1,)
        )
    with pytest.raises(ValueError, match="certificate"):
        ech.ServerConfig(certificates=())
    with pytest.raises(ValueError, match="ticket_lifetime"):
        ech.ServerConfig(certificates=(leaf,), ticket_lifetime=604801)
    with pytest.raises(ValueError, match="ticket_key"):
        ech.ServerConfig(certificates=(leaf,), ticket_key=bytes(16))


def test_compatibility_mode_off(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, compatibility_mode=False)
    pair = make_pair(cc, server_config)
    pair.pump()
    assert pair.client.handshake_complete
    for _, data in pair.log:
        assert ContentType.CHANGE_CIPHER_SPEC not in [t for t, _ in parse_records(data)]
    hello = split_handshake(parse_records(pair.log[0][1])[0][1])[0][1]
    assert ClientHello.parse(hello).legacy_session_id == b""


def test_compatibility_mode_sends_change_cipher_spec_once(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    pair = make_pair(client_config, server_config)
    pair.pump()
    ccs = [
        (who, i)
        for who, data in pair.log
        for i, (t, _) in enumerate(parse_records(data))
        if t == ContentType.CHANGE_CIPHER_SPEC
    ]
    # The server's right after its ServerHello; the client's before its Finished.
    assert ccs == [("server", 1), ("client", 0)]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_ip_address_server_name(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    address: str,
) -> None:
    sc = dataclasses.replace(server_config, certificates=(ca.issue(address),))
    pair = make_pair(client_config, sc, address)
    hello = split_handshake(parse_records(pair.client.data_to_send())[0][1])[0][1]
    parsed = ClientHello.parse(hello)
    assert not parsed.has_extension(E.SERVER_NAME)  # RFC 6066 §3
    pair = make_pair(client_config, sc, address)
    pair.pump()
    assert _complete(pair.client_events).server_name == address
    assert _complete(pair.server_events).server_name is None


def test_no_verification_without_server_name(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, verify_certificates=False)
    _, _, client_events, _ = handshake(cc, server_config, server_name=None)
    assert _complete(client_events).server_name is None


def test_record_padding_end_to_end(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    cc = dataclasses.replace(client_config, record_padding=lambda _t, n: 256 - n % 256)
    sc = dataclasses.replace(server_config, record_padding=lambda _t, n: 256 - n % 256)
    pair = make_pair(cc, sc)
    pair.pump()
    assert pair.client.handshake_complete
    pair.client.send(b"x")
    data = pair.client.data_to_send()
    ((_, fragment),) = parse_records(data)
    assert len(fragment) == 256 + 1 + 16 - 1 + 1  # content 1 + pad 255 + type 1 + tag
    assert pair.server.receive_data(data) == [DataReceived(b"x")]


# CertificateRequest --------------------------------------------------------------


def test_certificate_request_answered_with_empty_certificate(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    """A server asking for a certificate (``client_ca``), a client without
    one: an empty Certificate, and the handshake goes on unauthenticated
    (RFC 8446 §4.4.2.4). More in test_client_auth.py."""
    sc = dataclasses.replace(server_config, client_ca=(ca.certificate,))
    pair = make_pair(client_config, sc)
    pair.pump()
    server = pair.server
    assert server.state is ServerState.CONNECTED
    assert server.handshake.client_certificate == Certificate(b"", ())
    assert _complete(pair.server_events).client_certificate_chain == ()
    assert _core(_complete(pair.client_events)) == _core(_complete(pair.server_events))
    pair.client.send(b"anonymous")
    assert server.receive_data(pair.client.data_to_send()) == [
        DataReceived(b"anonymous")
    ]
    # Both sides put the client's Certificate in the resumption secret.
    (ticket,) = pair.client.session_tickets
    _, _, client_events, _ = handshake(client_config, sc, session=ticket)
    assert _complete(client_events).resumed


# determinism ---------------------------------------------------------------------


def _deterministic_run(
    ca: TestCA,
    leaf: ech.CertifiedKey,
    seed: bytes,
    now: float,
    *,
    hello_retry: bool = False,
) -> list[tuple[str, bytes]]:
    cc, sc = deterministic_configs(ca.certificate, leaf, seed, now)
    if hello_retry:
        sc = dataclasses.replace(sc, groups=(NamedGroup.SECP256R1,))
    pair = make_pair(cc, sc)
    pair.pump()
    ticket = pair.client.session_tickets[0]
    pair.client.send(b"ping")
    pair.server.send(b"pong")
    pair.client.update_keys()
    pair.pump()
    pair.client.close()
    pair.server.close()
    pair.pump()
    resumed = make_pair(cc, sc, session=ticket)
    resumed.pump()
    return pair.log + resumed.log


@pytest.mark.parametrize("hello_retry", [False, True])
def test_deterministic_output_with_injected_randomness(
    ca: TestCA, ed25519_leaf: ech.CertifiedKey, hello_retry: bool
) -> None:
    now = time.time()
    first = _deterministic_run(ca, ed25519_leaf, b"seed", now, hello_retry=hello_retry)
    second = _deterministic_run(ca, ed25519_leaf, b"seed", now, hello_retry=hello_retry)
    assert first == second
    other = _deterministic_run(ca, ed25519_leaf, b"other", now, hello_retry=hello_retry)
    assert other != first
    assert len(other) == len(first)
