"""ECHConfig and ECHConfigList: codec and client-side validation (RFC 9849 §4).

Wire structures (RFC 9849 §4)::

    struct { uint16 kdf_id; uint16 aead_id; } HpkeSymmetricCipherSuite;
    struct {
        uint8 config_id;
        uint16 kem_id;
        opaque public_key<1..2^16-1>;
        HpkeSymmetricCipherSuite cipher_suites<4..2^16-4>;
    } HpkeKeyConfig;
    struct { ExtensionType type; opaque data<0..2^16-1>; } ECHConfigExtension;
    struct {
        HpkeKeyConfig key_config;
        uint8 maximum_name_length;
        opaque public_name<1..255>;
        ECHConfigExtension extensions<0..2^16-1>;
    } ECHConfigContents;
    struct {
        uint16 version;
        uint16 length;
        select (ECHConfig.version) { case 0xfe0d: ECHConfigContents contents; }
    } ECHConfig;
    ECHConfig ECHConfigList<4..2^16-1>;

Parsing is structural only (the codec checks what can be encoded); whether a
client may *use* a config is :meth:`ECHConfig.unsupported_reason`. Every
config keeps its exact wire bytes in ``ECHConfig.raw``, because the HPKE
``info`` is built from them (RFC 9849 §6.1) and a re-encoding must not
change a single byte.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ech import hpke
from ech.errors import DecodeError
from ech.tls.wire import Reader, Writer

__all__ = [
    "ECH_VERSION",
    "ECHConfig",
    "ECHConfigContents",
    "ECHConfigExtension",
    "ECHConfigList",
    "HpkeSymmetricCipherSuite",
    "InvalidECHConfigList",
    "is_valid_public_name",
]

#: ECHConfig.version of RFC 9849, equal to the extension's code point (§4).
ECH_VERSION: Final = 0xFE0D
"""``ECHConfig.version`` for RFC 9849 (equal to the extension code point)."""

_MANDATORY_BIT: Final = 0x8000
# ECHConfig extension types we understand. None yet: any mandatory type makes
# a config unusable (RFC 9849 §4.2).
_KNOWN_EXTENSIONS: Final[frozenset[int]] = frozenset()
_INFO_PREFIX: Final = b"tls ech\x00"
_LDH: Final = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
)
_DIGITS: Final = frozenset(b"0123456789")
_HEXDIGITS: Final = frozenset(b"0123456789abcdefABCDEF")


class InvalidECHConfigList(ValueError):
    """An ECHConfigList from outside TLS (DNS, a file, a flag) is malformed.

    TLS peers get a ``decode_error`` alert instead (:class:`ech.errors.DecodeError`).
    """


@dataclass(frozen=True, slots=True)
class HpkeSymmetricCipherSuite:
    """One (KDF, AEAD) pair a config offers (RFC 9849 §4)."""

    kdf_id: int
    aead_id: int


@dataclass(frozen=True, slots=True)
class ECHConfigExtension:
    """One ECHConfig extension (RFC 9849 §4.2); the high type bit means mandatory."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ECHConfigContents:
    """``ECHConfigContents`` for version 0xfe0d (RFC 9849 §4).

    ``public_name`` is the raw octets from the wire; it is validated by
    :func:`is_valid_public_name` only when a client decides whether to use
    the config (RFC 9849 §6.1.7).
    """

    config_id: int
    kem_id: int
    public_key: bytes
    cipher_suites: tuple[HpkeSymmetricCipherSuite, ...]
    maximum_name_length: int
    public_name: bytes
    extensions: tuple[ECHConfigExtension, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> ECHConfigContents:
        """Parse ``ECHConfigContents``, which must fill ``data`` exactly.

        Raises:
            DecodeError: Malformed or trailing bytes.
        """
        r = Reader(data)
        contents = cls._read(r)
        r.expect_end()
        return contents

    @classmethod
    def _read(cls, r: Reader) -> ECHConfigContents:
        config_id = r.u8()
        kem_id = r.u16()
        public_key = r.opaque(2, min_len=1)

        def read_suite() -> HpkeSymmetricCipherSuite:
            return HpkeSymmetricCipherSuite(r.u16(), r.u16())

        # A length that is not a multiple of 4 runs a u16 read past the end of
        # the vector scope, which the Reader reports as a DecodeError.
        suites = r.items(2, read_suite, min_len=4, max_len=0xFFFC)
        maximum_name_length = r.u8()
        public_name = r.opaque(1, min_len=1)
        extensions: list[ECHConfigExtension] = []
        with r.vector(2):
            while r.remaining():
                extensions.append(ECHConfigExtension(r.u16(), r.opaque(2)))
        return cls(
            config_id=config_id,
            kem_id=kem_id,
            public_key=public_key,
            cipher_suites=tuple(suites),
            maximum_name_length=maximum_name_length,
            public_name=public_name,
            extensions=tuple(extensions),
        )

    def encode(self) -> bytes:
        """Serialize (RFC 9849 §4).

        Raises:
            ValueError: A field does not fit its wire type.
        """
        w = Writer()
        w.u8(self.config_id)
        w.u16(self.kem_id)
        w.opaque(2, self.public_key)
        with w.vector(2):
            for suite in self.cipher_suites:
                w.u16(suite.kdf_id)
                w.u16(suite.aead_id)
        w.u8(self.maximum_name_length)
        w.opaque(1, self.public_name)
        with w.vector(2):
            for ext in self.extensions:
                w.u16(ext.type)
                w.opaque(2, ext.data)
        return w.getvalue()


@dataclass(frozen=True, slots=True)
class ECHConfig:
    """One ``ECHConfig`` (RFC 9849 §4).

    Attributes:
        version: The config version; only :data:`ECH_VERSION` is understood.
        contents: The parsed contents, or ``None`` for an unknown version,
            which is kept (so lists re-encode exactly) but never used
            (RFC 9849 §4: clients skip versions they do not support).
        raw: ``version || length || contents`` exactly as on the wire.
    """

    version: int
    contents: ECHConfigContents | None
    raw: bytes

    @classmethod
    def from_contents(cls, contents: ECHConfigContents) -> ECHConfig:
        """Build a version 0xfe0d config and its wire form."""
        w = Writer()
        w.u16(ECH_VERSION)
        w.opaque(2, contents.encode())
        return cls(ECH_VERSION, contents, w.getvalue())

    @classmethod
    def _read(cls, r: Reader) -> ECHConfig:
        version = r.u16()
        body = r.opaque(2)
        w = Writer()
        w.u16(version)
        w.opaque(2, body)
        contents = ECHConfigContents.parse(body) if version == ECH_VERSION else None
        return cls(version, contents, w.getvalue())

    def encode(self) -> bytes:
        """The wire form (``raw``)."""
        return self.raw

    def _require_contents(self) -> ECHConfigContents:
        if self.contents is None:
            raise ValueError(f"unsupported ECHConfig version 0x{self.version:04x}")
        return self.contents

    @property
    def public_name(self) -> str:
        """``public_name`` as text.

        Raises:
            ValueError: Unknown version, or a name that is not ASCII.
        """
        return self._require_contents().public_name.decode("ascii")

    @property
    def config_id(self) -> int:
        """``config_id``.

        Raises:
            ValueError: Unknown version.
        """
        return self._require_contents().config_id

    def unsupported_reason(self) -> str | None:
        """Why a client must not use this config, or ``None`` if it may.

        Checks, in order: version (RFC 9849 §4; ECH-5), KEM (§4,
        ECH-6), public key length for that KEM, at least one supported
        (KDF, AEAD) pair (§6.1, ECH-7), no repeated extension type (§4.2, ECH-8),
        no unsupported mandatory extension (§4.2, ECH-9), and a valid
        ``public_name`` (§6.1.7, ECH-13, ECH-14).
        """
        c = self.contents
        if c is None:
            return f"unsupported version 0x{self.version:04x}"
        if not hpke.is_supported(c.kem_id):
            return f"unsupported KEM 0x{c.kem_id:04x}"
        if len(c.public_key) != hpke.public_key_length(c.kem_id):
            return "public_key length does not match the KEM"
        if self.select_suite() is None:
            return "no supported HPKE cipher suite"
        seen: set[int] = set()
        for ext in c.extensions:
            if ext.type in seen:
                return f"duplicate extension type 0x{ext.type:04x}"
            seen.add(ext.type)
        for ext in c.extensions:
            if ext.type & _MANDATORY_BIT and ext.type not in _KNOWN_EXTENSIONS:
                return f"unsupported mandatory extension 0x{ext.type:04x}"
        if not is_valid_public_name(c.public_name):
            return "invalid public_name"
        return None

    def select_suite(
        self, preferences: Sequence[HpkeSymmetricCipherSuite] | None = None
    ) -> HpkeSymmetricCipherSuite | None:
        """The (KDF, AEAD) pair to use, or ``None`` (RFC 9849 §6.1).

        Args:
            preferences: Our order of preference. ``None`` takes the first
                suite the config lists that we support (the server's order).

        Returns:
            A suite both listed by the config and supported, never one the
            config does not list (ECH-7).
        """
        c = self.contents
        if c is None:
            return None
        candidates = c.cipher_suites
        if preferences is not None:
            listed = set(c.cipher_suites)
            candidates = tuple(s for s in preferences if s in listed)
        for suite in candidates:
            if hpke.is_supported(c.kem_id, suite.kdf_id, suite.aead_id):
                return suite
        return None

    def hpke_info(self) -> bytes:
        """HPKE ``info``: ``"tls ech" || 0x00 || ECHConfig`` (RFC 9849 §6.1).

        The single serialized config, not the list (ECH-37).
        """
        return _INFO_PREFIX + self.raw


@dataclass(frozen=True, slots=True)
class ECHConfigList:
    """``ECHConfigList`` (RFC 9849 §4), configs in the server's preference order."""

    configs: tuple[ECHConfig, ...]

    @classmethod
    def parse(cls, data: bytes) -> ECHConfigList:
        """Parse the u16-length-prefixed list; it must hold at least one config.

        Configs of unknown versions are kept with ``contents=None``; configs
        with unknown KEMs or suites parse normally and are filtered by
        :meth:`usable`.

        Raises:
            DecodeError: Malformed input (also what EncryptedExtensions
                ``retry_configs`` need, RFC 9849 §5).
        """
        r = Reader(data)
        configs: list[ECHConfig] = []
        with r.vector(2, min_len=4):
            while r.remaining():
                configs.append(ECHConfig._read(r))
        r.expect_end()
        return cls(tuple(configs))

    def encode(self) -> bytes:
        """Serialize with the 2-byte length prefix (RFC 9849 §4, RFC 9848 §3).

        Raises:
            ValueError: Empty, or too long for the length prefix.
        """
        if not self.configs:
            raise ValueError("an ECHConfigList holds at least one ECHConfig")
        w = Writer()
        with w.vector(2):
            for config in self.configs:
                w.raw(config.raw)
        return w.getvalue()

    @classmethod
    def from_base64(cls, text: str) -> ECHConfigList:
        """Parse the standard Base64 form (RFC 9848 §3 presentation value).

        Raises:
            InvalidECHConfigList: Bad Base64 or a malformed list.
        """
        try:
            data = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidECHConfigList(f"bad base64: {err}") from err
        try:
            return cls.parse(data)
        except DecodeError as err:
            raise InvalidECHConfigList(f"malformed ECHConfigList: {err}") from err

    def to_base64(self) -> str:
        """Standard Base64 of :meth:`encode`."""
        return base64.b64encode(self.encode()).decode("ascii")

    def usable(self) -> tuple[ECHConfig, ...]:
        """Configs a client may use, in list (preference) order (RFC 9849 §6.1)."""
        return tuple(c for c in self.configs if c.unsupported_reason() is None)


def is_valid_public_name(name: bytes) -> bool:
    """RFC 9849 §6.1.7 validation of ``public_name`` (ECH-13, ECH-14).

    A valid host name in preferred name syntax: dot-separated LDH labels of
    1 to 63 octets that neither start nor end with a hyphen (RFC 1034 §3.5
    as relaxed by RFC 1123 §2.1, so labels may start with a digit), no
    leading or trailing dot, at most 253 octets of text (255 on the wire).
    And the last label must not be all digits or ``0x``/``0X`` followed by
    hex digits, since such names parse as IPv4 addresses (WHATWG URL).

    Single-label names such as ``localhost`` pass; Go's ``validDNSName``
    rejects them (Go 1.27.3 ``src/crypto/tls/ech.go``).
    """
    if not 1 <= len(name) <= 253:
        return False
    labels = name.split(b".")
    for label in labels:
        if not 1 <= len(label) <= 63:
            return False
        if not _LDH.issuperset(label):
            return False
        if label.startswith(b"-") or label.endswith(b"-"):
            return False
    last = labels[-1]
    if _DIGITS.issuperset(last):
        return False
    prefix, rest = last[:2], last[2:]
    return not (prefix in (b"0x", b"0X") and _HEXDIGITS.issuperset(rest))
