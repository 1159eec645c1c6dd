"""ech.extension and ech.inner: the ECH extension bodies, EncodedClientHelloInner,
outer-extension compression, padding and ClientHelloOuterAAD (RFC 9849 §5, §6.1.3).
"""

from __future__ import annotations

import pytest

from ech.config import ECHConfigList
from ech.errors import DecodeError, IllegalParameter
from ech.extension import (
    INNER_BODY,
    ECHClientHelloOuter,
    encode_retry_configs,
    parse_client_hello_extension,
    parse_hrr_confirmation,
    parse_retry_configs,
)
from ech.inner import (
    compress,
    decode_client_hello_inner,
    decode_outer_extensions,
    encode_client_hello_inner,
    encode_outer_extensions,
    padding_length,
)
from ech.server.ech import client_hello_outer_aad
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello
from tests.unit.ech.ech_helpers import CHACHA, MTI, ech_key

E = ExtensionType
OUTER_SESSION_ID = bytes(range(32))


def ext(ext_type: int, data: bytes = b"") -> Extension:
    return Extension(ext_type, data)


def hello(
    extensions: list[Extension], session_id: bytes = b"", random: bytes = bytes(32)
) -> ClientHello:
    return ClientHello(
        random=random,
        legacy_session_id=session_id,
        cipher_suites=(0x1301, 0x1302),
        extensions=tuple(extensions),
    )


MARKER = ext(E.ENCRYPTED_CLIENT_HELLO, INNER_BODY)
GROUPS = ext(E.SUPPORTED_GROUPS, b"\x00\x02\x00\x1d")
SIGALGS = ext(E.SIGNATURE_ALGORITHMS, b"\x00\x02\x08\x07")
VERSIONS = ext(E.SUPPORTED_VERSIONS, b"\x02\x03\x04")
KEY_SHARE = ext(E.KEY_SHARE, b"\x00\x06\x00\x1d\x00\x02\xab\xcd")
SNI_INNER = ext(E.SERVER_NAME, b"\x00\x0f\x00\x00\x0cexample.test")


def outer_hello() -> ClientHello:
    """A ClientHelloOuter whose compressible extensions are spread out."""
    return hello(
        [
            ext(E.SERVER_NAME, b"\x00\x11\x00\x00\x0epublic.example"),
            GROUPS,
            ext(0x4A4A, b"grease"),
            SIGALGS,
            VERSIONS,
            ext(E.PADDING, bytes(3)),
            KEY_SHARE,
            ext(E.ENCRYPTED_CLIENT_HELLO, b"\x00" + bytes(10)),
        ],
        session_id=OUTER_SESSION_ID,
        random=b"\x01" * 32,
    )


def inner_hello() -> ClientHello:
    return hello(
        [SNI_INNER, GROUPS, SIGALGS, VERSIONS, KEY_SHARE, MARKER],
        session_id=OUTER_SESSION_ID,
        random=b"\x02" * 32,
    )


def encoded_with_references(types: list[int], padding: bytes = b"") -> bytes:
    """An EncodedClientHelloInner naming ``types`` in one ech_outer_extensions."""
    inner = hello(
        [
            SNI_INNER,
            ext(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions(types)),
            MARKER,
        ],
        random=b"\x02" * 32,
    )
    return inner.encode() + padding


# the extension bodies (§5) ------------------------------------------------------------


@pytest.mark.requirement("ECH-19")
def test_ech_client_hello_outer_wire_layout() -> None:
    """ECH-19: type(0) ‖ kdf ‖ aead ‖ config_id ‖ enc<0..> ‖ payload<1..>."""
    offer = ECHClientHelloOuter(CHACHA, 0x42, b"\xee" * 3, b"\xaa" * 5)
    assert offer.encode() == bytes.fromhex("0000010003420003eeeeee0005aaaaaaaaaa")
    assert parse_client_hello_extension(offer.encode()) == offer


@pytest.mark.requirement("ECH-19", "ECH-21")
def test_ech_client_hello_outer_allows_empty_enc() -> None:
    """ECH-19, ECH-21: ``enc`` may be empty (second ClientHelloOuter)."""
    offer = ECHClientHelloOuter(MTI, 1, b"", b"\x01")
    assert parse_client_hello_extension(offer.encode()) == offer


@pytest.mark.requirement("ECH-19")
def test_inner_form_is_the_type_byte_alone() -> None:
    """ECH-19: the inner variant is just ``type = 1``."""
    assert INNER_BODY == b"\x01"
    assert parse_client_hello_extension(INNER_BODY) is None
    with pytest.raises(DecodeError):
        parse_client_hello_extension(INNER_BODY + b"\x00")


@pytest.mark.requirement("ECH-19")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(bytes.fromhex("00000100010700000000"), id="empty-payload"),
        pytest.param(bytes.fromhex("000001000107000000"), id="truncated"),
        pytest.param(bytes.fromhex("0000010001070000000101ff"), id="trailing"),
        pytest.param(bytes.fromhex("000001000107000500"), id="enc-overrun"),
    ],
)
def test_malformed_ech_client_hello_is_decode_error(body: bytes) -> None:
    """ECH-19: payload<1..2^16-1>, exact lengths, nothing trailing."""
    with pytest.raises(DecodeError):
        parse_client_hello_extension(body)


@pytest.mark.requirement("ECH-73")
@pytest.mark.parametrize("hello_type", [2, 0x80, 0xFF])
def test_unknown_ech_client_hello_type_is_illegal_parameter(
    hello_type: int,
) -> None:
    """ECH-73: an unknown ECHClientHelloType is illegal_parameter."""
    with pytest.raises(IllegalParameter):
        parse_client_hello_extension(bytes((hello_type,)) + bytes(10))


@pytest.mark.requirement("ECH-22")
def test_retry_configs_round_trip() -> None:
    """ECH-22: ECHEncryptedExtensions is an ECHConfigList (with prefix)."""
    configs = ECHConfigList((ech_key(1).config, ech_key(2).config))
    body = encode_retry_configs(configs)
    assert body[:2] == (len(body) - 2).to_bytes(2, "big")
    assert parse_retry_configs(body) == configs


@pytest.mark.requirement("ECH-61", "ECH-71")
@pytest.mark.parametrize(
    "body",
    [b"", b"\x00", b"\x00\x00", b"\x00\x03\xfe\x0d\x00", b"\x00\x04\xfe\x0d\x00\x01"],
)
def test_malformed_retry_configs_are_decode_error(body: bytes) -> None:
    """ECH-61, ECH-71: a bad retry_configs body is decode_error."""
    with pytest.raises(DecodeError):
        parse_retry_configs(body)


@pytest.mark.requirement("ECH-23", "ECH-54")
def test_hrr_confirmation_is_exactly_8_bytes() -> None:
    """ECH-23, ECH-54: ECHHelloRetryRequest is confirmation[8]."""
    assert parse_hrr_confirmation(bytes(range(8))) == bytes(range(8))
    for length in (0, 7, 9, 32):
        with pytest.raises(DecodeError):
            parse_hrr_confirmation(bytes(length))


# ech_outer_extensions (§5.1) ----------------------------------------------------------


@pytest.mark.requirement("ECH-26")
def test_outer_extensions_codec() -> None:
    """ECH-26: ``ExtensionType OuterExtensions<2..254>``, 1 to 127 types."""
    assert encode_outer_extensions([10, 13]) == bytes.fromhex("04000a000d")
    assert decode_outer_extensions(bytes.fromhex("04000a000d")) == (10, 13)
    many = list(range(127))
    assert decode_outer_extensions(encode_outer_extensions(many)) == tuple(many)
    with pytest.raises(ValueError, match="1 to 127"):
        encode_outer_extensions([])
    with pytest.raises(ValueError, match="1 to 127"):
        encode_outer_extensions(list(range(128)))


@pytest.mark.requirement("ECH-26")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="no-types"),
        pytest.param(b"\x03\x00\x0a\x00", id="odd-length"),
        pytest.param(b"\x02\x00\x0a\x00", id="trailing"),
        pytest.param(b"\x04\x00\x0a", id="truncated"),
        pytest.param(b"\xff" + bytes(255), id="over-254"),
    ],
)
def test_malformed_outer_extensions_is_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_outer_extensions(body)


# compression (§5.1) -------------------------------------------------------------------


@pytest.mark.requirement("ECH-25")
def test_compress_empties_session_id_and_keeps_the_rest() -> None:
    """ECH-25: a copy of CHI with legacy_session_id empty."""
    inner = inner_hello()
    compressed = compress(inner, [])
    assert compressed.legacy_session_id == b""
    assert compressed.random == inner.random
    assert compressed.cipher_suites == inner.cipher_suites
    assert compressed.extensions == inner.extensions
    assert compressed.legacy_version == inner.legacy_version
    assert compressed.legacy_compression_methods == inner.legacy_compression_methods


@pytest.mark.requirement("ECH-25")
def test_encoded_inner_has_no_handshake_header_and_zero_padding() -> None:
    """ECH-25: ``ClientHello ‖ zeros``, without the 4-byte header."""
    compressed = compress(inner_hello(), [E.SUPPORTED_GROUPS])
    encoded = encode_client_hello_inner(compressed, 13)
    assert encoded == compressed.encode() + bytes(13)
    assert encoded[:2] == b"\x03\x03"  # legacy_version, not msg_type 1


@pytest.mark.requirement("ECH-27")
def test_compress_puts_one_outer_extensions_at_the_run() -> None:
    """ECH-27: the run becomes one 0xfd00 at its place, in CHI order."""
    types = [
        E.SUPPORTED_GROUPS,
        E.SIGNATURE_ALGORITHMS,
        E.SUPPORTED_VERSIONS,
        E.KEY_SHARE,
    ]
    compressed = compress(inner_hello(), types)
    assert [e.type for e in compressed.extensions] == [
        E.SERVER_NAME,
        E.ECH_OUTER_EXTENSIONS,
        E.ENCRYPTED_CLIENT_HELLO,
    ]
    body = compressed.extension(E.ECH_OUTER_EXTENSIONS)
    assert body is not None
    assert decode_outer_extensions(body) == tuple(types)


@pytest.mark.requirement("ECH-27", "ECH-36")
def test_compress_refuses_a_non_contiguous_run() -> None:
    """ECH-27, ECH-36: compressed extensions must be consecutive in CHI."""
    with pytest.raises(ValueError, match="contiguous"):
        compress(inner_hello(), [E.SERVER_NAME, E.SUPPORTED_GROUPS, E.KEY_SHARE])


# reconstruction (§5.1, Appendix A) ----------------------------------------------------


@pytest.mark.requirement("ECH-25", "ECH-30")
def test_decode_round_trip_and_session_id_from_outer() -> None:
    """ECH-25, ECH-30: reconstruction restores CHI, session id from CHO."""
    inner = inner_hello()
    types = [
        E.SUPPORTED_GROUPS,
        E.SIGNATURE_ALGORITHMS,
        E.SUPPORTED_VERSIONS,
        E.KEY_SHARE,
    ]
    encoded = encode_client_hello_inner(compress(inner, types), 40)
    assert decode_client_hello_inner(encoded, outer_hello()) == inner


@pytest.mark.requirement("ECH-27")
def test_referenced_extensions_need_not_be_contiguous_in_outer() -> None:
    """ECH-27: same relative order in CHO, other extensions in between."""
    encoded = encoded_with_references([E.SUPPORTED_GROUPS, E.KEY_SHARE])
    inner = decode_client_hello_inner(encoded, outer_hello())
    assert [e.type for e in inner.extensions] == [
        E.SERVER_NAME,
        E.SUPPORTED_GROUPS,
        E.KEY_SHARE,
        E.ENCRYPTED_CLIENT_HELLO,
    ]
    assert inner.extension(E.KEY_SHARE) == KEY_SHARE.data


@pytest.mark.requirement("ECH-28")
def test_reconstructed_inner_never_holds_outer_extensions() -> None:
    """ECH-28: 0xfd00 is replaced, never left in the rebuilt CHI."""
    encoded = encoded_with_references([E.SUPPORTED_GROUPS])
    inner = decode_client_hello_inner(encoded, outer_hello())
    assert not inner.has_extension(E.ECH_OUTER_EXTENSIONS)


@pytest.mark.requirement("ECH-29")
@pytest.mark.parametrize("padding", [b"\x01", bytes(31) + b"\x80", b"\x00\x00\x07\x00"])
def test_non_zero_padding_is_illegal_parameter(padding: bytes) -> None:
    """ECH-29 (ECH-Server-BadPadding at the codec level)."""
    encoded = encoded_with_references([E.SUPPORTED_GROUPS], padding)
    with pytest.raises(IllegalParameter, match="padding"):
        decode_client_hello_inner(encoded, outer_hello())


@pytest.mark.requirement("ECH-29")
@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 1000])
def test_any_zero_padding_length_is_accepted(length: int) -> None:
    """ECH-29: the server takes any padding length (older Go padded wrongly)."""
    encoded = encoded_with_references([E.SUPPORTED_GROUPS], bytes(length))
    decode_client_hello_inner(encoded, outer_hello())


@pytest.mark.requirement("ECH-31", "ECH-32", "ECH-103")
@pytest.mark.parametrize(
    "types",
    [
        pytest.param([E.SUPPORTED_GROUPS, E.SUPPORTED_GROUPS], id="Duplicate"),
        pytest.param([E.SUPPORTED_GROUPS, 0x1234], id="Missing"),
        pytest.param([E.EARLY_DATA], id="Missing-only"),
        pytest.param([E.KEY_SHARE, E.SUPPORTED_GROUPS], id="Misordered"),
        pytest.param([E.ENCRYPTED_CLIENT_HELLO], id="ReferenceECH"),
        pytest.param(
            [E.SUPPORTED_GROUPS, E.ENCRYPTED_CLIENT_HELLO], id="ReferenceECH-late"
        ),
    ],
)
def test_bad_outer_references_are_illegal_parameter(
    types: list[int],
) -> None:
    """ECH-31 (a)-(d), ECH-32, ECH-103 (ECH-Server-OuterExtensions-*)."""
    with pytest.raises(IllegalParameter):
        decode_client_hello_inner(encoded_with_references(types), outer_hello())


@pytest.mark.requirement("ECH-27")
def test_two_outer_extensions_blocks_are_illegal_parameter() -> None:
    """ECH-27: a single 0xfd00 extension."""
    refs = ext(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions([E.SUPPORTED_GROUPS]))
    refs2 = ext(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions([E.KEY_SHARE]))
    inner = hello([refs, SNI_INNER, refs2, MARKER])
    with pytest.raises(IllegalParameter):
        decode_client_hello_inner(inner.encode(), outer_hello())


@pytest.mark.requirement("ECH-25")
def test_garbage_encoded_inner_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_client_hello_inner(b"\x03\x03" + bytes(20), outer_hello())


# padding (§6.1.3) ---------------------------------------------------------------------


@pytest.mark.requirement("ECH-51", "ECH-52")
@pytest.mark.parametrize(
    ("encoded", "name", "max_name", "expected"),
    [
        # Name shorter than maximum_name_length: pad the name, then round.
        (100, 10, 20, 10 + 18),  # 110 -> 128
        (100, 20, 20, 28),  # name at the maximum: only rounding
        (100, 30, 20, 28),  # name over the maximum: no name padding
        (128, 30, 20, 0),  # already a multiple of 32
        (128, 4, 20, 16 + 16),  # 144 -> 160
        # No server_name: L + 9, then round.
        (100, None, 0, 9 + 19),  # 109 -> 128
        (100, None, 20, 29 + 31),  # 129 -> 160
        (119, None, 0, 9),  # 128 exactly
        (1, 0, 0, 31),
    ],
)
def test_padding_length_is_exact(
    encoded: int, name: int | None, max_name: int, expected: int
) -> None:
    """ECH-51 (name padding, L + 9 without SNI), ECH-52 (round up to 32)."""
    assert padding_length(encoded, name, max_name) == expected
    assert (encoded + expected) % 32 == 0


@pytest.mark.requirement("ECH-51")
def test_padding_hides_names_up_to_the_maximum() -> None:
    """ECH-51: every name up to L gives the same padded length."""
    totals = {d + padding_length(200 + d, d, 64) + 200 for d in range(1, 65)}
    assert len(totals) == 1


# ClientHelloOuterAAD (§5.2) -----------------------------------------------------------


@pytest.mark.requirement("ECH-33")
@pytest.mark.parametrize("ech_last", [True, False], ids=["ech-last", "ech-before-psk"])
def test_aad_zeroes_exactly_the_payload_bytes(ech_last: bool) -> None:
    """ECH-33: only the payload bytes become zero, found by offset.

    The payload bytes also occur in another extension and in ``random``; a
    search-and-replace AAD (Go's ``decryptECHPayload``) would zero those.
    """
    payload = bytes(range(40, 72))
    offer = ECHClientHelloOuter(MTI, 9, b"\x11" * 32, payload)
    trailing = [] if ech_last else [ext(E.PRE_SHARED_KEY, payload + b"\x00")]
    outer = hello(
        [
            ext(0x1234, payload),
            GROUPS,
            ext(E.ENCRYPTED_CLIENT_HELLO, offer.encode()),
            *trailing,
        ],
        session_id=OUTER_SESSION_ID,
        random=payload,
    )
    raw = outer.encode()
    tail = sum(4 + len(e.data) for e in trailing)
    start = len(raw) - tail - len(payload)
    assert raw[start : start + len(payload)] == payload
    expected = raw[:start] + bytes(len(payload)) + raw[start + len(payload) :]
    aad = client_hello_outer_aad(outer, offer)
    assert aad == expected
    # Length prefixes, cipher_suite, config_id and enc stay as sent.
    assert len(aad) == len(raw)
    assert aad.count(payload) == raw.count(payload) - 1
