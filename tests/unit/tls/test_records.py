"""The record layer (RFC 8446 §5): protection, padding, limits, reassembly."""

from __future__ import annotations

import pytest

from ech.errors import BadRecordMac, DecodeError, RecordOverflow, UnexpectedMessage
from ech.tls.enums import CipherSuite, ContentType
from ech.tls.key_schedule import traffic_keys
from ech.tls.records import (
    MAX_CIPHERTEXT,
    MAX_PLAINTEXT,
    HandshakeReassembler,
    PaddingPolicy,
    Record,
    RecordLayer,
    pad_handshake_to,
)
from ech.tls.suites import SUITES, SuiteParams
from ech.tls.wire import frame_handshake, record_header
from tests.helpers import parse_records

SECRET = bytes(range(32))
SECRET_384 = bytes(range(48))
HS = ContentType.HANDSHAKE
APP = ContentType.APPLICATION_DATA


def _suite(suite: int = CipherSuite.TLS_AES_128_GCM_SHA256) -> SuiteParams:
    return SUITES[suite]


def _pair(
    suite: int = CipherSuite.TLS_AES_128_GCM_SHA256,
    padding: PaddingPolicy | None = None,
) -> tuple[RecordLayer, RecordLayer]:
    params = _suite(suite)
    secret = SECRET_384 if params.hash.digest_size == 48 else SECRET
    sender = RecordLayer(padding)
    sender.set_write_key(params, secret)
    receiver = RecordLayer()
    receiver.set_read_key(params, secret)
    return sender, receiver


def _receive_all(receiver: RecordLayer, data: bytes) -> list[Record]:
    receiver.receive(data)
    out: list[Record] = []
    while (record := receiver.next_record()) is not None:
        out.append(record)
    return out


def _seal(inner: bytes, seq: int = 0, *, length: int | None = None) -> bytes:
    """A record protected by hand under :data:`SECRET` (AES-128-GCM)."""
    params = _suite()
    keys = traffic_keys(params.hash, SECRET, params.key_length)
    nonce = (int.from_bytes(keys.iv, "big") ^ seq).to_bytes(12, "big")
    header = record_header(APP, len(inner) + 16 if length is None else length)
    return header + params.aead_factory(keys.key).encrypt(nonce, inner, header)


@pytest.mark.parametrize("suite", list(SUITES))
def test_protected_round_trip_hides_content_type(suite: int) -> None:
    sender, receiver = _pair(suite)
    sender.write(HS, b"\x14\x00\x00\x01x")
    sender.write(ContentType.ALERT, b"\x01\x00")
    data = sender.data_to_send()
    # On the wire every protected record claims to be application_data.
    assert [t for t, _ in parse_records(data)] == [APP, APP]
    assert _receive_all(receiver, data) == [
        Record(HS, b"\x14\x00\x00\x01x"),
        Record(ContentType.ALERT, b"\x01\x00"),
    ]


def test_padding_policy_pads_and_is_stripped() -> None:
    calls: list[tuple[int, int]] = []

    def policy(content_type: int, length: int) -> int:
        calls.append((content_type, length))
        return 100

    sender, receiver = _pair(padding=policy)
    sender.write(APP, b"hello")
    data = sender.data_to_send()
    ((_, fragment),) = parse_records(data)
    assert len(fragment) == 5 + 1 + 100 + 16
    assert calls == [(APP, 5)]
    assert _receive_all(receiver, data) == [Record(APP, b"hello")]


def test_padding_is_clipped_to_the_record_limit() -> None:
    sender, receiver = _pair(padding=lambda _t, _n: 1 << 20)
    sender.write(APP, b"x" * 1000)
    data = sender.data_to_send()
    ((_, fragment),) = parse_records(data)
    assert len(fragment) == MAX_PLAINTEXT + 1 + 16
    assert _receive_all(receiver, data) == [Record(APP, b"x" * 1000)]


def test_padding_only_application_data_record() -> None:
    sender, receiver = _pair(padding=lambda _t, _n: 7)
    sender.write(APP, b"")
    assert _receive_all(receiver, sender.data_to_send()) == [Record(APP, b"")]


def test_large_handshake_message_is_fragmented_and_reassembled() -> None:
    body = bytes(i % 251 for i in range(40000))
    message = frame_handshake(11, body)
    sender, receiver = _pair()
    sender.write(HS, message)
    data = sender.data_to_send()
    records = parse_records(data)
    assert len(records) == 3
    assert all(len(f) <= MAX_PLAINTEXT + 1 + 16 for _, f in records)
    reassembler = HandshakeReassembler(1 << 18)
    popped = []
    for record in _receive_all(receiver, data):
        assert record.content_type == HS
        reassembler.feed(record.payload)
        while (m := reassembler.pop()) is not None:
            popped.append(m)
    assert popped == [(11, body, message)]
    assert not reassembler.pending


def test_plaintext_fragmentation() -> None:
    layer = RecordLayer()
    layer.write(HS, bytes(MAX_PLAINTEXT + 1))
    records = parse_records(layer.data_to_send())
    assert [len(f) for _, f in records] == [MAX_PLAINTEXT, 1]
    assert [t for t, _ in records] == [HS, HS]


def test_several_messages_coalesced_in_one_record() -> None:
    messages = [
        frame_handshake(8, b""),
        frame_handshake(11, b"cert"),
        frame_handshake(20, bytes(32)),
    ]
    sender, receiver = _pair()
    sender.write(HS, b"".join(messages))
    data = sender.data_to_send()
    assert len(parse_records(data)) == 1
    (record,) = _receive_all(receiver, data)
    reassembler = HandshakeReassembler(1 << 18)
    reassembler.feed(record.payload)
    popped = []
    while (m := reassembler.pop()) is not None:
        popped.append(m[2])
    assert popped == messages


def test_reassembler_rejects_oversized_message() -> None:
    reassembler = HandshakeReassembler(100)
    reassembler.feed(bytes.fromhex("0b000065"))
    with pytest.raises(DecodeError):
        reassembler.pop()


def test_reassembler_key_change_with_partial_message() -> None:
    reassembler = HandshakeReassembler(1 << 18)
    reassembler.check_key_change()  # nothing pending: fine
    reassembler.feed(frame_handshake(20, bytes(32))[:10])
    assert reassembler.pop() is None
    assert reassembler.pending
    with pytest.raises(UnexpectedMessage):
        reassembler.check_key_change()


def test_oversized_plaintext_record_is_record_overflow() -> None:
    layer = RecordLayer()
    layer.receive(record_header(HS, MAX_PLAINTEXT + 1))  # header alone suffices
    with pytest.raises(RecordOverflow):
        layer.next_record()
    ok = RecordLayer()
    ok.receive(record_header(HS, MAX_PLAINTEXT) + bytes(MAX_PLAINTEXT))
    assert ok.next_record() == Record(HS, bytes(MAX_PLAINTEXT))


def test_oversized_protected_record_is_record_overflow() -> None:
    _, receiver = _pair()
    receiver.receive(record_header(APP, MAX_CIPHERTEXT + 1))
    with pytest.raises(RecordOverflow):
        receiver.next_record()


def test_protected_content_over_limit_is_record_overflow() -> None:
    _, receiver = _pair()
    receiver.receive(_seal(bytes(MAX_PLAINTEXT + 1) + b"\x17"))
    with pytest.raises(RecordOverflow):
        receiver.next_record()


def test_tampered_ciphertext_is_bad_record_mac() -> None:
    sender, receiver = _pair()
    sender.write(APP, b"attack at dawn")
    data = bytearray(sender.data_to_send())
    data[10] ^= 0x01
    receiver.receive(bytes(data))
    with pytest.raises(BadRecordMac):
        receiver.next_record()


def test_tampered_header_is_bad_record_mac() -> None:
    sender, receiver = _pair()
    sender.write(APP, b"attack at dawn")
    data = bytearray(sender.data_to_send())
    data[2] = 0x01  # legacy_record_version is part of the AAD
    receiver.receive(bytes(data))
    with pytest.raises(BadRecordMac):
        receiver.next_record()


def test_wrong_key_is_bad_record_mac() -> None:
    sender = RecordLayer()
    sender.set_write_key(_suite(), SECRET)
    receiver = RecordLayer()
    receiver.set_read_key(_suite(), bytes(32))
    sender.write(APP, b"x")
    receiver.receive(sender.data_to_send())
    with pytest.raises(BadRecordMac):
        receiver.next_record()


def test_all_zero_inner_plaintext_is_unexpected_message() -> None:
    _, receiver = _pair()
    receiver.receive(_seal(bytes(5)))
    with pytest.raises(UnexpectedMessage):
        receiver.next_record()


def test_empty_protected_handshake_record_is_unexpected_message() -> None:
    _, receiver = _pair()
    receiver.receive(_seal(b"\x16\x00\x00"))
    with pytest.raises(UnexpectedMessage):
        receiver.next_record()


def test_inner_content_type_and_padding_are_parsed() -> None:
    _, receiver = _pair()
    receiver.receive(_seal(b"abc\x16" + bytes(20)))
    assert receiver.next_record() == Record(HS, b"abc")


def test_sequence_numbers_advance() -> None:
    sender, receiver = _pair()
    sender.write(APP, b"same")
    first = sender.data_to_send()
    sender.write(APP, b"same")
    second = sender.data_to_send()
    assert first != second
    assert _receive_all(receiver, first + second) == [Record(APP, b"same")] * 2


def test_replayed_or_reordered_record_is_bad_record_mac() -> None:
    sender, receiver = _pair()
    sender.write(APP, b"one")
    first = sender.data_to_send()
    sender.write(APP, b"two")
    second = sender.data_to_send()
    receiver.receive(second)
    with pytest.raises(BadRecordMac):
        receiver.next_record()
    _, receiver = _pair()
    assert _receive_all(receiver, first) == [Record(APP, b"one")]
    receiver.receive(first)
    with pytest.raises(BadRecordMac):
        receiver.next_record()


def test_records_split_at_every_byte() -> None:
    sender, receiver = _pair()
    sender.write(APP, b"first")
    sender.write(HS, frame_handshake(24, b"\x00"))
    data = sender.data_to_send()
    got: list[Record] = []
    for i in range(len(data)):
        got += _receive_all(receiver, data[i : i + 1])
    assert got == [Record(APP, b"first"), Record(HS, frame_handshake(24, b"\x00"))]
    assert receiver.buffered() == 0


def test_plaintext_application_data_before_keys_is_unexpected_message() -> None:
    layer = RecordLayer()
    layer.receive(record_header(APP, 1) + b"x")
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


def test_unprotected_handshake_after_keys_is_unexpected_message() -> None:
    _, receiver = _pair()
    receiver.receive(record_header(HS, 4) + frame_handshake(8, b""))
    with pytest.raises(UnexpectedMessage):
        receiver.next_record()


def test_plaintext_change_cipher_spec_passes_after_keys() -> None:
    _, receiver = _pair()
    receiver.receive(record_header(ContentType.CHANGE_CIPHER_SPEC, 1) + b"\x01")
    assert receiver.next_record() == Record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")


@pytest.mark.parametrize("content_type", [0, 19, 24, 255])
def test_unknown_record_type_is_unexpected_message(content_type: int) -> None:
    layer = RecordLayer()
    layer.receive(record_header(content_type, 1) + b"x")
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


@pytest.mark.parametrize("content_type", [HS, ContentType.ALERT])
def test_empty_plaintext_record_is_decode_error(content_type: int) -> None:
    layer = RecordLayer()
    layer.receive(record_header(content_type, 0))
    with pytest.raises(DecodeError):
        layer.next_record()


def test_writing_empty_handshake_is_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        RecordLayer().write(HS, b"")


def test_change_cipher_spec_record_bytes() -> None:
    layer = RecordLayer()
    layer.set_write_key(_suite(), SECRET)  # CCS is never protected
    layer.write_change_cipher_spec()
    assert layer.data_to_send() == bytes.fromhex("140303000101")


def test_data_to_send_drains() -> None:
    layer = RecordLayer()
    layer.write(HS, b"x")
    assert layer.data_to_send()
    assert layer.data_to_send() == b""


def test_read_protected_flag() -> None:
    layer = RecordLayer()
    assert not layer.read_protected
    layer.set_read_key(_suite(), SECRET)
    assert layer.read_protected


# judged as early as the bytes allow (RFC 8446 §5.1, §5.2) ---------------------------


@pytest.mark.parametrize("start", [b"G", b"GET / HTTP/1.1\r\n", b"POST"])
def test_bytes_that_cannot_start_a_record_fail_on_the_first_byte(start: bytes) -> None:
    """Plain HTTP is refused at once: no record starts with ``G`` (§5.1)."""
    layer = RecordLayer()
    layer.receive(start)
    with pytest.raises(UnexpectedMessage, match="content type"):
        layer.next_record()


def test_a_valid_first_byte_waits_for_the_header() -> None:
    layer = RecordLayer()
    layer.receive(b"\x16\x03")
    assert layer.next_record() is None


@pytest.mark.parametrize("suite", list(SUITES))
def test_ciphertext_too_long_for_its_suite_is_overflow_on_the_header(
    suite: int,
) -> None:
    """TLSInnerPlaintext is at most 2^14 + 1 bytes (§5.2, §5.4): a longer
    ciphertext than that plus the suite's tag is refused before its body."""
    _, receiver = _pair(suite)
    tag = SUITES[suite].tag_length
    receiver.receive(record_header(APP, MAX_PLAINTEXT + 1 + tag + 1))
    with pytest.raises(RecordOverflow):
        receiver.next_record()
    _, receiver = _pair(suite)
    receiver.receive(record_header(APP, MAX_PLAINTEXT + 1 + tag))
    assert receiver.next_record() is None  # legal length: waits for the body


def test_padded_inner_plaintext_over_limit_is_record_overflow() -> None:
    """Padding counts: content 1 + type 1 + zeros up to 2^14 + 2 (§5.4)."""
    _, receiver = _pair()
    receiver.receive(_seal(b"x\x17" + bytes(MAX_PLAINTEXT)))
    with pytest.raises(RecordOverflow):
        receiver.next_record()
    _, receiver = _pair()
    receiver.receive(_seal(b"x\x17" + bytes(MAX_PLAINTEXT - 1)))
    assert receiver.next_record() == Record(APP, b"x")


def test_ccm_8_records_carry_an_8_byte_tag() -> None:
    sender, receiver = _pair(CipherSuite.TLS_AES_128_CCM_8_SHA256)
    sender.write(APP, b"abc")
    data = sender.data_to_send()
    ((_, fragment),) = parse_records(data)
    assert len(fragment) == 3 + 1 + 8
    assert _receive_all(receiver, data) == [Record(APP, b"abc")]


def test_padding_policy_per_write_key() -> None:
    """A key may carry its own padding policy; the layer's is the default."""
    params = _suite()
    sender = RecordLayer(lambda _t, _n: 0)
    sender.set_write_key(params, SECRET, lambda _t, n: 100 - n)
    sender.write(HS, b"\x14\x00\x00\x01x")
    sender.set_write_key(params, SECRET)  # flushes under the first key
    sender.write(APP, b"y")
    first, second = parse_records(sender.data_to_send())
    assert len(first[1]) == 100 + 1 + 16
    assert len(second[1]) == 1 + 1 + 16


def test_pad_handshake_to_a_target() -> None:
    """Up to the target: exactly the target; beyond: the next bucket; never
    past 2^14 of content; other content types untouched."""
    policy = pad_handshake_to(1000, bucket=32)
    assert policy(HS, 10) == 990
    assert policy(HS, 1000) == 0
    assert policy(HS, 1001) == 1024 - 1001
    assert policy(HS, MAX_PLAINTEXT - 1) == 1
    assert policy(APP, 10) == 0
    assert policy(ContentType.ALERT, 2) == 0
    assert pad_handshake_to(MAX_PLAINTEXT + 5)(HS, 10) == MAX_PLAINTEXT - 10
    with pytest.raises(ValueError, match="bucket"):
        pad_handshake_to(10, bucket=0)
