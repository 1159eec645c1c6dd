"""The TLS 1.3 record layer (RFC 8446 §5).

Frames, protects and deprotects records; hides content types inside
``TLSInnerPlaintext``; counts sequence numbers; enforces the size limits;
and fragments and reassembles handshake messages across records. It knows
nothing of handshake states: the connection tells it when keys change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from ech.tls.enums import AlertLevel, ContentType
from ech.tls.errors import (
    BadRecordMac,
    DecodeError,
    MessageTooLong,
    RecordOverflow,
    UnexpectedMessage,
)
from ech.tls.key_schedule import traffic_keys
from ech.tls.suites import AEAD, SuiteParams
from ech.tls.wire import FrameBuffer, record_header

MAX_PLAINTEXT = 1 << 14
#: RFC 8446 §5.2: TLSCiphertext.length must not exceed 2^14 + 256.
MAX_CIPHERTEXT = MAX_PLAINTEXT + 256
MAX_SEQUENCE = (1 << 64) - 1

#: Given the content type and the length of a record's content, how many zero
#: bytes of padding to add (RFC 8446 §5.4). The result is clipped so that the
#: record still fits the size limit.
PaddingPolicy = Callable[[int, int], int]


def pad_handshake_to(target: int, bucket: int = 32) -> PaddingPolicy:
    """A policy padding each handshake record's content up to ``target`` bytes.

    Content already longer is padded up to a multiple of ``bucket``; both
    are clipped so the record stays within 2^14 bytes of TLSInnerPlaintext
    content (RFC 8446 §5.4). Other content types are not padded. A flight
    of up to 2^14 bytes thus always makes one record of the same length; a
    longer one fills its records, so only their count can differ.
    """
    if target < 0 or bucket < 1:
        raise ValueError("target must be >= 0 and bucket >= 1")

    def policy(content_type: int, length: int) -> int:
        if content_type != ContentType.HANDSHAKE:
            return 0
        padded = target if length <= target else -(-length // bucket) * bucket
        return min(padded, MAX_PLAINTEXT) - length

    return policy


@dataclass(frozen=True, slots=True)
class Record:
    """One received record, after deprotection."""

    content_type: int
    payload: bytes


class _Protection:
    """One direction's AEAD state: key, IV, sequence number, padding."""

    __slots__ = ("aead", "iv", "padding", "seq", "tag_length")

    def __init__(
        self, suite: SuiteParams, secret: bytes, padding: PaddingPolicy | None = None
    ) -> None:
        keys = traffic_keys(suite.hash, secret, suite.key_length)
        self.aead: AEAD = suite.aead_factory(keys.key)
        self.iv = int.from_bytes(keys.iv, "big")
        self.seq = 0
        #: The suite's AEAD expansion: 16, or 8 for CCM_8 (RFC 8446 §5.2).
        self.tag_length = suite.tag_length
        self.padding = padding

    def peek_nonce(self) -> bytes:
        """The nonce of the next record (RFC 8446 §5.3), without using it."""
        if self.seq >= MAX_SEQUENCE:
            # RFC 8446 §5.3: never wrap; we key-update long before this.
            raise RuntimeError("record sequence number exhausted")
        return (self.iv ^ self.seq).to_bytes(12, "big")

    def nonce(self) -> bytes:
        nonce = self.peek_nonce()
        self.seq += 1
        return nonce


@dataclass
class _EarlyDataSkip:
    """The 0-RTT records a server rejecting early data still has to pass over.

    RFC 8446 §4.2.10: a server that ignores early_data "skips past early data
    by attempting to deprotect received records using the handshake traffic
    key, discarding records which fail deprotection (up to the configured
    max_early_data_size)"; after a HelloRetryRequest it "ignores early data by
    skipping all records with an external content type of application_data
    (indicating that they are encrypted), up to the configured
    max_early_data_size".
    """

    budget: int
    #: True: trial-decrypt with the handshake keys; False: after HRR, skip
    #: every protected record until the second ClientHello.
    trial: bool


#: The record content types of RFC 8446 §5.1.
_CONTENT_TYPES = frozenset(
    {
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.ALERT,
        ContentType.HANDSHAKE,
        ContentType.APPLICATION_DATA,
    }
)


class RecordLayer:
    """Both directions of one connection's record stream. Performs no I/O."""

    def __init__(self, padding: PaddingPolicy | None = None) -> None:
        self._frames = FrameBuffer(5, 2)
        self._read: _Protection | None = None
        self._write: _Protection | None = None
        self._padding = padding
        self._out = bytearray()
        # Handshake messages are coalesced into as few records as possible
        # (RFC 8446 §5.1 allows it; RFC 8448's traces do it) until a key
        # change, another content type, or the transport takes the bytes.
        self._handshake = bytearray()
        #: Whether a protected record arrived under the current read keys.
        self._protected_seen = False
        self._skip: _EarlyDataSkip | None = None

    # keys ------------------------------------------------------------------

    def set_read_key(self, suite: SuiteParams, secret: bytes) -> None:
        """Protect inbound records with a traffic secret from now on."""
        self._read = _Protection(suite, secret)
        self._protected_seen = False

    def set_write_key(
        self, suite: SuiteParams, secret: bytes, padding: PaddingPolicy | None = None
    ) -> None:
        """Protect outbound records with a traffic secret from now on.

        Args:
            suite: the cipher suite the secret belongs to.
            secret: the traffic secret (RFC 8446 §7.3 derives key and IV).
            padding: the padding policy of the records sent under this key;
                None uses the layer's own (RFC 8446 §5.4).
        """
        self._flush_handshake()
        self._write = _Protection(suite, secret, padding or self._padding)

    def clear_write_key(self) -> None:
        """Send in the clear again: a client's second ClientHello after 0-RTT.

        RFC 8446 §4.1.4: after a HelloRetryRequest the client sends its
        second ClientHello unprotected, having written 0-RTT records with
        its early traffic key.
        """
        self._flush_handshake()
        self._write = None

    @property
    def read_protected(self) -> bool:
        """Whether inbound records are expected to be protected."""
        return self._read is not None

    def skip_early_data(self, budget: int, *, trial: bool) -> None:
        """Pass over the client's 0-RTT records we will not read (RFC 8446 §4.2.10).

        Args:
            budget: at most this many bytes of them (each record counted as
                its ciphertext less the smallest AEAD expansion).
            trial: discard records that fail to deprotect with the current
                read keys, until one succeeds; else (after HelloRetryRequest)
                discard every protected record until a handshake record.
        """
        self._skip = _EarlyDataSkip(budget, trial)

    @property
    def skipping_early_data(self) -> bool:
        """Whether rejected 0-RTT records are still being passed over."""
        return self._skip is not None

    # inbound ---------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Buffer bytes from the transport."""
        self._frames.feed(data)

    def take_unparsed(self) -> bytes:
        """Hand over the bytes received but not yet parsed (a relay takes them)."""
        return self._frames.take_all()

    def buffered(self) -> int:
        """Bytes received but not yet parsed into records."""
        return len(self._frames)

    def next_record(self) -> Record | None:
        """Parse and deprotect the next complete record, if there is one.

        Every check the bytes so far allow is made before waiting for more:
        the content type on the first byte (plain HTTP is refused at once),
        the length as soon as the 5-byte header is in (RFC 8446 §5.1, §5.2).

        Raises:
            RecordOverflow: a record is longer than RFC 8446 §5 allows.
            BadRecordMac: a protected record does not authenticate.
            UnexpectedMessage: a record has a content type not allowed here.
            DecodeError: a record is malformed.
        """
        while True:
            first = self._frames.first()
            if first is None:
                return None
            if first not in _CONTENT_TYPES:
                # RFC 8446 §5.1: "If a TLS implementation receives an
                # unexpected record type, it MUST terminate the connection
                # with an unexpected_message alert." One byte decides it.
                raise UnexpectedMessage(f"unknown record content type {first}")
            peeked = self._frames.peek()
            if peeked is None:
                return None
            content_type, length = peeked
            self._check_length(content_type, length)
            frame = self._frames.pop(length)
            if frame is None:
                return None
            header, fragment = frame
            record = self._open(content_type, header, fragment)
            if record is not None:
                return record

    def _check_length(self, content_type: int, length: int) -> None:
        """RFC 8446 §5.1, §5.2: refuse an oversized record on its header alone."""
        protection = self._read
        if protection is None or content_type == ContentType.CHANGE_CIPHER_SPEC:
            if content_type == ContentType.APPLICATION_DATA and self._skip:
                limit = MAX_CIPHERTEXT  # someone else's 0-RTT record (§4.2.10)
            else:
                # "The length MUST NOT exceed 2^14 bytes" (§5.1).
                limit = MAX_PLAINTEXT
        elif self._skip is not None:
            limit = MAX_CIPHERTEXT
        else:
            # TLSInnerPlaintext is at most 2^14 + 1 bytes (§5.2, §5.4), so a
            # ciphertext longer than that plus our AEAD's expansion can only
            # overflow: refuse it now rather than after 16 KiB more.
            limit = MAX_PLAINTEXT + 1 + protection.tag_length
        if length > limit:
            raise RecordOverflow(f"record of {length} bytes")

    def _open(self, content_type: int, header: bytes, fragment: bytes) -> Record | None:
        """The record, or None when it is a rejected 0-RTT record to skip."""
        protection = self._read
        skip = self._skip
        if protection is None or content_type == ContentType.CHANGE_CIPHER_SPEC:
            if content_type == ContentType.APPLICATION_DATA:
                if skip is not None and not skip.trial:
                    self._skip_record(skip, fragment)
                    return None
                raise UnexpectedMessage("application data before keys")
            if not fragment:
                # RFC 8446 §5.1: zero-length handshake or alert fragments are forbidden.
                raise DecodeError("empty plaintext record")
            if content_type == ContentType.HANDSHAKE:
                self._skip = None  # the second ClientHello ends 0-RTT (§4.2.10)
            return Record(content_type, fragment)
        if content_type != ContentType.APPLICATION_DATA:
            if content_type == ContentType.ALERT and not self._protected_seen:
                # A peer that has not switched keys yet (OpenSSL rejecting our
                # certificate) sends its alert in the clear; take its reason.
                return Record(content_type, fragment)
            raise UnexpectedMessage("unprotected record after keys were set")
        if skip is not None and skip.trial:
            try:
                inner = protection.aead.decrypt(
                    protection.peek_nonce(), fragment, header
                )
            except InvalidTag:
                self._skip_record(skip, fragment)
                return None
            protection.seq += 1
            self._skip = None  # the first record of the client's second flight
            record = self._inner_record(inner)
        else:
            record = self._deprotect(protection, header, fragment)
        self._protected_seen = True
        return record

    @staticmethod
    def _skip_record(skip: _EarlyDataSkip, fragment: bytes) -> None:
        """Count one skipped 0-RTT record; past the budget it is an error again."""
        # The smallest expansion (CCM_8's tag and the content type) so that
        # a client sending max_early_data_size bytes is never cut short.
        skip.budget -= max(0, len(fragment) - 9)
        if skip.budget < 0:
            if skip.trial:
                raise BadRecordMac("record failed to authenticate")
            raise UnexpectedMessage("more 0-RTT data than max_early_data_size")

    def _deprotect(
        self, protection: _Protection, header: bytes, fragment: bytes
    ) -> Record:
        try:
            inner = protection.aead.decrypt(protection.nonce(), fragment, header)
        except InvalidTag:
            raise BadRecordMac("record failed to authenticate") from None
        return self._inner_record(inner)

    @staticmethod
    def _inner_record(inner: bytes) -> Record:
        """TLSInnerPlaintext: content, type, zeros (RFC 8446 §5.2, §5.4)."""
        if len(inner) > MAX_PLAINTEXT + 1:
            # §5.4: "the full encoded TLSInnerPlaintext MUST NOT exceed
            # 2^14 + 1 octets" (an AEAD with a longer tag could get here).
            raise RecordOverflow("protected record content too long")
        end = len(inner.rstrip(b"\x00"))
        if end == 0:
            raise UnexpectedMessage("protected record holds no content type")
        content_type = inner[end - 1]
        content = inner[: end - 1]
        if content_type == ContentType.CHANGE_CIPHER_SPEC:
            # RFC 8446 §5: change_cipher_spec is only ever sent in the clear.
            raise UnexpectedMessage("protected change_cipher_spec record")
        if not content and content_type != ContentType.APPLICATION_DATA:
            raise UnexpectedMessage("empty protected handshake or alert record")
        return Record(content_type, content)

    # outbound --------------------------------------------------------------

    def write(self, content_type: int, data: bytes) -> None:
        """Queue ``data`` as one or more records of ``content_type``."""
        if not data and content_type != ContentType.APPLICATION_DATA:
            raise ValueError("only application data records may be empty")
        if content_type == ContentType.HANDSHAKE:
            self._handshake += data
            return
        self._flush_handshake()
        self._write_fragments(content_type, data)

    def _write_fragments(self, content_type: int, data: bytes) -> None:
        for start in range(0, max(len(data), 1), MAX_PLAINTEXT):
            self._write_record(content_type, data[start : start + MAX_PLAINTEXT])

    def _flush_handshake(self) -> None:
        if self._handshake:
            data = bytes(self._handshake)
            self._handshake.clear()
            self._write_fragments(ContentType.HANDSHAKE, data)

    def write_change_cipher_spec(self) -> None:
        """Queue the middlebox-compatibility CCS record (RFC 8446 §D.4)."""
        self._flush_handshake()
        self._out += record_header(ContentType.CHANGE_CIPHER_SPEC, 1) + b"\x01"

    def _write_record(self, content_type: int, fragment: bytes) -> None:
        protection = self._write
        if protection is None:
            self._out += record_header(content_type, len(fragment)) + fragment
            return
        pad = 0
        if protection.padding is not None:
            pad = max(
                0,
                min(
                    protection.padding(content_type, len(fragment)),
                    MAX_PLAINTEXT - len(fragment),
                ),
            )
        inner = fragment + bytes((content_type,)) + bytes(pad)
        length = len(inner) + protection.tag_length
        header = record_header(ContentType.APPLICATION_DATA, length)
        self._out += header
        self._out += protection.aead.encrypt(protection.nonce(), inner, header)

    def data_to_send(self) -> bytes:
        """Take everything queued for the transport."""
        self._flush_handshake()
        out = bytes(self._out)
        self._out.clear()
        return out


class HandshakeReassembler:
    """Joins handshake messages split across records, and splits coalesced ones."""

    def __init__(self, max_message_size: int) -> None:
        self._frames = FrameBuffer(4, 3)
        self._max = max_message_size

    def feed(self, data: bytes) -> None:
        """Add the payload of one handshake record."""
        self._frames.feed(data)

    def pop(self) -> tuple[int, bytes, bytes] | None:
        """The next whole message as ``(msg_type, body, raw bytes with header)``.

        Raises:
            DecodeError: a message is longer than ``max_message_size`` (RFC
                8446 leaves the limit to implementations; we bound memory).
        """
        peeked = self._frames.peek()
        if peeked is None:
            return None
        msg_type, length = peeked
        if length > self._max:
            # Refused as soon as its header is in: memory stays bounded.
            raise MessageTooLong(
                f"handshake message of {length} bytes exceeds {self._max}"
            )
        frame = self._frames.pop(length)
        if frame is None:
            return None
        header, body = frame
        return msg_type, body, header + body

    def check_key_change(self) -> None:
        """RFC 8446 §5.1: a message must not span a key change.

        Raises:
            UnexpectedMessage: bytes of a message are pending at a key change.
        """
        if len(self._frames):
            raise UnexpectedMessage("handshake message spans a key change")

    @property
    def pending(self) -> bool:
        """Whether part of a message is buffered."""
        return bool(len(self._frames))


def plaintext_alert(description: int) -> bytes:
    """A fatal alert record in the clear, for before any key is in use (§6).

    For relays and front ends that abort a connection they do not run a
    record layer for.
    """
    return record_header(ContentType.ALERT, 2) + bytes((AlertLevel.FATAL, description))
