"""The vector codec (RFC 8446 §3): Reader, Writer and FrameBuffer."""

from __future__ import annotations

import pytest

from ech.errors import DecodeError
from ech.tls.wire import (
    FrameBuffer,
    LengthPrefix,
    Reader,
    Writer,
    encode_u16_list,
    handshake_header,
    record_header,
)


def test_reader_integers_are_big_endian() -> None:
    r = Reader(bytes.fromhex("01 0203 040506 0708090a 0b0c"))
    assert r.u8() == 0x01
    assert r.u16() == 0x0203
    assert r.u24() == 0x040506
    assert r.u32() == 0x0708090A
    assert r.uint(2) == 0x0B0C
    r.expect_end()


def test_writer_integers_are_big_endian() -> None:
    w = Writer()
    w.u8(0x01)
    w.u16(0x0203)
    w.u24(0x040506)
    w.u32(0x0708090A)
    assert w.getvalue() == bytes.fromhex("01 0203 040506 0708090a")


@pytest.mark.parametrize(
    ("size", "method"), [(1, "u8"), (2, "u16"), (3, "u24"), (4, "u32")]
)
def test_truncated_integer_is_decode_error(size: int, method: str) -> None:
    r = Reader(bytes(size - 1))
    with pytest.raises(DecodeError):
        getattr(r, method)()


def test_truncated_raw_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"abc").raw(4)


@pytest.mark.parametrize("prefix", [1, 2, 3])
def test_opaque_round_trip(prefix: LengthPrefix) -> None:
    w = Writer()
    w.opaque(prefix, b"hello")
    data = w.getvalue()
    assert data == (5).to_bytes(prefix, "big") + b"hello"
    r = Reader(data)
    assert r.opaque(prefix) == b"hello"
    r.expect_end()


def test_opaque_below_min_len_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x01a").opaque(1, min_len=2)
    assert Reader(b"\x02ab").opaque(1, min_len=2) == b"ab"


def test_opaque_above_max_len_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x03abc").opaque(1, max_len=2)
    assert Reader(b"\x02ab").opaque(1, max_len=2) == b"ab"


def test_opaque_longer_than_data_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x00\x05abcd").opaque(2)


def test_nested_vectors_are_consumed_exactly() -> None:
    # outer<2> { inner<1> { u16 } }
    data = bytes.fromhex("0003 02 abcd")
    r = Reader(data)
    with r.vector(2), r.vector(1):
        assert r.u16() == 0xABCD
    r.expect_end()


def test_trailing_bytes_in_nested_vector_are_decode_error() -> None:
    data = bytes.fromhex("0004 03 abcdef")  # inner holds 3 bytes, we read 2
    r = Reader(data)
    with pytest.raises(DecodeError), r.vector(2), r.vector(1):
        r.u16()


def test_vector_scope_stops_reads_at_its_end() -> None:
    r = Reader(bytes.fromhex("01 aa bb"))
    with pytest.raises(DecodeError), r.vector(1):
        r.u16()  # would cross into the byte after the vector


def test_vector_longer_than_data_is_decode_error() -> None:
    with pytest.raises(DecodeError), Reader(bytes.fromhex("05 aabb")).vector(1):
        pass


def test_vector_length_bounds() -> None:
    with pytest.raises(DecodeError), Reader(b"\x01a").vector(1, min_len=2):
        pass
    with pytest.raises(DecodeError), Reader(b"\x03abc").vector(1, max_len=2):
        pass


def test_items_reads_every_item_and_checks_alignment() -> None:
    r = Reader(bytes.fromhex("0004 0001 0002"))
    assert r.items(2, r.u16) == [1, 2]
    r.expect_end()
    r = Reader(bytes.fromhex("0003 0001 00"))
    with pytest.raises(DecodeError):
        r.items(2, r.u16)


def test_items_min_len_is_in_bytes() -> None:
    r = Reader(b"\x00\x00")
    with pytest.raises(DecodeError):
        r.items(2, r.u16, min_len=2)


def test_expect_end_rejects_trailing_bytes() -> None:
    r = Reader(b"\x01\x02")
    r.u8()
    assert r.remaining() == 1
    with pytest.raises(DecodeError):
        r.expect_end()


def test_rest_reads_to_scope_end() -> None:
    r = Reader(bytes.fromhex("02 aabb cc"))
    with r.vector(1):
        assert r.rest() == b"\xaa\xbb"
    assert r.rest() == b"\xcc"


@pytest.mark.parametrize(("prefix", "limit"), [(1, 0xFF), (2, 0xFFFF)])
def test_writer_opaque_overflow_is_value_error(
    prefix: LengthPrefix, limit: int
) -> None:
    w = Writer()
    w.opaque(prefix, bytes(limit))  # exactly fits
    with pytest.raises(ValueError, match="fit"):
        Writer().opaque(prefix, bytes(limit + 1))


@pytest.mark.parametrize(("prefix", "limit"), [(1, 0xFF), (2, 0xFFFF)])
def test_writer_vector_overflow_is_value_error(
    prefix: LengthPrefix, limit: int
) -> None:
    w = Writer()
    with w.vector(prefix):
        w.raw(bytes(limit))
    assert w.getvalue()[:prefix] == limit.to_bytes(prefix, "big")
    w = Writer()
    with pytest.raises(ValueError, match="fit"), w.vector(prefix):
        w.raw(bytes(limit + 1))


def test_writer_nested_vectors_patch_lengths() -> None:
    w = Writer()
    with w.vector(2):
        w.u8(7)
        with w.vector(1):
            w.raw(b"xyz")
    assert w.getvalue() == bytes.fromhex("0005 07 03") + b"xyz"


def test_encode_u16_list() -> None:
    assert encode_u16_list([1, 0x1301], 2) == bytes.fromhex("0004 0001 1301")
    assert encode_u16_list((0x0304,), 1) == bytes.fromhex("02 0304")


def test_record_and_handshake_headers() -> None:
    assert record_header(22, 0x0123) == bytes.fromhex("16 0303 0123")
    assert handshake_header(1, 0x010203) == bytes.fromhex("01 010203")
    with pytest.raises(ValueError, match="too long"):
        handshake_header(1, 1 << 24)


def _frames(*bodies: bytes) -> bytes:
    return b"".join(
        bytes((i + 1,)) + len(b).to_bytes(3, "big") + b for i, b in enumerate(bodies)
    )


def _drain(fb: FrameBuffer) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    while (peeked := fb.peek()) is not None:
        frame = fb.pop(peeked[1])
        if frame is None:
            break
        out.append(frame)
    return out


def test_framebuffer_coalesced_frames() -> None:
    fb = FrameBuffer(4, 3)
    fb.feed(_frames(b"one", b"", b"three"))
    frames = _drain(fb)
    assert [body for _, body in frames] == [b"one", b"", b"three"]
    assert [header[0] for header, _ in frames] == [1, 2, 3]
    assert len(fb) == 0


def test_framebuffer_split_frames_one_byte_at_a_time() -> None:
    data = _frames(b"alpha", b"beta")
    fb = FrameBuffer(4, 3)
    frames: list[tuple[bytes, bytes]] = []
    for i in range(len(data)):
        fb.feed(data[i : i + 1])
        frames += _drain(fb)
    assert [body for _, body in frames] == [b"alpha", b"beta"]
    assert len(fb) == 0


def test_framebuffer_incomplete_header_and_body() -> None:
    fb = FrameBuffer(5, 2)
    fb.feed(bytes.fromhex("1703"))
    assert fb.peek() is None
    fb.feed(bytes.fromhex("03 0004 aabb"))
    assert fb.peek() == (0x17, 4)
    assert fb.pop(4) is None  # body still incomplete; nothing consumed
    assert len(fb) == 7
    fb.feed(bytes.fromhex("ccdd"))
    assert fb.pop(4) == (bytes.fromhex("1703030004"), bytes.fromhex("aabbccdd"))
