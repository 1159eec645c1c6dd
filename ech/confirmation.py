"""ECH acceptance confirmation (RFC 9849 §7.2, §7.2.1).

The backend proves it used ClientHelloInner by deriving 8 bytes from the
inner random and the inner transcript: in the last 8 bytes of
ServerHello.random, or in the HelloRetryRequest's ECH extension. The inputs
are built from the message model with one field replaced, never by
searching bytes (ECH-55, ECH-56).
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import hashes

from ech.extension import CONFIRMATION_LENGTH
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension
from ech.tls.key_schedule import hkdf_expand_label, hkdf_extract
from ech.tls.messages import ServerHello
from ech.tls.transcript import Transcript

_ZEROS = bytes(CONFIRMATION_LENGTH)


def _confirmation(
    algorithm: hashes.HashAlgorithm, inner_random: bytes, label: bytes, digest: bytes
) -> bytes:
    prk = hkdf_extract(algorithm, b"", inner_random)
    return hkdf_expand_label(algorithm, prk, label, digest, CONFIRMATION_LENGTH)


def random_with_confirmation(random: bytes, confirmation: bytes = _ZEROS) -> bytes:
    """``random`` with ``confirmation`` (zeros by default) as its last 8 bytes."""
    return random[: 32 - CONFIRMATION_LENGTH] + confirmation


def server_hello_with_confirmation_zeroed(sh: ServerHello) -> ServerHello:
    """The ServerHello with the last 8 bytes of its random set to zero.

    ``sh`` itself if they already are: a server draws its random with them
    zeroed, so the one ServerHello is encoded once, hashed here, and the
    confirmation spliced into its bytes (:func:`server_hello_with_confirmation`).
    """
    if sh.random[32 - CONFIRMATION_LENGTH :] == _ZEROS:
        return sh
    return sh.with_random(random_with_confirmation(sh.random))


def server_hello_with_confirmation(sh: ServerHello, confirmation: bytes) -> ServerHello:
    """The ServerHello with ``confirmation`` as the last 8 bytes of its random."""
    return sh.with_random(random_with_confirmation(sh.random, confirmation))


def accept_confirmation(
    algorithm: hashes.HashAlgorithm,
    inner_random: bytes,
    inner_transcript: Transcript,
    sh: ServerHello,
) -> bytes:
    """``accept_confirmation`` over the inner transcript and ``sh`` (§7.2).

    ``inner_transcript`` holds everything before the ServerHello; it is not
    modified (its hash state is copied, so ClientHelloInner is not hashed
    again). The last 8 bytes of ``sh.random`` are ignored.
    """
    transcript = inner_transcript.copy()
    zeroed = server_hello_with_confirmation_zeroed(sh)
    transcript.add(zeroed.framed())
    return _confirmation(
        algorithm, inner_random, b"ech accept confirmation", transcript.digest()
    )


def hello_retry_with_confirmation(hrr: ServerHello, confirmation: bytes) -> ServerHello:
    """The HRR with its encrypted_client_hello body set to ``confirmation``."""
    return hrr.with_extension(
        Extension(ExtensionType.ENCRYPTED_CLIENT_HELLO, confirmation)
    )


def hrr_accept_confirmation(
    algorithm: hashes.HashAlgorithm,
    inner_random: bytes,
    inner_transcript: Transcript,
    hrr: ServerHello,
) -> bytes:
    """``hrr_accept_confirmation`` (§7.2.1).

    ``inner_transcript`` must already hold ``message_hash(ClientHelloInner1)``
    (RFC 8446 §4.4.1), as BoringSSL and Go compute it; it is not modified.
    """
    transcript = inner_transcript.copy()
    zeroed = hello_retry_with_confirmation(hrr, _ZEROS)
    transcript.add(zeroed.framed())
    return _confirmation(
        algorithm, inner_random, b"hrr ech accept confirmation", transcript.digest()
    )


def confirmation_matches(expected: bytes, received: bytes) -> bool:
    """Compare confirmations in constant time."""
    return hmac.compare_digest(expected, received)
