"""Round-trip properties of the codec: parse(encode(m)) == m, byte for byte."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from ech.testing import strategies as s
from ech.tls import extensions as ext
from ech.tls.extensions import (
    Extension,
    KeyShareEntry,
    OfferedPsks,
    read_extensions,
    write_extensions,
)
from ech.tls.messages import MESSAGE_CLASSES, Message, ServerHello
from ech.tls.records import HandshakeReassembler
from ech.tls.wire import Reader, Writer, frame_handshake


def _assert_round_trip(message: Message) -> None:
    body = message.encode()
    parsed = type(message).parse(body)
    assert parsed == message
    assert parsed.encode() == body
    # A parsed message returns the body it remembers; a copy (which does not
    # remember it) proves the encoder itself rebuilds those bytes.
    assert dataclasses.replace(parsed).encode() == body  # type: ignore[type-var]


@given(s.messages)
def test_any_message_round_trips(message: Message) -> None:
    _assert_round_trip(message)


@given(s.client_hellos)
def test_client_hello_round_trips(message: Message) -> None:
    _assert_round_trip(message)


@given(s.server_hello_values)
def test_server_hello_round_trips(message: Message) -> None:
    _assert_round_trip(message)


@given(s.certificates)
def test_certificate_round_trips(message: Message) -> None:
    _assert_round_trip(message)


@given(s.new_session_tickets)
def test_new_session_ticket_round_trips(message: Message) -> None:
    _assert_round_trip(message)


@given(
    st.one_of(s.encrypted_extensions, s.certificate_requests, s.certificate_verifies)
)
def test_other_messages_round_trip(message: Message) -> None:
    _assert_round_trip(message)


@given(s.messages)
def test_message_class_table_matches(message: Message) -> None:
    assert MESSAGE_CLASSES[message.msg_type] is type(message)


_WITH_EXTENSIONS = st.one_of(
    s.client_hellos,
    s.server_hello_values,
    s.encrypted_extensions,
    s.certificate_requests,
    s.new_session_tickets,
).filter(lambda m: bool(m.extensions))


@given(_WITH_EXTENSIONS, st.data())
def test_an_extension_body_spliced_in_equals_the_re_encoding(
    message: Message, data: st.DataObject
) -> None:
    # The first extension of a type is replaced, as with_extension does.
    ext_type = data.draw(st.sampled_from([e.type for e in message.extensions]))
    size = len(message.extension(ext_type) or b"")
    body = data.draw(st.binary(min_size=size, max_size=size))
    expected = message.with_extension(Extension(ext_type, body)).encode()
    parsed = type(message).parse(message.encode())
    assert message.encode_with_extension_body(ext_type, body) == expected
    assert parsed.encode_with_extension_body(ext_type, body) == expected


@given(s.server_hello_values, st.binary(min_size=32, max_size=32))
def test_a_random_spliced_in_equals_the_re_encoding(
    sh: ServerHello, random: bytes
) -> None:
    expected = dataclasses.replace(sh, random=random).encode()
    parsed = ServerHello.parse(sh.encode())
    for known in (sh, parsed):
        copy = known.with_random(random)
        assert copy.encode() == expected
        assert copy == ServerHello.parse(expected)


@given(s.extension_lists)
def test_extension_blocks_keep_order_and_bytes(
    extensions: tuple[Extension, ...],
) -> None:
    w = Writer()
    write_extensions(w, extensions)
    encoded = w.getvalue()
    r = Reader(encoded)
    assert read_extensions(r) == extensions
    r.expect_end()


@given(st.lists(s.messages, min_size=1, max_size=5), st.data())
def test_handshake_framing_survives_any_split(
    messages: list[Message], data: st.DataObject
) -> None:
    stream = b"".join(frame_handshake(m.msg_type, m.encode()) for m in messages)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=10))))
    reassembler = HandshakeReassembler(1 << 18)
    popped: list[Message] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reassembler.feed(stream[start:end])
        while (item := reassembler.pop()) is not None:
            msg_type, body, raw = item
            assert raw[4:] == body
            popped.append(MESSAGE_CLASSES[msg_type].parse(body))
    assert popped == messages
    assert not reassembler.pending


# extension bodies -----------------------------------------------------------------


@given(s.host_names)
def test_server_name_round_trips(host: str) -> None:
    assert ext.decode_server_name(ext.encode_server_name(host)) == host


@given(st.lists(s.u16s, min_size=1, max_size=127))
def test_client_versions_round_trip(versions: list[int]) -> None:
    assert ext.decode_client_versions(ext.encode_client_versions(versions)) == tuple(
        versions
    )


@given(st.lists(s.u16s, min_size=1, max_size=50))
def test_u16_lists_round_trip(values: list[int]) -> None:
    assert ext.decode_u16_list(ext.encode_u16_vector(values)) == tuple(values)


@given(s.u16s)
def test_u16_round_trips(value: int) -> None:
    assert ext.decode_u16(ext.encode_u16(value)) == value


@given(st.lists(s.key_share_entries, max_size=5))
def test_client_key_shares_round_trip(shares: list[KeyShareEntry]) -> None:
    assert ext.decode_client_key_shares(ext.encode_client_key_shares(shares)) == tuple(
        shares
    )


@given(s.key_share_entries)
def test_server_key_share_round_trips(share: KeyShareEntry) -> None:
    assert ext.decode_server_key_share(ext.encode_server_key_share(share)) == share


@given(s.alpn_names)
def test_alpn_round_trips(names: list[bytes]) -> None:
    assert ext.decode_alpn(ext.encode_alpn(names)) == tuple(names)


@given(st.lists(s.u8s, min_size=1, max_size=20))
def test_psk_modes_round_trip(modes: list[int]) -> None:
    assert ext.decode_psk_modes(ext.encode_psk_modes(modes)) == tuple(modes)


@given(s.offered_psks())
def test_pre_shared_key_round_trips(offered: OfferedPsks) -> None:
    body = offered.encode()
    assert OfferedPsks.parse(body) == offered
    assert body.endswith(offered.encode_binders())


@given(st.binary(min_size=1, max_size=300))
def test_cookie_round_trips(cookie: bytes) -> None:
    assert ext.decode_cookie(ext.encode_cookie(cookie)) == cookie


@given(st.integers(0, 2000))
def test_padding_length(length: int) -> None:
    assert ext.decode_padding(bytes(length)) == length


# integers --------------------------------------------------------------------------


@given(s.u8s, s.u16s, st.integers(0, 0xFFFFFF), s.u32s, st.binary(max_size=300))
def test_writer_reader_round_trip(a: int, b: int, c: int, d: int, blob: bytes) -> None:
    w = Writer()
    w.u8(a)
    w.u16(b)
    w.u24(c)
    w.u32(d)
    w.opaque(2, blob)
    with w.vector(3):
        w.opaque(1, blob[:255])
    r = Reader(w.getvalue())
    assert (r.u8(), r.u16(), r.u24(), r.u32(), r.opaque(2)) == (a, b, c, d, blob)
    with r.vector(3):
        assert r.opaque(1) == blob[:255]
    r.expect_end()
