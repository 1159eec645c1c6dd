"""TLS 1.3 code points (RFC 8446 §4, §B.3; IANA TLS registries).

Every enum tolerates values it does not name: ``ExtensionType(0x0A0A)`` is a
pseudo-member printed as ``UNKNOWN_0x0A0A``, so logs and reprs never fail on
GREASE or future code points. Wire fields keep plain ``int`` values.
"""

from __future__ import annotations

import enum
from typing import Self


class _OpenIntEnum(enum.IntEnum):
    """An IntEnum that makes a named pseudo-member for unknown values."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_0x{value:04X}"
        member._value_ = value
        return member

    def __str__(self) -> str:
        return self.name.lower()


class ContentType(_OpenIntEnum):
    """RFC 8446 §5.1."""

    INVALID = 0
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class HandshakeType(_OpenIntEnum):
    """RFC 8446 §4; MESSAGE_HASH is the synthetic HRR transcript entry (§4.4.1)."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    CERTIFICATE_REQUEST = 13
    CERTIFICATE_VERIFY = 15
    FINISHED = 20
    KEY_UPDATE = 24
    MESSAGE_HASH = 254


class ExtensionType(_OpenIntEnum):
    """RFC 8446 §4.2 plus the ones TLS 1.3 stacks commonly send."""

    SERVER_NAME = 0
    MAX_FRAGMENT_LENGTH = 1
    STATUS_REQUEST = 5
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    USE_SRTP = 14
    HEARTBEAT = 15
    APPLICATION_LAYER_PROTOCOL_NEGOTIATION = 16
    SIGNED_CERTIFICATE_TIMESTAMP = 18
    CLIENT_CERTIFICATE_TYPE = 19
    SERVER_CERTIFICATE_TYPE = 20
    PADDING = 21
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    COMPRESS_CERTIFICATE = 27
    RECORD_SIZE_LIMIT = 28
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    CERTIFICATE_AUTHORITIES = 47
    OID_FILTERS = 48
    POST_HANDSHAKE_AUTH = 49
    SIGNATURE_ALGORITHMS_CERT = 50
    KEY_SHARE = 51
    QUIC_TRANSPORT_PARAMETERS = 57
    ECH_OUTER_EXTENSIONS = 0xFD00
    ENCRYPTED_CLIENT_HELLO = 0xFE0D
    RENEGOTIATION_INFO = 0xFF01


class CipherSuite(_OpenIntEnum):
    """TLS 1.3 cipher suites (RFC 8446 §B.4)."""

    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303
    TLS_AES_128_CCM_SHA256 = 0x1304
    TLS_AES_128_CCM_8_SHA256 = 0x1305

    def __str__(self) -> str:
        return self.name


class NamedGroup(_OpenIntEnum):
    """Key exchange groups (RFC 8446 §4.2.7; draft-ietf-tls-ecdhe-mlkem)."""

    SECP256R1 = 0x0017
    SECP384R1 = 0x0018
    SECP521R1 = 0x0019
    X25519 = 0x001D
    X448 = 0x001E
    FFDHE2048 = 0x0100
    FFDHE3072 = 0x0101
    FFDHE4096 = 0x0102
    FFDHE6144 = 0x0103
    FFDHE8192 = 0x0104
    X25519MLKEM768 = 0x11EC

    def __str__(self) -> str:
        return {0x0017: "secp256r1", 0x0018: "secp384r1", 0x11EC: "X25519MLKEM768"}.get(
            self.value, self.name.lower()
        )


class SignatureScheme(_OpenIntEnum):
    """RFC 8446 §4.2.3."""

    RSA_PKCS1_SHA256 = 0x0401
    RSA_PKCS1_SHA384 = 0x0501
    RSA_PKCS1_SHA512 = 0x0601
    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    RSA_PSS_RSAE_SHA256 = 0x0804
    RSA_PSS_RSAE_SHA384 = 0x0805
    RSA_PSS_RSAE_SHA512 = 0x0806
    ED25519 = 0x0807
    ED448 = 0x0808
    RSA_PSS_PSS_SHA256 = 0x0809
    RSA_PSS_PSS_SHA384 = 0x080A
    RSA_PSS_PSS_SHA512 = 0x080B
    RSA_PKCS1_SHA1 = 0x0201
    ECDSA_SHA1 = 0x0203


class PskKeyExchangeMode(_OpenIntEnum):
    """RFC 8446 §4.2.9."""

    PSK_KE = 0
    PSK_DHE_KE = 1


class AlertLevel(_OpenIntEnum):
    """RFC 8446 §6."""

    WARNING = 1
    FATAL = 2


class AlertDescription(_OpenIntEnum):
    """RFC 8446 §6, plus ``ech_required`` (RFC 9849 §11.2)."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    RECORD_OVERFLOW = 22
    HANDSHAKE_FAILURE = 40
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    NO_APPLICATION_PROTOCOL = 120
    ECH_REQUIRED = 121


class KeyUpdateRequest(_OpenIntEnum):
    """RFC 8446 §4.6.3."""

    UPDATE_NOT_REQUESTED = 0
    UPDATE_REQUESTED = 1


TLS13: int = 0x0304
TLS12: int = 0x0303
#: SSL 3.0: a Hello with this legacy_version or lower is refused (RFC 8446 §D.5).
SSL30: int = 0x0300
LEGACY_RECORD_VERSION: int = 0x0303


def is_grease(value: int) -> bool:
    """True for the RFC 8701 GREASE values 0x0A0A, 0x1A1A, ... 0xFAFA."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF
