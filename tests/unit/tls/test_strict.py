"""Exact behaviour on bad input (RFC 8446, RFC 6066), each case naming its rule.

Every test asserts the alert class raised *and* the alert on the wire; a
case that must be tolerated asserts the handshake completes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pytest

import ech
from ech.errors import (
    IllegalParameter,
    ProtocolVersion,
    RecordOverflow,
    UnexpectedMessage,
)
from ech.events import HandshakeComplete
from ech.tls import extensions as ext
from ech.tls.connection import MAX_CCS_IN_A_ROW
from ech.tls.enums import ContentType, ExtensionType, NamedGroup
from ech.tls.extensions import Extension, KeyShareEntry
from ech.tls.groups import generate_key_share
from ech.tls.messages import ClientHello, ServerHello
from ech.tls.records import MAX_CIPHERTEXT, MAX_PLAINTEXT
from ech.tls.wire import record_header
from tests.helpers import (
    build_record,
    expect_encrypted_alert,
    expect_plain_alert,
    handshake,
    make_pair,
    parse_records,
    plain_alert,
)
from tests.unit.ech import ech_helpers as eh

E = ExtensionType
G = NamedGroup
CCS = build_record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
Hook = Callable[[ClientHello], ClientHello]


def _hook(config: ech.ClientConfig, edit: Hook) -> ech.ClientConfig:
    return dataclasses.replace(config, client_hello_hook=edit)


def _completes(cc: ech.ClientConfig, sc: ech.ServerConfig) -> None:
    client, server, client_events, _ = handshake(cc, sc)
    assert client.handshake_complete
    assert server.handshake_complete
    assert any(isinstance(e, HandshakeComplete) for e in client_events)


# legacy_version (RFC 8446 §D.5) -----------------------------------------------------


@pytest.mark.parametrize("version", [0x0300, 0x0200, 0x0002, 0x0000])
def test_client_hello_legacy_version_ssl3_or_older_is_protocol_version(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, version: int
) -> None:
    """§D.5: "Any endpoint receiving a Hello message with
    ClientHello.legacy_version ... set to 0x0300 MUST abort the handshake
    with a protocol_version alert" (and older versions with it)."""
    cc = _hook(
        client_config, lambda ch: dataclasses.replace(ch, legacy_version=version)
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), ProtocolVersion)


@pytest.mark.parametrize("version", [0x0301, 0x0302, 0x0303, 0x0304])
def test_client_hello_legacy_version_above_ssl3_is_not_negotiated_on(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, version: int
) -> None:
    """§4.2.1: with supported_versions, "servers MUST NOT use the
    ClientHello.legacy_version value for version negotiation"."""
    cc = _hook(
        client_config, lambda ch: dataclasses.replace(ch, legacy_version=version)
    )
    _completes(cc, server_config)


def test_ech_client_hello_legacy_version_ssl3_is_protocol_version() -> None:
    """With ECH both hellos carry it (ClientHelloOuter copies the field) and
    both are checked: the outer as received, the inner once decrypted."""
    key = eh.ech_key()
    cc = eh.client_config(
        client_hello_hook=lambda ch: dataclasses.replace(ch, legacy_version=0x0300)
    )
    pair = eh.ech_pair(cc, eh.server_config(key), eh.config_list(key))
    expect_plain_alert(pair.server, pair.client.data_to_send(), ProtocolVersion)


def test_server_hello_legacy_version_ssl3_is_protocol_version(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§D.5, the ServerHello side."""

    def hook(sh: ServerHello) -> ServerHello:
        return dataclasses.replace(sh, legacy_version=0x0300)

    pair = make_pair(
        client_config, dataclasses.replace(server_config, server_hello_hook=hook)
    )
    pair.to_server()
    expect_plain_alert(pair.client, pair.server.data_to_send(), ProtocolVersion)


# key_share (RFC 8446 §4.2.8) ---------------------------------------------------------


def _with_shares(*entries: KeyShareEntry) -> Hook:
    def edit(ch: ClientHello) -> ClientHello:
        return ch.with_extension(
            Extension(E.KEY_SHARE, ext.encode_client_key_shares(entries))
        )

    return edit


@pytest.mark.parametrize(
    "group", [G.X25519, G.X448, G.SECP256R1, G.SECP521R1, G.FFDHE2048], ids=str
)
def test_share_of_the_wrong_length_is_illegal_parameter_even_if_not_chosen(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, group: G
) -> None:
    """§4.2.8: each KeyShareEntry holds a value for its group; a share whose
    length is wrong for its group is illegal_parameter ("inconsistent with
    other fields", §6.2), not handshake_failure, even beside a good one."""
    good = KeyShareEntry(G.X25519, generate_key_share(G.X25519).public)
    bad = KeyShareEntry(group, generate_key_share(group).public + b"\x00")
    entries = [bad] if group == G.X25519 else [good, bad]
    cc = dataclasses.replace(
        client_config,
        groups=tuple(dict.fromkeys((G.X25519, group))),
        key_share_groups=(G.X25519,),
        client_hello_hook=_with_shares(*entries),
    )
    pair = make_pair(cc, server_config)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


def test_share_for_a_group_not_in_supported_groups_is_illegal_parameter(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§4.2.8: "Servers MAY check for violations of these rules and abort
    the handshake with an illegal_parameter alert" — we do, known or not."""
    share = generate_key_share(G.X25519)
    for group in (G.SECP256R1, 0x7A7A):
        cc = dataclasses.replace(
            client_config,
            groups=(G.X25519,),
            key_share_groups=(G.X25519,),
            client_hello_hook=_with_shares(
                KeyShareEntry(G.X25519, share.public),
                KeyShareEntry(group, b"\x01" * 65),
            ),
        )
        pair = make_pair(cc, server_config)
        expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


# what must be ignored ----------------------------------------------------------------


def test_unknown_groups_in_supported_groups_and_key_share_are_ignored(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """Unknown groups (GREASE, future ones) with shares of any size are
    skipped: the server answers the share it knows."""
    share = generate_key_share(G.X25519)

    def edit(ch: ClientHello) -> ClientHello:
        groups = (0x0A0A, 0x1234, G.X25519)
        shares = (
            KeyShareEntry(0x0A0A, b"\x00"),
            KeyShareEntry(0x1234, os.urandom(3000)),
            KeyShareEntry(G.X25519, share.public),
        )
        return ch.with_extension(
            Extension(E.SUPPORTED_GROUPS, ext.encode_u16_vector(groups))
        ).with_extension(Extension(E.KEY_SHARE, ext.encode_client_key_shares(shares)))

    cc = dataclasses.replace(
        client_config,
        groups=(G.X25519,),
        key_share_groups=(G.X25519,),
        key_share_factory=lambda _group: share,
        client_hello_hook=edit,
    )
    _completes(cc, server_config)


def test_any_number_of_unknown_extensions_with_any_payload_are_ignored(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§4.1.2: servers "MUST ignore unrecognized extensions"; never
    decode_error, whatever their bodies hold."""
    unknown = [
        Extension(0x1000 + i, os.urandom(i % 37) if i % 3 else b"") for i in range(150)
    ] + [Extension(0xFAFA, b"\xff" * 1000), Extension(0x0A0A, b"")]

    def edit(ch: ClientHello) -> ClientHello:
        return dataclasses.replace(ch, extensions=(*unknown, *ch.extensions))

    _completes(_hook(client_config, edit), server_config)


def test_second_client_hello_may_reorder_its_extensions(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§4.1.2 lists what ClientHello2 changes; the order of extensions is
    not constrained (only pre_shared_key must be last, §4.2.11)."""
    calls: list[ClientHello] = []

    def edit(ch: ClientHello) -> ClientHello:
        calls.append(ch)
        if len(calls) == 1:
            return ch
        return dataclasses.replace(ch, extensions=tuple(reversed(ch.extensions)))

    cc = dataclasses.replace(
        client_config,
        groups=(G.X25519, G.SECP256R1),
        key_share_groups=(G.X25519,),
        client_hello_hook=edit,
    )
    sc = dataclasses.replace(server_config, groups=(G.SECP256R1,))
    client, _, _, _ = handshake(cc, sc)
    assert client.handshake_complete
    assert len(calls) == 2


# record sizes (RFC 8446 §5.1, §5.2, §5.4) -------------------------------------------


def test_oversized_plaintext_record_is_record_overflow_on_its_header(
    server_config: ech.ServerConfig,
) -> None:
    """§5.1: "The length MUST NOT exceed 2^14 bytes. An endpoint that
    receives a record that exceeds this length MUST terminate the
    connection with a record_overflow alert" — on the header, no waiting."""
    server = ech.ServerConnection(server_config)
    expect_plain_alert(
        server, record_header(ContentType.HANDSHAKE, MAX_PLAINTEXT + 1), RecordOverflow
    )


def test_oversized_ciphertext_is_record_overflow_on_its_header(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§5.2: TLSCiphertext.length over 2^14 + 256 is record_overflow; so is
    anything over 2^14 + 1 plus our AEAD's 16-byte tag (§5.4)."""
    for length in (MAX_CIPHERTEXT + 1, MAX_PLAINTEXT + 1 + 16 + 1):
        client, server, _, _ = handshake(client_config, server_config)
        header = record_header(ContentType.APPLICATION_DATA, length)
        expect_encrypted_alert(server, header, RecordOverflow, client)


def test_the_largest_legal_record_is_accepted(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """2^14 bytes of content, its type byte and the tag: exactly the limit
    (the padded-over-the-limit case is in test_records.py)."""
    client, server, _, _ = handshake(client_config, server_config)
    client.inject_record(ContentType.APPLICATION_DATA, bytes(MAX_PLAINTEXT))
    data = client.data_to_send()
    ((_, fragment),) = parse_records(data)
    assert len(fragment) == MAX_PLAINTEXT + 1 + 16  # the largest legal record
    assert server.receive_data(data)


# change_cipher_spec (RFC 8446 §5) ---------------------------------------------------


def test_change_cipher_spec_before_the_first_client_hello_is_unexpected(
    server_config: ech.ServerConfig,
) -> None:
    """§5: one "received before the first ClientHello message ... MUST be
    treated as an unexpected record type"."""
    server = ech.ServerConnection(server_config)
    expect_plain_alert(server, CCS, UnexpectedMessage)


def test_change_cipher_spec_right_after_the_client_hello_is_dropped(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§D.4: a client sending early data sends its CCS right after ClientHello."""
    pair = make_pair(client_config, server_config)
    pair.server.receive_data(pair.client.data_to_send() + CCS)
    pair.pump()
    assert pair.server.handshake_complete


def test_several_change_cipher_spec_in_a_row_are_dropped_up_to_a_bound(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§5: each one "at any time ... MUST simply drop"; we drop up to
    MAX_CCS_IN_A_ROW in a row, then refuse a peer sending only those."""
    pair = make_pair(client_config, server_config)
    pair.to_server()
    pair.to_client()
    finished = pair.client.data_to_send()
    # The client's flight starts with its own CCS; add the rest before it.
    assert parse_records(finished)[0] == (ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    pair.server.receive_data(CCS * (MAX_CCS_IN_A_ROW - 1) + finished)
    assert pair.server.handshake_complete

    pair = make_pair(client_config, server_config)
    pair.to_server()
    pair.server.data_to_send()
    pair.server.receive_data(CCS * MAX_CCS_IN_A_ROW)
    with pytest.raises(UnexpectedMessage, match="in a row"):
        pair.server.receive_data(CCS)


def test_change_cipher_spec_after_the_clients_finished_is_unexpected(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§5: after the peer's Finished it "MUST be treated as an unexpected
    record type": unexpected_message, under the application keys."""
    client, server, _, _ = handshake(client_config, server_config)
    expect_encrypted_alert(server, CCS, UnexpectedMessage, client)


def test_change_cipher_spec_inside_a_fragmented_message_is_unexpected(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§5.1: "Handshake messages MUST NOT be interleaved with other record
    types", a CCS included."""
    pair = make_pair(client_config, server_config)
    ((content_type, fragment),) = parse_records(pair.client.data_to_send())
    first = build_record(content_type, fragment[:10])
    pair.server.receive_data(first)
    expect_plain_alert(pair.server, CCS, UnexpectedMessage)


# bytes that are not TLS ---------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage", [b"G", b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n", b"\x80\x2e\x01"]
)
def test_bytes_that_cannot_start_a_record_are_answered_at_once(
    server_config: ech.ServerConfig, garbage: bytes
) -> None:
    """§5.1: an unknown content type is unexpected_message; one byte decides,
    so plain HTTP (or an SSLv2 hello) is answered before any timeout."""
    server = ech.ServerConnection(server_config)
    with pytest.raises(UnexpectedMessage):
        server.receive_data(garbage)
    assert server.data_to_send() == plain_alert(UnexpectedMessage.description)


# server_name (RFC 6066 §3) -----------------------------------------------------------

BAD_NAMES = [
    "example.test.",  # "without a trailing dot"
    "under_score.test",
    "-lead.test",
    "trail-.test",
    "a..test",
    "a" * 64 + ".test",
    ".".join(["a" * 63] * 4),  # 255 bytes
    "127.0.0.1",  # "Literal IPv4 and IPv6 addresses are not permitted"
    "xn--zz.test",  # not a valid A-label
    "xn--ls8h.test",  # decodes to a disallowed code point
    "sp ace.test",
]
GOOD_NAMES = [
    "example.test",
    "EXAMPLE.Test",
    "a-b.c-d.test",
    "xn--bcher-kva.test",
    "1.test",
]


def _with_server_name(name: str) -> Hook:
    def edit(ch: ClientHello) -> ClientHello:
        return ch.with_extension(Extension(E.SERVER_NAME, ext.encode_server_name(name)))

    return edit


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_inner_host_name_is_illegal_parameter(name: str) -> None:
    """RFC 6066 §3 HostName: an ASCII DNS name "without a trailing dot";
    "Literal IPv4 and IPv6 addresses are not permitted". A name that parses
    but breaks that is "otherwise incorrect": RFC 8446 §6.2's
    illegal_parameter, not decode_error (which is for the wire syntax). The
    server checks it in ClientHelloInner, whose name it routes on."""
    key = eh.ech_key()
    cc = eh.client_config(client_hello_hook=_with_server_name(name))
    pair = eh.ech_pair(cc, eh.server_config(key), eh.config_list(key), eh.INNER_NAME)
    expect_plain_alert(pair.server, pair.client.data_to_send(), IllegalParameter)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_inner_host_names_are_accepted(name: str) -> None:
    key = eh.ech_key()
    cc = eh.client_config(
        client_hello_hook=_with_server_name(name), verify_certificates=False
    )
    pair = eh.ech_pair(cc, eh.server_config(key), eh.config_list(key), eh.INNER_NAME)
    pair.pump()
    assert pair.server.handshake_complete
    assert pair.server.server_name == name


@pytest.mark.parametrize("name", ["127.0.0.1", "example.test."])
def test_cleartext_hello_name_is_only_required_to_be_ascii(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, name: str
) -> None:
    """GnuTLS (``kdig @127.0.0.1``) sends the literal address RFC 6066 §3
    forbids; a cleartext name only picks a certificate, so it is tolerated."""
    cc = dataclasses.replace(
        _hook(client_config, _with_server_name(name)), verify_certificates=False
    )
    _completes(cc, server_config)
