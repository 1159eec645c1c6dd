"""Whole ECH handshakes between in-memory clients and servers (RFC 9849 §6-§7).

What no test here can show (ECH-62, ECH-85, ECH-87, the security notes)
is listed, with why, in ``docs/conformance.rst``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes

import ech
import ech.client.handshake
import ech.confirmation
import ech.server.handshake
from ech.errors import (
    BadCertificate,
    ConnectionClosedError,
    DecodeError,
    ECHRejectedError,
    IllegalParameter,
    UnsupportedExtension,
)
from ech.events import (
    ConnectionClosed,
    ECHRejected,
    ECHStatus,
    Event,
    HandshakeComplete,
    SessionTicketReceived,
)
from ech.keys import ECHKey
from ech.server.config import DEFAULT_SERVER_GROUPS
from ech.server.ech import index_keys, open_client_hello, open_second_client_hello
from ech.tls import extensions as ext
from ech.tls.enums import AlertDescription, CipherSuite, ContentType, ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello, EncryptedExtensions, ServerHello
from tests.helpers import (
    build_record,
    expect_encrypted_alert,
    expect_plain_alert,
    join_records,
    parse_records,
)
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    PUBLIC_NAME,
    ch_frame,
    client_config,
    client_hello_in,
    config_list,
    ech_key,
    ech_offer,
    ech_pair,
    expected_confirmation,
    hrr_client_config,
    hrr_server_config,
    message_hash,
    open_outer,
    pki,
    pump_to_end,
    replace_server_hello,
    server_config,
    server_hello_in,
    sh_frame,
    zero_tail,
)

E = ExtensionType
SUITES = [
    pytest.param(CipherSuite.TLS_AES_128_GCM_SHA256, hashes.SHA256(), id="sha256"),
    pytest.param(CipherSuite.TLS_AES_256_GCM_SHA384, hashes.SHA384(), id="sha384"),
]


def complete(events: list[Event]) -> HandshakeComplete:
    (done,) = [e for e in events if isinstance(e, HandshakeComplete)]
    return done


def rejected(events: list[Event]) -> ECHRejected:
    (event,) = [e for e in events if isinstance(e, ECHRejected)]
    return event


def set_hrr_confirmation(body: bytes) -> Callable[[ServerHello], ServerHello]:
    def edit(hrr: ServerHello) -> ServerHello:
        assert hrr.is_hello_retry_request
        return hrr.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body))

    return edit


# acceptance ---------------------------------------------------------------------------


@pytest.mark.requirement("ECH-57", "ECH-80")
def test_ech_accepted() -> None:
    """Both sides accept; CHI's name is used and authenticated (ECH-57, ECH-80)."""
    key = ech_key()
    sc = server_config(key, certificates=(pki().inner_only,))
    pair = ech_pair(client_config(), sc, config_list(key))
    pair.pump()
    for events in (pair.client_events, pair.server_events):
        done = complete(events)
        assert done.ech_status is ECHStatus.ACCEPTED
        assert done.server_name == INNER_NAME
        assert done.outer_server_name == PUBLIC_NAME
    assert not pair.client.retry_configs


@pytest.mark.requirement("ECH-54", "ECH-55", "ECH-88")
@pytest.mark.parametrize(("suite", "algorithm"), SUITES)
def test_accept_confirmation_as_specified(
    suite: CipherSuite, algorithm: hashes.HashAlgorithm
) -> None:
    """ECH-55: recomputed from HKDF primitives over CHI ‖ SH(zeroed)."""
    key = ech_key()
    pair = ech_pair(
        client_config(), server_config(key, cipher_suites=(suite,)), config_list(key)
    )
    outer = client_hello_in(pair.to_server())
    inner, _ = open_outer(key, outer)
    sh = server_hello_in(pair.to_client())
    expected = expected_confirmation(
        algorithm,
        inner.random,
        b"ech accept confirmation",
        ch_frame(inner) + sh_frame(zero_tail(sh)),
    )
    assert sh.random[24:] == expected
    # Over the outer transcript it would differ.
    wrong = expected_confirmation(
        algorithm,
        inner.random,
        b"ech accept confirmation",
        ch_frame(outer) + sh_frame(zero_tail(sh)),
    )
    assert wrong != expected
    assert pair.client.ech_status is ECHStatus.ACCEPTED
    pair.pump()
    assert complete(pair.client_events).cipher_suite == suite


@pytest.mark.requirement("ECH-21", "ECH-23", "ECH-43", "ECH-55", "ECH-56", "ECH-58")
@pytest.mark.parametrize(("suite", "algorithm"), SUITES)
def test_hrr_confirmations_and_second_hello(
    suite: CipherSuite, algorithm: hashes.HashAlgorithm
) -> None:
    """ECH-23, ECH-56 (message_hash(CHI1) ‖ HRR), ECH-58 (CH2), ECH-55 after HRR."""
    key = ech_key()
    cc = hrr_client_config(compatibility_mode=False)
    pair = ech_pair(
        cc, hrr_server_config(key, cipher_suites=(suite,)), config_list(key)
    )
    outer1 = client_hello_in(pair.to_server())
    inner1, accepted = open_outer(key, outer1)
    hrr = server_hello_in(pair.to_client())
    assert hrr.is_hello_retry_request
    confirmation = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
    zeroed = hrr.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, bytes(8)))
    assert confirmation == expected_confirmation(
        algorithm,
        inner1.random,
        b"hrr ech accept confirmation",
        message_hash(algorithm, inner1) + sh_frame(zeroed),
    )
    outer2 = client_hello_in(pair.to_server())
    first, second = ech_offer(outer1), ech_offer(outer2)
    assert second.enc == b""
    assert (second.cipher_suite, second.config_id) == (
        first.cipher_suite,
        first.config_id,
    )
    assert outer2.random == outer1.random
    # The same HPKE context opens CH2 (next sequence number).
    inner2 = open_second_client_hello(outer2, accepted)
    assert inner2.random == inner1.random
    assert inner2.extension(E.ENCRYPTED_CLIENT_HELLO) == b"\x01"
    sh = server_hello_in(pair.to_client())
    transcript = (
        message_hash(algorithm, inner1)
        + sh_frame(hrr)
        + ch_frame(inner2)
        + sh_frame(zero_tail(sh))
    )
    assert sh.random[24:] == expected_confirmation(
        algorithm, inner2.random, b"ech accept confirmation", transcript
    )
    pair.pump()
    done = complete(pair.client_events)
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.hello_retry
    assert complete(pair.server_events).ech_status is ECHStatus.ACCEPTED


@pytest.mark.requirement("ECH-54")
def test_confirmation_matches_uses_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert ech.confirmation.confirmation_matches(b"12345678", b"12345678")
    assert not ech.confirmation.confirmation_matches(b"12345678", b"12345670")
    assert calls == [(b"12345678", b"12345678"), (b"12345678", b"12345670")]


@pytest.mark.requirement("ECH-54")
@pytest.mark.parametrize("with_hrr", [False, True], ids=["sh", "hrr"])
def test_client_decides_with_confirmation_matches(
    monkeypatch: pytest.MonkeyPatch, with_hrr: bool
) -> None:
    """Every acceptance decision (SH, and HRR) goes through the constant-time check."""
    calls: list[tuple[bytes, bytes]] = []
    real = ech.confirmation.confirmation_matches

    def spy(expected: bytes, received: bytes) -> bool:
        calls.append((expected, received))
        return real(expected, received)

    monkeypatch.setattr(ech.client.handshake, "confirmation_matches", spy)
    key = ech_key()
    if with_hrr:
        pair = ech_pair(hrr_client_config(), hrr_server_config(key), config_list(key))
    else:
        pair = ech_pair(client_config(), server_config(key), config_list(key))
    pair.pump()
    assert pair.client.ech_status is ECHStatus.ACCEPTED
    assert len(calls) == (2 if with_hrr else 1)
    assert all(len(a) == len(b) == 8 and a == b for a, b in calls)


@pytest.mark.requirement("ECH-44", "ECH-57", "ECH-102")
def test_ech_and_resumption_use_the_inner_psk() -> None:
    key = ech_key()
    sc = server_config(key)
    first = ech_pair(client_config(), sc, config_list(key))
    first.pump()
    ticket = first.client.session_tickets[0]
    pair = ech_pair(client_config(), sc, config_list(key), session=ticket)
    pair.pump()
    for events in (pair.client_events, pair.server_events):
        done = complete(events)
        assert done.resumed
        assert done.ech_status is ECHStatus.ACCEPTED


@pytest.mark.requirement("ECH-78", "ECH-83")
def test_grease_versions_in_inner_with_hrr() -> None:
    key = ech_key()
    pair = ech_pair(hrr_client_config(), hrr_server_config(key), config_list(key))
    pair.pump()
    assert complete(pair.server_events).hello_retry


# server misbehaviour after acceptance -------------------------------------------------


@pytest.mark.requirement("ECH-22")
def test_ech_client_retry_configs_after_accept() -> None:
    """ECH-Client-RetryConfigs-AfterAccept: unsupported_extension."""
    key = ech_key()

    def add_retry_configs(ee: EncryptedExtensions) -> EncryptedExtensions:
        retry = Extension(E.ENCRYPTED_CLIENT_HELLO, config_list(key).encode())
        return EncryptedExtensions((*ee.extensions, retry))

    sc = server_config(key, encrypted_extensions_hook=add_retry_configs)
    pair = ech_pair(client_config(), sc, config_list(key))
    pair.to_server()
    expect_encrypted_alert(
        pair.client, pair.server.data_to_send(), UnsupportedExtension, pair.server
    )


@pytest.mark.requirement("ECH-54")
def test_ech_client_hrr_bad_confirmation_length() -> None:
    """ECH-Client-HRR-BadConfirmationLength: decode_error."""
    key = ech_key()
    pair = ech_pair(hrr_client_config(), hrr_server_config(key), config_list(key))
    pair.to_server()
    data = replace_server_hello(
        pair.server.data_to_send(), set_hrr_confirmation(bytes(7))
    )
    expect_plain_alert(pair.client, data, DecodeError)


@pytest.mark.requirement("ECH-59")
def test_ech_client_hrr_missing_server_hello_confirmation() -> None:
    """ECH-Client-HelloRetryRequest-MissingServerHelloConfirmation."""
    key = ech_key()
    cc = hrr_client_config(compatibility_mode=False)
    pair = ech_pair(cc, hrr_server_config(key), config_list(key))
    pair.to_server()
    pair.to_client()
    pair.to_server()

    def break_confirmation(sh: ServerHello) -> ServerHello:
        return sh.with_random(sh.random[:31] + bytes([sh.random[31] ^ 1]))

    data = replace_server_hello(pair.server.data_to_send(), break_confirmation)
    expect_plain_alert(pair.client, data, IllegalParameter)


@pytest.mark.requirement("ECH-54", "ECH-59")
def test_hrr_without_confirmation_means_rejected() -> None:
    """An HRR with no ECH extension rejects; the SH cannot then accept."""
    key = ech_key()
    cc = hrr_client_config(compatibility_mode=False)
    pair = ech_pair(cc, hrr_server_config(key), config_list(key))
    pair.to_server()

    def strip(hrr: ServerHello) -> ServerHello:
        return hrr.without_extension(E.ENCRYPTED_CLIENT_HELLO)

    pair.client.receive_data(replace_server_hello(pair.server.data_to_send(), strip))
    pair.to_server()
    with pytest.raises(ech.Alert):
        pair.to_client()
    assert pair.client.ech_status is ECHStatus.REJECTED


@pytest.mark.requirement("ECH-54")
def test_wrong_server_hello_confirmation_means_rejected() -> None:
    key = ech_key()
    pair = ech_pair(client_config(), server_config(key), config_list(key))
    pair.to_server()

    def break_confirmation(sh: ServerHello) -> ServerHello:
        return sh.with_random(sh.random[:31] + bytes([sh.random[31] ^ 1]))

    data = replace_server_hello(pair.server.data_to_send(), break_confirmation)
    with pytest.raises(ech.Alert):
        pair.client.receive_data(data)
    assert pair.client.ech_status is ECHStatus.REJECTED


# rejection ----------------------------------------------------------------------------


@pytest.mark.requirement("ECH-24", "ECH-63", "ECH-66", "ECH-81", "ECH-82")
def test_ech_server_decline() -> None:
    """ECH-Server-Decline: wrong key ⇒ outer handshake, retry_configs, ech_required."""
    client_key, server_key = ech_key(7), ech_key(7)
    pair = ech_pair(client_config(), server_config(server_key), config_list(client_key))
    pump_to_end(pair)
    event = rejected(pair.client_events)
    assert event.retry_configs == config_list(server_key)
    assert event.public_name == PUBLIC_NAME
    assert pair.client.ech_status is ECHStatus.REJECTED
    assert not pair.client.handshake_complete
    assert not any(isinstance(e, HandshakeComplete) for e in pair.client_events)
    # ECH-66: tickets and the connection itself are never usable.
    assert pair.client.session_tickets == []
    assert not any(isinstance(e, SessionTicketReceived) for e in pair.client_events)
    with pytest.raises(ConnectionClosedError):
        pair.client.send(b"GET / HTTP/1.1\r\n")
    # ECH-24, ECH-63: the server saw ech_required after a complete outer handshake.
    server_done = complete(pair.server_events)
    assert server_done.ech_status is ECHStatus.REJECTED
    assert server_done.server_name == PUBLIC_NAME
    assert pair.server_events[-1] == ConnectionClosed(AlertDescription.ECH_REQUIRED)


@pytest.mark.requirement("ECH-64")
def test_ech_client_reject_no_retry_configs() -> None:
    """ECH-Client-Reject-NoRetryConfigs: ECH securely disabled."""
    pair = ech_pair(client_config(), server_config(), config_list(ech_key()))
    pump_to_end(pair)
    event = rejected(pair.client_events)
    assert event.retry_configs is None
    assert not ECHRejectedError(event.retry_configs, event.public_name).can_retry
    assert pair.server_events[-1] == ConnectionClosed(AlertDescription.ECH_REQUIRED)


@pytest.mark.requirement("ECH-64", "ECH-67", "ECH-86")
def test_retry_with_retry_configs_on_a_new_connection() -> None:
    """ECH-64; ECH-86: the server keeps an old key it no longer advertises."""
    old, new = ech_key(1), ech_key(2)
    sc = server_config(old, new, ech_retry_configs=config_list(new))
    stale = ech_key(1)
    first = ech_pair(client_config(), sc, config_list(stale))
    pump_to_end(first)
    event = rejected(first.client_events)
    assert event.retry_configs == config_list(new)
    assert ECHRejectedError(event.retry_configs, event.public_name).can_retry
    retry = ech_pair(client_config(), sc, event.retry_configs)
    retry.pump()
    assert complete(retry.client_events).ech_status is ECHStatus.ACCEPTED
    # The old key still works for clients holding its config.
    again = ech_pair(client_config(), sc, config_list(old))
    again.pump()
    assert complete(again.client_events).ech_status is ECHStatus.ACCEPTED
    # A later rejection is reported afresh (no single-retry state).
    third = ech_pair(client_config(), sc, config_list(stale))
    pump_to_end(third)
    assert rejected(third.client_events).retry_configs == config_list(new)


@pytest.mark.requirement("ECH-81", "ECH-84")
def test_rejected_ech_with_hrr(monkeypatch: pytest.MonkeyPatch) -> None:
    """ECH-81 (8 random bytes in HRR), ECH-84 (CH2 not decrypted)."""

    def must_not_run(*args: object, **kwargs: object) -> ClientHello:
        raise AssertionError("CH2 decrypted after ECH was rejected")

    monkeypatch.setattr(ech.server.handshake, "open_second_client_hello", must_not_run)
    server_key = ech_key(7)
    pair = ech_pair(
        hrr_client_config(), hrr_server_config(server_key), config_list(ech_key(7))
    )
    pair.to_server()
    hrr = server_hello_in(pair.to_client())
    confirmation = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
    assert confirmation is not None
    assert len(confirmation) == 8
    assert pair.client.ech_status is ECHStatus.OFFERED
    outer2 = client_hello_in(pair.to_server())
    assert ech_offer(outer2).enc == b""
    pump_to_end(pair)
    assert rejected(pair.client_events).retry_configs == config_list(server_key)
    assert complete(pair.server_events).hello_retry


@pytest.mark.requirement("ECH-60", "ECH-65")
def test_rejection_authenticates_public_name() -> None:
    """A certificate only for the inner name fails; one for public_name succeeds."""
    server_key = ech_key(7)
    sc = server_config(server_key, certificates=(pki().inner_only,))
    pair = ech_pair(client_config(), sc, config_list(ech_key(7)))
    pair.to_server()
    expect_encrypted_alert(
        pair.client, pair.server.data_to_send(), BadCertificate, pair.server
    )
    assert not any(isinstance(e, ECHRejected) for e in pair.client_events)

    sc = server_config(server_key, certificates=(pki().public_only,))
    pair = ech_pair(client_config(), sc, config_list(ech_key(7)))
    pump_to_end(pair)
    assert rejected(pair.client_events).public_name == PUBLIC_NAME


@pytest.mark.requirement("ECH-60")
def test_unauthenticated_retry_configs_are_not_exposed() -> None:
    """ECH-60: a failed rejected handshake must not yield retry configs.

    ``ClientConnection.retry_configs`` is documented as "the server's
    retry_configs after a rejection (authenticated)".
    """
    sc = server_config(ech_key(7), certificates=(pki().inner_only,))
    pair = ech_pair(client_config(), sc, config_list(ech_key(7)))
    pair.to_server()
    with pytest.raises(BadCertificate):
        pair.to_client()
    assert pair.client.retry_configs is None


@pytest.mark.requirement("ECH-61")
def test_malformed_retry_configs_is_decode_error() -> None:
    def garble(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, b"\x00\x05abc"))

    sc = server_config(ech_key(7), encrypted_extensions_hook=garble)
    pair = ech_pair(client_config(), sc, config_list(ech_key(7)))
    pair.to_server()
    expect_encrypted_alert(
        pair.client, pair.server.data_to_send(), DecodeError, pair.server
    )


@pytest.mark.requirement("ECH-49")
def test_ech_client_reject_resume_inner_session() -> None:
    """ECH-Client-Reject-ResumeInnerSession-TLS13: SH PSK ⇒ illegal_parameter."""
    key = ech_key(7)
    sc = server_config(key)
    ticket = ech_pair_ticket(sc, key)

    def select_psk(sh: ServerHello) -> ServerHello:
        return sh.with_extension(Extension(E.PRE_SHARED_KEY, ext.encode_u16(0)))

    rejecting = server_config(ech_key(7), server_hello_hook=select_psk)
    pair = ech_pair(client_config(), rejecting, config_list(key), session=ticket)
    pair.to_server()
    expect_plain_alert(pair.client, pair.server.data_to_send(), IllegalParameter)


@pytest.mark.requirement("ECH-44", "ECH-102")
def test_rejecting_server_cannot_resume_the_grease_psk() -> None:
    key = ech_key(7)
    sc = server_config(key)
    ticket = ech_pair_ticket(sc, key)
    other = ech_key(7)
    rejecting = server_config(other, ticket_key=sc.ticket_key)
    pair = ech_pair(client_config(), rejecting, config_list(key), session=ticket)
    pump_to_end(pair)
    assert not complete(pair.server_events).resumed
    assert rejected(pair.client_events).retry_configs == config_list(other)


def ech_pair_ticket(sc: ech.ServerConfig, key: ECHKey) -> ech.SessionTicket:
    pair = ech_pair(client_config(), sc, config_list(key))
    pair.pump()
    return pair.client.session_tickets[0]


# GREASE -------------------------------------------------------------------------------


@pytest.mark.requirement("ECH-71", "ECH-81")
def test_ech_grease_client_retry_configs_ignored() -> None:
    """ECH-GREASE-Client-RetryConfigs-ignored: sent by the server, dropped."""
    pair = ech_pair(client_config(ech_grease=True), server_config(ech_key()), None)
    pair.pump()
    done = complete(pair.client_events)
    assert done.ech_status is ECHStatus.GREASE
    assert done.server_name == INNER_NAME
    assert pair.client.retry_configs is None
    assert pair.server.ech_status is ECHStatus.REJECTED


@pytest.mark.requirement("ECH-71")
def test_grease_client_checks_retry_configs_syntax() -> None:
    def garble(ee: EncryptedExtensions) -> EncryptedExtensions:
        return ee.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, b"\xff"))

    sc = server_config(ech_key(), encrypted_extensions_hook=garble)
    pair = ech_pair(client_config(ech_grease=True), sc, None)
    pair.to_server()
    expect_encrypted_alert(
        pair.client, pair.server.data_to_send(), DecodeError, pair.server
    )


@pytest.mark.requirement("ECH-70", "ECH-71")
def test_ech_grease_client_tls13_hello_retry_request() -> None:
    """ECH-GREASE-Client-TLS13-HelloRetryRequest: the same extension in CH2."""
    pair = ech_pair(
        hrr_client_config(ech_grease=True), hrr_server_config(ech_key()), None
    )
    first = client_hello_in(pair.to_server())
    hrr = server_hello_in(pair.to_client())
    assert hrr.extension(E.ENCRYPTED_CLIENT_HELLO) is not None  # ignored (ECH-71)
    second = client_hello_in(pair.to_server())
    assert second.extension(E.ENCRYPTED_CLIENT_HELLO) == first.extension(
        E.ENCRYPTED_CLIENT_HELLO
    )
    pair.pump()
    done = complete(pair.client_events)
    assert done.hello_retry
    assert done.ech_status is ECHStatus.GREASE


@pytest.mark.requirement("ECH-71")
def test_grease_client_checks_hrr_confirmation_syntax() -> None:
    pair = ech_pair(hrr_client_config(ech_grease=True), hrr_server_config(), None)
    pair.to_server()
    data = replace_server_hello(
        pair.server.data_to_send(), set_hrr_confirmation(bytes(9))
    )
    expect_plain_alert(pair.client, data, DecodeError)


@pytest.mark.requirement("ECH-72")
def test_grease_client_resumes() -> None:
    sc = server_config(ech_key())
    first = ech_pair(client_config(ech_grease=True), sc, None)
    first.pump()
    pair = ech_pair(
        client_config(ech_grease=True),
        sc,
        None,
        session=first.client.session_tickets[0],
    )
    pair.pump()
    assert complete(pair.client_events).resumed


@pytest.mark.requirement("ECH-74")
def test_no_ech_extension_is_a_plain_handshake() -> None:
    pair = ech_pair(client_config(), server_config(ech_key()), None)
    pair.pump()
    assert complete(pair.server_events).ech_status is ECHStatus.NOT_OFFERED
    assert complete(pair.client_events).ech_status is ECHStatus.NOT_OFFERED


@pytest.mark.requirement("ECH-53")
def test_record_padding_with_ech() -> None:
    """ECH-53: both sides can pad protected records (here to 256 bytes)."""

    def policy(_content_type: int, length: int) -> int:
        return 256 - length % 256

    key = ech_key()
    pair = ech_pair(
        client_config(record_padding=policy),
        server_config(key, record_padding=policy),
        config_list(key),
    )
    pair.pump()
    assert complete(pair.client_events).ech_status is ECHStatus.ACCEPTED
    protected = [
        fragment
        for _, data in pair.log
        for content_type, fragment in parse_records(data)
        if content_type == ContentType.APPLICATION_DATA
    ]
    assert protected
    assert all(len(f) % 256 == 17 for f in protected)


# split mode: a relay decrypts, a backend confirms (§7.1, §7.2) ------------------------


def relay_to_backend(
    client: ech.ClientConnection, backend: ech.ServerConnection, key: ECHKey
) -> tuple[list[Event], list[ClientHello]]:
    """A client-facing server that decrypts ClientHellos and forwards the rest."""
    events: list[Event] = []
    forwarded: list[ClientHello] = []
    accepted = None
    for _ in range(20):
        data = client.data_to_send()
        records = []
        for content_type, fragment in parse_records(data):
            if content_type == ContentType.HANDSHAKE:
                outer = client_hello_in(build_record(content_type, fragment))
                if accepted is None:
                    offer = ech_offer(outer)
                    opened = open_client_hello(outer, offer, index_keys([key]))
                    assert opened is not None
                    inner, accepted = opened
                else:
                    inner = open_second_client_hello(outer, accepted)
                forwarded.append(inner)
                fragment = ch_frame(inner)
            records.append((content_type, fragment))
        if records:
            backend.receive_data(join_records(records))
        back = backend.data_to_send()
        if back:
            events.extend(client.receive_data(back))
        if not data and not back:
            return events, forwarded
    raise AssertionError("never went quiet")


@pytest.mark.requirement("ECH-80", "ECH-88", "ECH-90")
@pytest.mark.parametrize("with_hrr", [False, True], ids=["sh", "hrr"])
def test_split_mode_backend_confirms(with_hrr: bool) -> None:
    """ECH-80, ECH-88, ECH-90: the client accepts the backend's confirmations."""
    key = ech_key()
    cc = hrr_client_config() if with_hrr else client_config()
    backend_config = ech.ServerConfig(
        certificates=(pki().inner_only,),
        ech_backend=True,
        groups=(ech.NamedGroup.SECP256R1,) if with_hrr else DEFAULT_SERVER_GROUPS,
    )
    client = ech.ClientConnection(cc, INNER_NAME, ech_configs=config_list(key))
    client.start()
    backend = ech.ServerConnection(backend_config)
    events, forwarded = relay_to_backend(client, backend, key)
    done = complete(events)
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.hello_retry is with_hrr
    assert backend.ech_status is ECHStatus.ACCEPTED
    assert len(forwarded) == (2 if with_hrr else 1)
    assert all(h.extension(E.ENCRYPTED_CLIENT_HELLO) == b"\x01" for h in forwarded)


@pytest.mark.requirement("ECH-91")
@pytest.mark.parametrize("offer", ["ech", "grease", "none"])
def test_hrr_cookie_only_without_ech(offer: str) -> None:
    """A cleartext cookie could tell backends apart (§10.8): none when ECH is offered.

    Without ECH the same server does send one, so the test would see a cookie
    that leaked into the ECH case.
    """
    key = ech_key()
    configs = config_list(key) if offer == "ech" else None
    cc = hrr_client_config(ech_grease=offer == "grease")
    sc = hrr_server_config(key, hello_retry_cookie=True)
    pair = ech_pair(cc, sc, configs)
    pair.to_server()
    hrr = server_hello_in(pair.to_client())
    assert hrr.is_hello_retry_request
    assert (hrr.extension(E.COOKIE) is not None) == (offer == "none")
