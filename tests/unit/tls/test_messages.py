"""Handshake message bodies (RFC 8446 §4) and extension views (§4.2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ech.errors import Alert, DecodeError, IllegalParameter
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType, HandshakeType, NamedGroup
from ech.tls.extensions import (
    Extension,
    KeyShareEntry,
    OfferedPsks,
    PskIdentity,
    check_unique,
    read_extensions,
    write_extensions,
)
from ech.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    MESSAGE_CLASSES,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    KeyUpdate,
    Message,
    NewSessionTicket,
    ServerHello,
    replace_extension,
)
from ech.tls.wire import Reader, Writer

E = ExtensionType
GREASE_A = Extension(0x0A0A, b"")
GREASE_B = Extension(0xDADA, b"\x00")
UNKNOWN = Extension(0x7777, b"opaque bytes")

# RFC 8448 §3 handshake bodies (without the 4-byte header).
RFC8448_CLIENT_HELLO = bytes.fromhex(
    "0303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7"
    "000006130113031302010000910000000b0009000006736572766572ff0100010000"
    "0a00140012001d00170018001901000101010201030104002300000033002600240"
    "01d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aa"
    "f2c002b0003020304000d0020001e0403050306030203080408050806040105010601"
    "02010402050206020202002d00020101001c00024001"
)
RFC8448_SERVER_HELLO = bytes.fromhex(
    "0303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928"
    "00130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc25"
    "3b833df1dd69b1b04e751f0f002b00020304"
)
RFC8448_ENCRYPTED_EXTENSIONS = bytes.fromhex(
    "0022000a00140012001d00170018001901000101010201030104001c0002400100000000"
)
# RFC 8448 §5 HelloRetryRequest.
RFC8448_HRR = bytes.fromhex(
    "0303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
    "001301000084003300020017002c0074007271dcd04bb88bc3189119398a00000000"
    "eefafc76c146b823b096f8aacad365dd0030953f4edf625636e5f21bb2e23fcc654b"
    "1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d6e50781b5eda4aa15b0c8be7"
    "78257d16aa3030e9e7841dd9e4c0342267e8ca0caf571fb2b7cff0f934b0002b00020304"
)

HELLO_EXTENSIONS = (
    GREASE_A,
    Extension(E.SERVER_NAME, ext.encode_server_name("example.test")),
    UNKNOWN,
    Extension(E.SUPPORTED_VERSIONS, ext.encode_client_versions([0x0304])),
    GREASE_B,
)

EXAMPLES: list[Message] = [
    ClientHello(
        random=bytes(range(32)),
        legacy_session_id=b"\x11" * 32,
        cipher_suites=(0x1301, 0x2A2A, 0x1303),
        extensions=HELLO_EXTENSIONS,
    ),
    ServerHello(
        random=bytes(32),
        legacy_session_id_echo=b"",
        cipher_suite=0x1302,
        extensions=(UNKNOWN, Extension(E.SUPPORTED_VERSIONS, b"\x03\x04")),
    ),
    EncryptedExtensions(()),
    EncryptedExtensions((GREASE_A, UNKNOWN, GREASE_B)),
    CertificateRequest(
        b"ctx", (Extension(E.SIGNATURE_ALGORITHMS, b"\x00\x02\x08\x07"),)
    ),
    Certificate(b"", ()),
    Certificate(
        b"\x01",
        (CertificateEntry(b"cert-1", (UNKNOWN,)), CertificateEntry(b"cert-2")),
    ),
    CertificateVerify(0x0807, b"\xaa" * 64),
    Finished(b"\x5a" * 32),
    NewSessionTicket(7200, 0xDEADBEEF, b"\x00\x01", b"ticket", (GREASE_A, UNKNOWN)),
    KeyUpdate(0),
    KeyUpdate(1),
    EndOfEarlyData(),
]

RFC8448_BODIES: list[tuple[type[Message], bytes]] = [
    (ClientHello, RFC8448_CLIENT_HELLO),
    (ServerHello, RFC8448_SERVER_HELLO),
    (EncryptedExtensions, RFC8448_ENCRYPTED_EXTENSIONS),
    (ServerHello, RFC8448_HRR),
]


def _id(m: Message) -> str:
    return type(m).__name__


def test_every_message_type_has_an_example() -> None:
    assert {type(m) for m in EXAMPLES} == set(MESSAGE_CLASSES.values())


@pytest.mark.parametrize("message", EXAMPLES, ids=_id)
def test_message_round_trip(message: Message) -> None:
    body = message.encode()
    parsed = type(message).parse(body)
    assert parsed == message
    assert parsed.encode() == body
    assert MESSAGE_CLASSES[message.msg_type] is type(message)


@pytest.mark.parametrize(
    ("cls", "body"), RFC8448_BODIES, ids=lambda x: getattr(x, "__name__", "")
)
def test_rfc8448_bodies_round_trip_byte_for_byte(
    cls: type[Message], body: bytes
) -> None:
    parsed = cls.parse(body)
    assert parsed.encode() == body
    fresh = dataclasses.replace(parsed)  # type: ignore[type-var]  # no memo
    assert fresh.encode() == body  # the encoder itself, not the remembered body


def test_unknown_and_grease_extensions_are_kept_in_order() -> None:
    hello = EXAMPLES[0]
    assert isinstance(hello, ClientHello)
    parsed = ClientHello.parse(hello.encode())
    assert parsed.extensions == HELLO_EXTENSIONS
    assert [e.type for e in parsed.extensions] == [0x0A0A, 0, 0x7777, 43, 0xDADA]


@pytest.mark.parametrize(
    "message",
    [m for m in EXAMPLES if not isinstance(m, Finished | EndOfEarlyData)],
    ids=_id,
)
def test_every_strict_prefix_is_decode_error(message: Message) -> None:
    body = message.encode()
    for end in range(len(body)):
        if end == _without_extensions_length(message):
            continue  # a hello of an earlier TLS: see the test below
        with pytest.raises(DecodeError):
            type(message).parse(body[:end])


def _without_extensions_length(message: Message) -> int | None:
    """Where a hello may end without its extension block (RFC 8446 §4.1.2)."""
    if not isinstance(message, ClientHello | ServerHello):
        return None
    return len(message.encode()) - 2 - sum(4 + len(e.data) for e in message.extensions)


@pytest.mark.parametrize(
    "message",
    [m for m in EXAMPLES if isinstance(m, ClientHello | ServerHello)],
    ids=_id,
)
def test_a_hello_without_extensions_parses_and_re_encodes(message: Message) -> None:
    """RFC 8446 §4.1.2: "TLS 1.3 servers might receive ClientHello messages
    without an extensions field from prior versions of TLS": such a hello
    parses (it offers no TLS 1.3; the handshake answers protocol_version),
    and re-encodes byte for byte. Found by ``ech fuzz`` against Go, which
    answers it so; we used to say decode_error.
    """
    end = _without_extensions_length(message)
    assert end is not None
    body = message.encode()[:end]
    parsed = type(message).parse(body)
    assert isinstance(parsed, ClientHello | ServerHello)
    assert parsed.extensions == ()
    assert parsed.extensions_absent
    assert parsed.encode() == body
    assert dataclasses.replace(parsed).encode() == body
    grown = parsed.with_extension(Extension(0x7777, bytes(8)))
    assert type(parsed).parse(grown.encode()).extensions == grown.extensions


@pytest.mark.parametrize(
    ("cls", "body"), RFC8448_BODIES, ids=lambda x: getattr(x, "__name__", "")
)
def test_rfc8448_body_prefixes_are_decode_error(
    cls: type[Message], body: bytes
) -> None:
    for end in range(len(body)):
        if cls in (ClientHello, ServerHello) and end == _without_extensions_length(
            cls.parse(body)
        ):
            continue  # RFC 8446 §4.1.2: a hello of an earlier TLS
        with pytest.raises(DecodeError):
            cls.parse(body[:end])


def test_finished_takes_the_whole_body() -> None:
    # Finished has no length field; its length is checked by the connection.
    assert Finished.parse(b"\x01\x02\x03") == Finished(b"\x01\x02\x03")
    assert Finished.parse(b"") == Finished(b"")


@pytest.mark.parametrize(
    "message",
    [m for m in EXAMPLES if not isinstance(m, Finished)],
    ids=_id,
)
def test_trailing_byte_is_decode_error(message: Message) -> None:
    with pytest.raises(DecodeError):
        type(message).parse(message.encode() + b"\x00")


def test_end_of_early_data_must_be_empty() -> None:
    assert EndOfEarlyData.parse(b"") == EndOfEarlyData()
    with pytest.raises(DecodeError):
        EndOfEarlyData.parse(b"\x00")


def test_key_update_out_of_range_is_illegal_parameter() -> None:
    # RFC 8446 §4.6.3: "If an implementation receives any other value, it
    # MUST terminate the connection with an "illegal_parameter" alert."
    with pytest.raises(IllegalParameter):
        KeyUpdate.parse(b"\x02")


def _hello_body(
    *,
    session_id: bytes = b"",
    suites: bytes = b"\x00\x02\x13\x01",
    compression: bytes = b"\x01\x00",
    extensions: bytes = bytes.fromhex("000b 002b 0003 020304 0015 0000"),
) -> bytes:
    return (
        b"\x03\x03"
        + bytes(32)
        + bytes((len(session_id),))
        + session_id
        + suites
        + compression
        + extensions
    )


def test_client_hello_syntax_limits() -> None:
    ClientHello.parse(_hello_body())
    with pytest.raises(DecodeError):  # legacy_session_id<0..32>
        ClientHello.parse(_hello_body(session_id=bytes(33)))
    with pytest.raises(DecodeError):  # cipher_suites<2..2^16-2>
        ClientHello.parse(_hello_body(suites=b"\x00\x00"))
    with pytest.raises(DecodeError):  # odd-length cipher suite list
        ClientHello.parse(_hello_body(suites=b"\x00\x03\x13\x01\x13"))
    with pytest.raises(DecodeError):  # legacy_compression_methods<1..2^8-1>
        ClientHello.parse(_hello_body(compression=b"\x00"))
    with pytest.raises(DecodeError):  # extensions<8..2^16-1>
        ClientHello.parse(_hello_body(extensions=b"\x00\x04\x00\x2b\x00\x00"))
    # No extension block at all: a hello of an earlier TLS (RFC 8446 §4.1.2),
    # which parses and offers no TLS 1.3 (the server says protocol_version).
    assert ClientHello.parse(_hello_body(extensions=b"")).extensions_absent


def test_server_hello_extensions_need_six_bytes() -> None:
    sh = ServerHello(bytes(32), b"", 0x1301, (Extension(0x2B, b"\x03\x04"),))
    ServerHello.parse(sh.encode())
    short = ServerHello(bytes(32), b"", 0x1301, (Extension(0x2B, b"\x03"),))
    with pytest.raises(DecodeError):
        ServerHello.parse(short.encode())


def test_certificate_entry_needs_data() -> None:
    body = b"\x00" + b"\x00\x00\x05" + b"\x00\x00\x00" + b"\x00\x00"
    with pytest.raises(DecodeError):
        Certificate.parse(body)


def test_new_session_ticket_needs_a_ticket() -> None:
    body = bytes(8) + b"\x00" + b"\x00\x00" + b"\x00\x00"
    with pytest.raises(DecodeError):
        NewSessionTicket.parse(body)


def test_certificate_request_needs_an_extension() -> None:
    with pytest.raises(DecodeError):
        CertificateRequest.parse(b"\x00\x00\x00")


def test_hello_retry_request_detection() -> None:
    hrr = ServerHello.parse(RFC8448_HRR)
    assert hrr.is_hello_retry_request
    assert hrr.random == HELLO_RETRY_REQUEST_RANDOM
    assert not ServerHello.parse(RFC8448_SERVER_HELLO).is_hello_retry_request
    assert not hrr.with_random(bytes(32)).is_hello_retry_request
    near = HELLO_RETRY_REQUEST_RANDOM[:-1] + bytes(
        (HELLO_RETRY_REQUEST_RANDOM[-1] ^ 1,)
    )
    assert not hrr.with_random(near).is_hello_retry_request


def test_rfc8448_hrr_extensions() -> None:
    hrr = ServerHello.parse(RFC8448_HRR)
    assert [e.type for e in hrr.extensions] == [
        E.KEY_SHARE,
        E.COOKIE,
        E.SUPPORTED_VERSIONS,
    ]
    key_share = hrr.extension(E.KEY_SHARE)
    assert key_share is not None
    assert ext.decode_u16(key_share) == NamedGroup.SECP256R1
    cookie = hrr.extension(E.COOKIE)
    assert cookie is not None
    assert len(ext.decode_cookie(cookie)) == 0x72


def test_extension_lookup_and_editing() -> None:
    hello = EXAMPLES[0]
    assert isinstance(hello, ClientHello)
    assert hello.extension(0x7777) == b"opaque bytes"
    assert hello.extension(0x9999) is None
    assert hello.has_extension(0x0A0A)
    new = Extension(0x7777, b"new")
    replaced = hello.with_extension(new)
    assert replaced.extensions[2] == new  # in place
    appended = hello.with_extension(Extension(0x9999, b""))
    assert appended.extensions[-1] == Extension(0x9999, b"")
    assert not hello.without_extension(0x7777).has_extension(0x7777)
    assert len(hello.without_extension(0x7777).extensions) == len(hello.extensions) - 1
    twice = (UNKNOWN, GREASE_A, UNKNOWN)
    assert replace_extension(twice, new) == (new, GREASE_A, UNKNOWN)


def test_extension_block_round_trip_and_duplicates() -> None:
    exts = (GREASE_A, UNKNOWN, GREASE_A)
    w = Writer()
    write_extensions(w, exts)
    r = Reader(w.getvalue())
    assert read_extensions(r) == exts
    r.expect_end()
    with pytest.raises(IllegalParameter):
        check_unique(exts)
    check_unique((GREASE_A, UNKNOWN))


def test_extension_block_min_len() -> None:
    with pytest.raises(DecodeError):
        read_extensions(Reader(b"\x00\x00"), min_len=1)


def test_extension_body_longer_than_block_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        read_extensions(Reader(bytes.fromhex("0006 0000 0005 aabb")))


# typed extension views -----------------------------------------------------------


def test_server_name_view() -> None:
    body = ext.encode_server_name("example.test")
    assert body == bytes.fromhex("000f 00 000c") + b"example.test"
    assert ext.decode_server_name(body) == "example.test"
    # Entries of unknown name types are skipped.
    other = bytes.fromhex("0013 05 0001 78 00 000c") + b"example.test"
    assert ext.decode_server_name(other) == "example.test"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", DecodeError),
        (bytes.fromhex("0000"), DecodeError),  # empty list
        (bytes.fromhex("0003 00 0000"), DecodeError),  # empty name
        (bytes.fromhex("0004 05 0001 78"), DecodeError),  # no host_name
        (bytes.fromhex("0004 00 0001 78 ff"), DecodeError),  # trailing
        (bytes.fromhex("0004 00 0001 ff"), IllegalParameter),  # not ASCII
        (bytes.fromhex("0008 00 0001 61 00 0001 62"), IllegalParameter),  # two hosts
    ],
)
def test_server_name_view_rejects(body: bytes, error: type[Alert]) -> None:
    with pytest.raises(error):
        ext.decode_server_name(body)


def test_supported_versions_views() -> None:
    body = ext.encode_client_versions([0x0304, 0x0303])
    assert body == bytes.fromhex("04 0304 0303")
    assert ext.decode_client_versions(body) == (0x0304, 0x0303)
    assert ext.decode_u16(ext.encode_u16(0x0304)) == 0x0304
    for bad in (b"", b"\x00", b"\x01\x03", b"\x03\x03\x04\x03", b"\x02\x03\x04\x00"):
        with pytest.raises(DecodeError):
            ext.decode_client_versions(bad)
    with pytest.raises(DecodeError):  # versions<2..254>
        ext.decode_client_versions(bytes((255,)) + bytes(255))
    for bad in (b"", b"\x03", b"\x03\x04\x00"):
        with pytest.raises(DecodeError):
            ext.decode_u16(bad)


def test_u16_list_views() -> None:
    for values in ((0x001D,), (0x001D, 0x0017, 0x11EC)):
        body = ext.encode_u16_vector(values)
        assert ext.decode_u16_list(body) == values
    for bad in (
        b"",
        b"\x00\x00",
        b"\x00\x01\x00",
        b"\x00\x02\x00\x1d\x00",
        b"\x00\x04\x00\x1d",
    ):
        with pytest.raises(DecodeError):
            ext.decode_u16_list(bad)


def test_key_share_views() -> None:
    shares = (KeyShareEntry(0x001D, b"\x01" * 32), KeyShareEntry(0x0A0A, b"\x00"))
    body = ext.encode_client_key_shares(shares)
    assert ext.decode_client_key_shares(body) == shares
    assert ext.decode_client_key_shares(b"\x00\x00") == ()  # empty list is legal
    server = ext.encode_server_key_share(shares[0])
    assert server == bytes.fromhex("001d 0020") + b"\x01" * 32
    assert ext.decode_server_key_share(server) == shares[0]
    for bad in (b"", b"\x00\x04\x00\x1d\x00\x00", b"\x00\x05\x00\x1d\x00\x01"):
        with pytest.raises(DecodeError):
            ext.decode_client_key_shares(bad)
    for bad in (b"", b"\x00\x1d\x00\x00", b"\x00\x1d\x00\x02\x01", server + b"\x00"):
        with pytest.raises(DecodeError):
            ext.decode_server_key_share(bad)


def test_alpn_view() -> None:
    names = (b"h2", b"http/1.1")
    body = ext.encode_alpn(names)
    assert body == bytes.fromhex("000c 02") + b"h2" + b"\x08http/1.1"
    assert ext.decode_alpn(body) == names
    for bad in (
        b"",
        b"\x00\x00",
        b"\x00\x01\x00",
        b"\x00\x04\x02h2",
        b"\x00\x03\x02h2x",
    ):
        with pytest.raises(DecodeError):
            ext.decode_alpn(bad)


def test_psk_modes_view() -> None:
    assert ext.encode_psk_modes([1]) == b"\x01\x01"
    assert ext.decode_psk_modes(b"\x02\x00\x01") == (0, 1)
    for bad in (b"", b"\x00", b"\x02\x01", b"\x01\x01\x01"):
        with pytest.raises(DecodeError):
            ext.decode_psk_modes(bad)


def test_pre_shared_key_view_round_trip() -> None:
    offered = OfferedPsks(
        (PskIdentity(b"ticket-1", 7), PskIdentity(b"t2", 0xFFFFFFFF)),
        (b"\x01" * 32, b"\x02" * 48),
    )
    body = offered.encode()
    assert OfferedPsks.parse(body) == offered
    assert body.endswith(offered.encode_binders())
    assert (
        offered.encode_binders()
        == bytes.fromhex("0052 20") + b"\x01" * 32 + b"\x30" + b"\x02" * 48
    )


def _psk_body(identities: bytes, binders: bytes) -> bytes:
    return (
        len(identities).to_bytes(2, "big")
        + identities
        + len(binders).to_bytes(2, "big")
        + binders
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", DecodeError),
        (_psk_body(b"", b"\x20" + bytes(32)), DecodeError),  # no identity
        (_psk_body(b"\x00\x01x" + bytes(4), b""), DecodeError),  # no binder
        (
            _psk_body(b"\x00\x00" + bytes(4), b"\x20" + bytes(32)),
            DecodeError,
        ),  # empty id
        (
            _psk_body(b"\x00\x01x" + bytes(4), b"\x1f" + bytes(31)),
            DecodeError,
        ),  # short binder
        (
            _psk_body(b"\x00\x01x" + bytes(4), b"\x20" + bytes(32)) + b"\x00",
            DecodeError,
        ),
        (
            _psk_body(
                b"\x00\x01x" + bytes(4), b"\x20" + bytes(32) + b"\x20" + bytes(32)
            ),
            IllegalParameter,  # counts differ
        ),
    ],
)
def test_pre_shared_key_view_rejects(body: bytes, error: type[Alert]) -> None:
    with pytest.raises(error):
        OfferedPsks.parse(body)


def test_early_data_and_empty_views() -> None:
    ext.decode_empty(b"")
    with pytest.raises(DecodeError):
        ext.decode_empty(b"\x00")
    assert ext.decode_u32(b"\x00\x00\x40\x00") == 0x4000
    for bad in (b"", b"\x00\x00\x40", b"\x00\x00\x40\x00\x00"):
        with pytest.raises(DecodeError):
            ext.decode_u32(bad)


def test_cookie_view() -> None:
    body = ext.encode_cookie(b"crumbs")
    assert body == b"\x00\x06crumbs"
    assert ext.decode_cookie(body) == b"crumbs"
    for bad in (b"", b"\x00\x00", b"\x00\x02a", b"\x00\x01ab"):
        with pytest.raises(DecodeError):
            ext.decode_cookie(bad)


def test_padding_view() -> None:
    assert ext.decode_padding(b"") == 0
    assert ext.decode_padding(bytes(300)) == 300
    with pytest.raises(DecodeError):
        ext.decode_padding(bytes(10) + b"\x01")


VIEW_ROUND_TRIPS: list[tuple[Callable[[bytes], object], bytes]] = [
    (ext.decode_server_name, ext.encode_server_name("a.example")),
    (ext.decode_client_versions, ext.encode_client_versions([0x0304])),
    (ext.decode_u16_list, ext.encode_u16_vector([0x0807, 0x0403])),
    (
        ext.decode_client_key_shares,
        ext.encode_client_key_shares([KeyShareEntry(29, b"k")]),
    ),
    (ext.decode_server_key_share, ext.encode_server_key_share(KeyShareEntry(29, b"k"))),
    (ext.decode_alpn, ext.encode_alpn([b"h2"])),
    (ext.decode_psk_modes, ext.encode_psk_modes([1])),
    (OfferedPsks.parse, OfferedPsks((PskIdentity(b"t", 1),), (bytes(32),)).encode()),
    (ext.decode_cookie, ext.encode_cookie(b"c")),
    (ext.decode_u16, ext.encode_u16(0x0304)),
    (ext.decode_u32, b"\x00\x00\x00\x01"),
]


@pytest.mark.parametrize(("decode", "body"), VIEW_ROUND_TRIPS)
def test_extension_view_prefixes_and_trailers_are_decode_error(
    decode: Callable[[bytes], object], body: bytes
) -> None:
    decode(body)
    for end in range(len(body)):
        with pytest.raises(DecodeError):
            decode(body[:end])
    with pytest.raises(DecodeError):
        decode(body + b"\x00")


def test_message_classes_by_type() -> None:
    assert MESSAGE_CLASSES[HandshakeType.CLIENT_HELLO] is ClientHello
    assert MESSAGE_CLASSES[HandshakeType.KEY_UPDATE] is KeyUpdate
    assert HandshakeType.MESSAGE_HASH not in MESSAGE_CLASSES


@pytest.mark.parametrize("absent", [False, True])
def test_hello_copies_keep_every_other_field(absent: bool) -> None:
    # with_extensions and with_random build their copies field by field (a hot
    # path); a field added later must not be dropped on the way.
    ch = ClientHello(b"r" * 32, b"s", (0x1301,), (), 0x0301, b"\x00", absent)
    assert ch.with_extensions(ch.extensions) == ch
    sh = ServerHello(b"r" * 32, b"s", 0x1301, (), 0x0301, 0, absent)
    assert sh.with_random(sh.random) == sh


def test_a_message_encodes_once_and_a_parsed_one_keeps_its_bytes() -> None:
    built = EXAMPLES[0]
    assert built.encode() is built.encode()
    received = bytes(RFC8448_CLIENT_HELLO)
    assert ClientHello.parse(received).encode() is received


def test_extension_body_splice_rejects_our_mistakes() -> None:
    hello = ClientHello.parse(RFC8448_CLIENT_HELLO)
    with pytest.raises(ValueError, match="no extension"):
        hello.encode_with_extension_body(0x7777, b"")
    with pytest.raises(ValueError, match="keep its length"):
        hello.encode_with_extension_body(E.SERVER_NAME, b"short")
    sni = hello.extension(E.SERVER_NAME)
    assert sni is not None
    same = hello.encode_with_extension_body(E.SERVER_NAME, bytes(len(sni)))
    assert ClientHello.parse(same).extension(E.SERVER_NAME) == bytes(len(sni))
    assert ClientHello.parse(same).with_extension(Extension(E.SERVER_NAME, sni)) == (
        hello
    )


def test_with_random_of_another_length_is_not_spliced() -> None:
    # A harness may build a wrong-length random; the copy then encodes afresh.
    sh = ServerHello.parse(RFC8448_SERVER_HELLO)
    odd = sh.with_random(b"short")
    assert odd.encode() == dataclasses.replace(sh, random=b"short").encode()


def _accepts(check: Callable[[str], None], name: str) -> bool:
    try:
        check(name)
    except IllegalParameter:
        return False
    return True


_LABELS = st.text(alphabet="aZ09-_ .:", max_size=70) | st.sampled_from(
    ["xn--bcher-kva", "xn--zz", "XN--ls8h", "127", "0x1f", "1", "a" * 63, "a" * 64]
)


@given(st.lists(_LABELS, max_size=6).map(".".join))
def test_host_name_fast_path_agrees_with_the_full_checks(name: str) -> None:
    # check_host_name clears plain names with one regular expression and
    # sends the rest through the rule-by-rule checks: same verdicts.
    assert _accepts(ext.check_host_name, name) == _accepts(
        ext._check_host_name_in_full, name
    )
