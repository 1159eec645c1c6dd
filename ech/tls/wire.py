"""The one place that reads and writes TLS vectors (RFC 8446 §3).

Everything else in ``ech`` calls :class:`Reader` and :class:`Writer`; no
other module slices bytes by offset. A :class:`Reader` runs over untrusted
input, so every failure is a :class:`~ech.tls.errors.DecodeError` alert. A
:class:`Writer` builds our own messages, so a vector too long for its length
prefix is our bug and raises ``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

from ech.tls.errors import DecodeError

LengthPrefix = Literal[1, 2, 3]
T = TypeVar("T")

_MAX = {1: 0xFF, 2: 0xFFFF, 3: 0xFFFFFF}


class Reader:
    """A cursor over untrusted bytes.

    Length-prefixed vectors are read inside :meth:`vector` scopes, which must
    be consumed exactly, as RFC 8446 §3.4 requires of every vector.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data if type(data) is bytes else bytes(data)
        self._pos = 0
        self._end = len(self._data)

    def _take(self, n: int) -> int:
        start = self._pos
        if n > self._end - start:
            raise DecodeError("truncated data")
        self._pos = start + n
        return start

    def u8(self) -> int:
        """Read one byte."""
        start = self._take(1)
        return self._data[start]

    def u16(self) -> int:
        """Read a big-endian 16-bit integer."""
        start = self._take(2)
        return (self._data[start] << 8) | self._data[start + 1]

    def u24(self) -> int:
        """Read a big-endian 24-bit integer."""
        start = self._take(3)
        return int.from_bytes(self._data[start : start + 3], "big")

    def u32(self) -> int:
        """Read a big-endian 32-bit integer."""
        start = self._take(4)
        return int.from_bytes(self._data[start : start + 4], "big")

    def uint(self, size: LengthPrefix) -> int:
        """Read an integer of ``size`` bytes."""
        start = self._take(size)
        return int.from_bytes(self._data[start : start + size], "big")

    def raw(self, n: int) -> bytes:
        """Read exactly ``n`` bytes."""
        start = self._take(n)
        return self._data[start : start + n]

    def rest(self) -> bytes:
        """Read everything left in the current scope."""
        return self.raw(self._end - self._pos)

    def opaque(
        self, prefix: LengthPrefix, *, min_len: int = 0, max_len: int | None = None
    ) -> bytes:
        """Read ``opaque x<min_len..max_len>`` with a ``prefix``-byte length."""
        # The most frequent read: length and body taken here, not via uint/raw.
        data = self._data
        start = self._take(prefix)
        length = int.from_bytes(data[start : start + prefix], "big")
        if length < min_len or (max_len is not None and length > max_len):
            raise DecodeError(f"vector length {length} out of range")
        start = self._take(length)
        return data[start : start + length]

    def u16_items(
        self, prefix: LengthPrefix, *, min_len: int = 0, max_len: int | None = None
    ) -> tuple[int, ...]:
        """Read ``uint16 list<min_len..max_len>`` in one step (a hot shape)."""
        data = self.opaque(prefix, min_len=min_len, max_len=max_len)
        if len(data) % 2:
            raise DecodeError("odd length for a uint16 vector")
        return struct.unpack(f">{len(data) // 2}H", data)

    def typed_opaques(
        self, prefix: LengthPrefix, *, min_len: int = 0
    ) -> list[tuple[int, bytes]]:
        """Read a vector of ``(uint16 type, opaque data<0..2^16-1>)`` pairs.

        The shape of every extension block (RFC 8446 §4.2) and of ECHConfig
        extensions; one tight loop, since every handshake message has one.
        """
        out: list[tuple[int, bytes]] = []
        data = self._data
        with self.vector(prefix, min_len=min_len):
            pos, end = self._pos, self._end
            while pos < end:
                if end - pos < 4:
                    raise DecodeError("truncated extension header")
                ext_type = (data[pos] << 8) | data[pos + 1]
                length = (data[pos + 2] << 8) | data[pos + 3]
                pos += 4
                if length > end - pos:
                    raise DecodeError("truncated extension body")
                out.append((ext_type, data[pos : pos + length]))
                pos += length
            self._pos = pos
        return out

    def items(
        self,
        prefix: LengthPrefix,
        read_item: Callable[[], T],
        *,
        min_len: int = 0,
        max_len: int | None = None,
    ) -> list[T]:
        """Read a vector of items, each parsed by ``read_item``."""
        out: list[T] = []
        with self.vector(prefix, min_len=min_len, max_len=max_len):
            while self._pos < self._end:
                out.append(read_item())
        return out

    def vector(
        self, prefix: LengthPrefix, *, min_len: int = 0, max_len: int | None = None
    ) -> _ReadScope:
        """Scope reads to one vector, which must be consumed exactly."""
        length = self.uint(prefix)
        if length < min_len or (max_len is not None and length > max_len):
            raise DecodeError(f"vector length {length} out of range")
        if length > self._end - self._pos:
            raise DecodeError("truncated vector")
        scope = _ReadScope(self, self._end)
        self._end = self._pos + length
        return scope

    def remaining(self) -> int:
        """Bytes left in the current scope."""
        return self._end - self._pos

    def expect_end(self) -> None:
        """Fail unless the input is fully consumed."""
        if self._pos != self._end:
            raise DecodeError("trailing bytes")


class _ReadScope:
    """Context manager of :meth:`Reader.vector` (a class: cheaper than a generator)."""

    __slots__ = ("_outer_end", "_reader")

    def __init__(self, reader: Reader, outer_end: int) -> None:
        self._reader = reader
        self._outer_end = outer_end

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        reader = self._reader
        if exc_type is None:
            if reader._pos != reader._end:
                raise DecodeError("trailing bytes in vector")
            reader._end = self._outer_end


class _WriteScope:
    """Context manager of :meth:`Writer.vector`: patches the length on exit."""

    __slots__ = ("_buf", "_prefix", "_start")

    def __init__(self, buf: bytearray, prefix: LengthPrefix) -> None:
        self._buf = buf
        self._prefix = prefix
        self._start = len(buf)
        buf += b"\xff" * prefix

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            return
        prefix, start = self._prefix, self._start
        length = len(self._buf) - start - prefix
        if length > _MAX[prefix]:
            raise ValueError(f"{length} bytes do not fit a {prefix}-byte length")
        self._buf[start : start + prefix] = length.to_bytes(prefix, "big")


class Writer:
    """Builds one TLS structure."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, value: int) -> None:
        """Write one byte."""
        self._buf.append(value)

    def u16(self, value: int) -> None:
        """Write a big-endian 16-bit integer."""
        self._buf += value.to_bytes(2, "big")

    def u24(self, value: int) -> None:
        """Write a big-endian 24-bit integer."""
        self._buf += value.to_bytes(3, "big")

    def u32(self, value: int) -> None:
        """Write a big-endian 32-bit integer."""
        self._buf += value.to_bytes(4, "big")

    def raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self._buf += data

    def opaque(self, prefix: LengthPrefix, data: bytes) -> None:
        """Write ``data`` behind a ``prefix``-byte length."""
        if len(data) > _MAX[prefix]:
            raise ValueError(f"{len(data)} bytes do not fit a {prefix}-byte length")
        self._buf += len(data).to_bytes(prefix, "big")
        self._buf += data

    def vector(self, prefix: LengthPrefix) -> _WriteScope:
        """Write a placeholder length and patch it with the real one on exit."""
        return _WriteScope(self._buf, prefix)

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._buf)


def encode_u16_list(values: tuple[int, ...] | list[int], prefix: LengthPrefix) -> bytes:
    """Encode a vector of uint16 values, a shape TLS uses everywhere."""
    try:
        body = struct.pack(f">{len(values)}H", *values)
    except struct.error:
        raise ValueError("a uint16 list value is out of range") from None
    return encode_opaque(prefix, body)


_TYPE_LENGTH = struct.Struct(">HH")


def encode_typed_opaques(items: Iterable[tuple[int, bytes]]) -> bytes:
    """``(uint16 type, opaque data<0..2^16-1>)`` pairs, without the outer length.

    The inverse of :meth:`Reader.typed_opaques`: the shape of every
    extension block (RFC 8446 §4.2). One ``struct`` call per item, as
    every handshake message carries such a block.
    """
    parts: list[bytes] = []
    try:
        for item_type, data in items:
            parts.append(_TYPE_LENGTH.pack(item_type, len(data)))
            parts.append(data)
    except struct.error:
        raise ValueError("extension type or length out of range") from None
    return b"".join(parts)


class FrameBuffer:
    """A byte stream cut into type-length-value frames.

    TLS has two such streams: records (1-byte type, 2-byte version, 2-byte
    length; RFC 8446 §5.1) and handshake messages (1-byte type, 3-byte
    length; §4). Frames may arrive split or coalesced in any way.
    """

    __slots__ = ("_buf", "_header", "_length_size")

    def __init__(self, header_size: int, length_size: int) -> None:
        self._buf = bytearray()
        self._header = header_size
        self._length_size = length_size

    def feed(self, data: bytes) -> None:
        """Append bytes from the stream."""
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def take_all(self) -> bytes:
        """Everything buffered, leaving the buffer empty."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def first(self) -> int | None:
        """The next frame's type byte, as soon as it has arrived."""
        return self._buf[0] if self._buf else None

    def peek(self) -> tuple[int, int] | None:
        """``(type, body length)`` of the next frame, once its header is in."""
        buf = self._buf
        if len(buf) < self._header:
            return None
        start = self._header - self._length_size
        return buf[0], int.from_bytes(buf[start : self._header], "big")

    def pop(self, body_length: int) -> tuple[bytes, bytes] | None:
        """Take ``(header, body)`` of the next frame, if it is complete."""
        end = self._header + body_length
        if len(self._buf) < end:
            return None
        header = bytes(self._buf[: self._header])
        body = bytes(self._buf[self._header : end])
        del self._buf[:end]
        return header, body


def record_header(content_type: int, length: int) -> bytes:
    """A TLSPlaintext/TLSCiphertext header (RFC 8446 §5.1, legacy version 0x0303)."""
    return bytes((content_type, 3, 3)) + length.to_bytes(2, "big")


def handshake_header(msg_type: int, length: int) -> bytes:
    """A handshake message header: type and 24-bit length (RFC 8446 §4)."""
    if length >= 1 << 24:
        raise ValueError("handshake message too long")
    return bytes((msg_type,)) + length.to_bytes(3, "big")


def frame_handshake(msg_type: int, body: bytes) -> bytes:
    """Prefix a handshake body with its type and 24-bit length (RFC 8446 §4)."""
    return handshake_header(msg_type, len(body)) + body


def encode_opaque(prefix: LengthPrefix, data: bytes) -> bytes:
    """``data`` behind a ``prefix``-byte length, for hot paths that skip a Writer."""
    if len(data) > _MAX[prefix]:
        raise ValueError(f"{len(data)} bytes do not fit a {prefix}-byte length")
    return len(data).to_bytes(prefix, "big") + data
