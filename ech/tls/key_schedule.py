"""The TLS 1.3 key schedule (RFC 8446 §7.1) and traffic keys (§7.3).

Composed from ``cryptography``'s HKDF and HMAC; nothing here is a home-made
primitive. Each stage of the schedule is a small value whose methods name
the transcript range they take, following Go's ``tls13.go``.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from ech.tls.wire import Writer, encode_opaque


def hkdf_extract(algorithm: hashes.HashAlgorithm, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2); an empty salt means Hash.length zeros."""
    return HKDF.extract(algorithm, salt or bytes(algorithm.digest_size), ikm)


@functools.lru_cache(maxsize=128)
def _label_prefix(length: int, label: bytes) -> bytes:
    """``uint16 length`` and ``opaque label<7..255>`` of HkdfLabel; few distinct."""
    w = Writer()
    w.u16(length)
    w.opaque(1, b"tls13 " + label)
    return w.getvalue()


def hkdf_expand_label(
    algorithm: hashes.HashAlgorithm,
    secret: bytes,
    label: bytes,
    context: bytes,
    length: int,
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1): the label is prefixed ``tls13 ``."""
    info = _label_prefix(length, label) + encode_opaque(1, context)
    return HKDFExpand(algorithm, length, info).derive(secret)


def hash_bytes(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    """Transcript-Hash of a byte string."""
    if not data and algorithm.name in _EMPTY_HASHES:
        return _EMPTY_HASHES[algorithm.name]
    h = hashes.Hash(algorithm)
    h.update(data)
    digest = h.finalize()
    if not data:
        _EMPTY_HASHES[algorithm.name] = digest
    return digest


#: Hash of the empty string per algorithm, needed at every stage of the schedule.
_EMPTY_HASHES: dict[str, bytes] = {}


def hmac_bytes(algorithm: hashes.HashAlgorithm, key: bytes, data: bytes) -> bytes:
    """HMAC, as used for Finished and PSK binders (RFC 8446 §4.4.4)."""
    mac = crypto_hmac.HMAC(key, algorithm)
    mac.update(data)
    return mac.finalize()


def finished_verify_data(
    algorithm: hashes.HashAlgorithm, base_key: bytes, transcript_hash: bytes
) -> bytes:
    """RFC 8446 §4.4.4: HMAC(finished_key, Transcript-Hash(...))."""
    finished_key = hkdf_expand_label(
        algorithm, base_key, b"finished", b"", algorithm.digest_size
    )
    return hmac_bytes(algorithm, finished_key, transcript_hash)


def verify_finished(
    algorithm: hashes.HashAlgorithm,
    base_key: bytes,
    transcript_hash: bytes,
    received: bytes,
) -> bool:
    """Check a Finished (or binder) value in constant time."""
    expected = finished_verify_data(algorithm, base_key, transcript_hash)
    return hmac.compare_digest(expected, received)


@dataclass(frozen=True, slots=True)
class TrafficKeys:
    """An AEAD key and IV derived from a traffic secret (RFC 8446 §7.3)."""

    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)


def traffic_keys(
    algorithm: hashes.HashAlgorithm, secret: bytes, key_length: int
) -> TrafficKeys:
    """``[sender]_write_key`` and ``[sender]_write_iv`` from a traffic secret."""
    return TrafficKeys(
        hkdf_expand_label(algorithm, secret, b"key", b"", key_length),
        hkdf_expand_label(algorithm, secret, b"iv", b"", 12),
    )


def next_traffic_secret(algorithm: hashes.HashAlgorithm, secret: bytes) -> bytes:
    """RFC 8446 §7.2: ``application_traffic_secret_N+1`` after a KeyUpdate."""
    return hkdf_expand_label(
        algorithm, secret, b"traffic upd", b"", algorithm.digest_size
    )


@dataclass(frozen=True, slots=True)
class _Stage:
    """One secret of the schedule and the hash it runs on (RFC 8446 §7.1)."""

    algorithm: hashes.HashAlgorithm
    secret: bytes = field(repr=False)

    def _derive(self, label: bytes, transcript_hash: bytes) -> bytes:
        return hkdf_expand_label(
            self.algorithm,
            self.secret,
            label,
            transcript_hash,
            self.algorithm.digest_size,
        )


@dataclass(frozen=True, slots=True)
class EarlySecret(_Stage):
    """Early Secret = HKDF-Extract(0, PSK or zeros)."""

    @classmethod
    def from_psk(
        cls, algorithm: hashes.HashAlgorithm, psk: bytes | None
    ) -> EarlySecret:
        """Start the schedule with a PSK, or with zeros for a full handshake."""
        if not psk:
            return _no_psk_early_secret(type(algorithm))
        zeros = bytes(algorithm.digest_size)
        return cls(algorithm, hkdf_extract(algorithm, zeros, psk))

    def binder_key(self, *, external: bool = False) -> bytes:
        """``res binder`` (or ``ext binder``) key for PSK binders (§4.2.11.2)."""
        label = b"ext binder" if external else b"res binder"
        return self._derive(label, hash_bytes(self.algorithm, b""))

    def client_early_traffic_secret(self, hello_hash: bytes) -> bytes:
        """``c e traffic`` over Transcript-Hash(ClientHello)."""
        return self._derive(b"c e traffic", hello_hash)

    def handshake_secret(self, shared_secret: bytes) -> HandshakeSecret:
        """Mix in the (EC)DHE shared secret."""
        return HandshakeSecret(
            self.algorithm,
            hkdf_extract(self.algorithm, self._derived_salt(), shared_secret),
        )

    def _derived_salt(self) -> bytes:
        """``Derive-Secret(., "derived", "")``, the salt of the next stage."""
        return self._derive(b"derived", hash_bytes(self.algorithm, b""))


@dataclass(frozen=True, slots=True)
class _NoPskEarlySecret(EarlySecret):
    """The Early Secret of a full handshake: HKDF-Extract(0, 0).

    It and its ``derived`` salt depend only on the hash, so every full
    handshake shares one instance per hash (see :func:`_no_psk_early_secret`).
    """

    derived_salt: bytes = field(default=b"", repr=False)

    def _derived_salt(self) -> bytes:
        return self.derived_salt


@functools.cache
def _no_psk_early_secret(
    algorithm_type: type[hashes.HashAlgorithm],
) -> _NoPskEarlySecret:
    """The full handshake's Early Secret for one hash, derived once."""
    algorithm = algorithm_type()
    zeros = bytes(algorithm.digest_size)
    early = EarlySecret(algorithm, hkdf_extract(algorithm, zeros, zeros))
    return _NoPskEarlySecret(algorithm, early.secret, early._derived_salt())


@dataclass(frozen=True, slots=True)
class HandshakeSecret(_Stage):
    """Handshake Secret: yields the handshake traffic secrets."""

    def client_handshake_traffic_secret(self, hello_hash: bytes) -> bytes:
        """``c hs traffic`` over Transcript-Hash(ClientHello...ServerHello)."""
        return self._derive(b"c hs traffic", hello_hash)

    def server_handshake_traffic_secret(self, hello_hash: bytes) -> bytes:
        """``s hs traffic`` over Transcript-Hash(ClientHello...ServerHello)."""
        return self._derive(b"s hs traffic", hello_hash)

    def master_secret(self) -> MasterSecret:
        """Derive the Master Secret."""
        salt = self._derive(b"derived", hash_bytes(self.algorithm, b""))
        zeros = bytes(self.algorithm.digest_size)
        return MasterSecret(self.algorithm, hkdf_extract(self.algorithm, salt, zeros))


@dataclass(frozen=True, slots=True)
class MasterSecret(_Stage):
    """Master Secret: yields application, exporter and resumption secrets."""

    def client_application_traffic_secret(self, server_finished_hash: bytes) -> bytes:
        """``c ap traffic`` over Transcript-Hash(ClientHello...server Finished)."""
        return self._derive(b"c ap traffic", server_finished_hash)

    def server_application_traffic_secret(self, server_finished_hash: bytes) -> bytes:
        """``s ap traffic`` over Transcript-Hash(ClientHello...server Finished)."""
        return self._derive(b"s ap traffic", server_finished_hash)

    def exporter_master_secret(self, server_finished_hash: bytes) -> bytes:
        """``exp master`` over Transcript-Hash(ClientHello...server Finished)."""
        return self._derive(b"exp master", server_finished_hash)

    def resumption_master_secret(self, client_finished_hash: bytes) -> bytes:
        """``res master`` over Transcript-Hash(ClientHello...client Finished)."""
        return self._derive(b"res master", client_finished_hash)


def resumption_psk(
    algorithm: hashes.HashAlgorithm, resumption_master_secret: bytes, nonce: bytes
) -> bytes:
    """RFC 8446 §4.6.1: the PSK a ticket stands for."""
    return hkdf_expand_label(
        algorithm,
        resumption_master_secret,
        b"resumption",
        nonce,
        algorithm.digest_size,
    )


def exporter(
    algorithm: hashes.HashAlgorithm,
    exporter_master_secret: bytes,
    label: bytes,
    context: bytes,
    length: int,
) -> bytes:
    """TLS-Exporter (RFC 8446 §7.5)."""
    secret = hkdf_expand_label(
        algorithm,
        exporter_master_secret,
        label,
        hash_bytes(algorithm, b""),
        algorithm.digest_size,
    )
    return hkdf_expand_label(
        algorithm, secret, b"exporter", hash_bytes(algorithm, context), length
    )
