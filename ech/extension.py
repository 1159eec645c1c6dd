"""The encrypted_client_hello extension bodies (RFC 9849 §5).

``ECHClientHello`` travels in ClientHellos (outer or inner form),
``ECHEncryptedExtensions`` (retry_configs) in EncryptedExtensions, and an
8-byte confirmation in HelloRetryRequest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from ech.config import ECHConfigList, HpkeSymmetricCipherSuite
from ech.errors import DecodeError, IllegalParameter
from ech.tls.wire import Reader, encode_opaque

OUTER = 0
INNER = 1
#: The whole body of an inner-form ECHClientHello: just its type.
INNER_BODY = bytes((INNER,))
CONFIRMATION_LENGTH = 8
#: type, cipher_suite (kdf_id, aead_id) and config_id of an outer ECHClientHello.
_OUTER_HEADER = struct.Struct(">BHHB")
#: The same after the type byte.
_SUITE_AND_CONFIG_ID = struct.Struct(">HHB")


@dataclass(frozen=True, slots=True)
class ECHClientHelloOuter:
    """``ECHClientHello`` of type outer (RFC 9849 §5)."""

    cipher_suite: HpkeSymmetricCipherSuite
    config_id: int
    enc: bytes
    payload: bytes

    def encode(self) -> bytes:
        """The extension body."""
        return self._encode(self.payload)

    def encode_with_payload_zeroed(self) -> bytes:
        """The body with the payload's bytes zeroed (RFC 9849 §5.2).

        As ClientHelloOuterAAD has it: the same length, without a copy of
        the offer (:meth:`with_payload`) to encode.
        """
        return self._encode(bytes(len(self.payload)))

    def _encode(self, payload: bytes) -> bytes:
        suite = self.cipher_suite
        return b"".join(
            (
                _OUTER_HEADER.pack(OUTER, suite.kdf_id, suite.aead_id, self.config_id),
                encode_opaque(2, self.enc),
                encode_opaque(2, payload),
            )
        )

    def with_payload(self, payload: bytes) -> Self:
        """A copy with another payload (for ClientHelloOuterAAD, §5.2)."""
        return type(self)(self.cipher_suite, self.config_id, self.enc, payload)


def parse_client_hello_extension(data: bytes) -> ECHClientHelloOuter | None:
    """Decode an ``ECHClientHello``: the outer form, or None for the inner form.

    Raises:
        DecodeError: malformed body.
        IllegalParameter: an unknown ``ECHClientHelloType`` (RFC 9849 §7).
    """
    r = Reader(data)
    hello_type = r.u8()
    if hello_type == INNER:
        r.expect_end()
        return None
    if hello_type != OUTER:
        raise IllegalParameter(f"unknown ECHClientHelloType {hello_type}")
    # cipher_suite and config_id: fixed-size, read in one step (every ECH
    # hello, and every GREASE one, is parsed).
    kdf_id, aead_id, config_id = _SUITE_AND_CONFIG_ID.unpack(
        r.raw(_SUITE_AND_CONFIG_ID.size)
    )
    suite = HpkeSymmetricCipherSuite(kdf_id, aead_id)
    enc = r.opaque(2)
    payload = r.opaque(2, min_len=1)
    r.expect_end()
    return ECHClientHelloOuter(suite, config_id, enc, payload)


def encode_retry_configs(configs: ECHConfigList) -> bytes:
    """``ECHEncryptedExtensions``: the retry_configs list (RFC 9849 §5)."""
    return configs.encode()


def parse_retry_configs(data: bytes) -> ECHConfigList:
    """Decode ``ECHEncryptedExtensions``.

    Raises:
        DecodeError: malformed (RFC 9849 §6.1.6 requires decode_error).
    """
    return ECHConfigList.parse(data)


def parse_hrr_confirmation(data: bytes) -> bytes:
    """Decode ``ECHHelloRetryRequest``: exactly 8 bytes (RFC 9849 §6.1.4).

    Raises:
        DecodeError: any other length.
    """
    if len(data) != CONFIRMATION_LENGTH:
        raise DecodeError("HRR encrypted_client_hello must hold 8 bytes")
    return data
