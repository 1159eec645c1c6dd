"""The running handshake transcript (RFC 8446 §4.4.1)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes

from ech.tls.enums import HandshakeType


class Transcript:
    """Transcript-Hash over the handshake messages, header included.

    Messages are kept as bytes until the cipher suite, and so the hash, is
    known; a HelloRetryRequest replaces ClientHello1 by a synthetic
    ``message_hash`` message (§4.4.1).
    """

    __slots__ = ("_algorithm", "_hash", "_pending")

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._hash: hashes.Hash | None = None
        self._algorithm: hashes.HashAlgorithm | None = None

    def add(self, message: bytes) -> None:
        """Append one whole handshake message (with its 4-byte header)."""
        if self._hash is None:
            self._pending.append(message)
        else:
            self._hash.update(message)

    def set_algorithm(self, algorithm: hashes.HashAlgorithm) -> None:
        """Fix the hash once the cipher suite is known; later calls keep it."""
        if self._algorithm is not None:
            if self._algorithm.name != algorithm.name:
                raise RuntimeError("transcript hash algorithm changed")
            return
        self._algorithm = algorithm
        self._hash = hashes.Hash(algorithm)
        for message in self._pending:
            self._hash.update(message)
        self._pending = []

    def digest(self) -> bytes:
        """Transcript-Hash of everything added so far."""
        if self._hash is None:
            raise RuntimeError("transcript hash algorithm not set")
        return self._hash.copy().finalize()

    def rewrite_for_hello_retry(self) -> None:
        """Replace ClientHello1 by ``message_hash`` (RFC 8446 §4.4.1).

        Call after ``set_algorithm`` with exactly ClientHello1 added.
        """
        if self._algorithm is None:
            raise RuntimeError("transcript hash algorithm not set")
        first_hash = self.digest()
        self._hash = hashes.Hash(self._algorithm)
        self._hash.update(
            bytes([HandshakeType.MESSAGE_HASH, 0, 0, len(first_hash)]) + first_hash
        )

    def copy(self) -> Transcript:
        """An independent copy (ECH keeps an inner and an outer transcript)."""
        other = Transcript()
        other._pending = list(self._pending)
        other._algorithm = self._algorithm
        other._hash = self._hash.copy() if self._hash is not None else None
        return other
