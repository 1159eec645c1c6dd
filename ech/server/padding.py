"""Padding of the server's encrypted flight when ECH is accepted.

RFC 9849 §6.1.3 and §10.11 (ECH-53): "Other handshake messages with
sensitive lengths (e.g. EncryptedExtensions carrying the ALPN choice,
Certificate) need TLS record padding". With ECH accepted, which certificate
the server chose follows from the hidden name, and the length of
EncryptedExtensions, [CertificateRequest,] Certificate, CertificateVerify
and Finished would tell an observer which one it was. So that flight is
padded up to :func:`flight_size_bound`: the longest flight this
configuration can send, whatever name, certificate, signature (ECDSA
signatures vary by a few bytes) or ALPN protocol. Every such flight of up
to 2^14 bytes is then one record of the same length (longer ones fill
their records, so only the record count can differ).

Overhead, measured with ``python benchmarks/ech_padding.py`` (bytes on the
wire of the flight with ECH accepted, record headers and tags included;
every name's padded flight has the same length):

=================================================  ==========  ======  ========
configured certificates, name used                 unpadded    padded  overhead
=================================================  ==========  ======  ========
one P-256 leaf                                     576-578     598     21
P-256 + RSA-2048 leaves: the P-256 name            576-578     967     390
P-256 + RSA-2048 leaves: the RSA name              947         967     20
P-256, P-256 + intermediate, RSA-2048: P-256 name  576-577     1018    441
... the name with the intermediate                 997-998     1018    21
... the RSA name                                   947         1018    71
=================================================  ==========  ======  ========

So about 20 bytes when one certificate is configured (the ECDSA signature's
variance, and room for the server_name and early_data acknowledgements and
the longest ALPN name), and the difference to the largest chain otherwise.

The exact figures of a run are printed by the script; the padding costs
bytes on the wire only (one AEAD over a longer record).

A flight of a rejected or absent ECH is not padded: it is for the public
name (or a name sent in the clear) and hides nothing.
"""

from __future__ import annotations

from ech.server.config import ServerConfig
from ech.server.handshake import certificate_request_for
from ech.tls.records import PaddingPolicy, pad_handshake_to
from ech.tls.signatures import max_signature_length

#: Handshake message header (type, 24-bit length).
_HEADER = 4
#: Finished with the longest hash of our suites (SHA-384).
_FINISHED = _HEADER + 48


def _encrypted_extensions_bound(config: ServerConfig) -> int:
    """EncryptedExtensions at its longest for ``config`` (RFC 8446 §4.3.1)."""
    length = _HEADER + 2
    length += 4  # server_name, empty (RFC 6066 §3)
    length += 4  # early_data, empty (RFC 8446 §4.2.10)
    if config.alpn_protocols:
        longest = max(len(p.encode()) for p in config.alpn_protocols)
        length += 4 + 2 + 1 + longest  # one ProtocolName (RFC 7301 §3.1)
    return length


def flight_size_bound(config: ServerConfig) -> int:
    """The longest encrypted flight ``config`` can send in a full handshake.

    EncryptedExtensions, CertificateRequest when client certificates are
    asked for, the longest Certificate plus the longest CertificateVerify
    its key can make, and Finished.
    """
    request = certificate_request_for(config)
    certificate = max(
        len(c.certificate_message)
        + _HEADER
        + 2
        + 2
        + max_signature_length(c.private_key)
        for c in config.certificates
    )
    return (
        _encrypted_extensions_bound(config)
        + (len(request.framed()) if request is not None else 0)
        + certificate
        + _FINISHED
    )


def ech_flight_padding(config: ServerConfig) -> PaddingPolicy:
    """The padding of the server's handshake records when ECH is accepted.

    ``config.record_padding``, if any, applies on top: the flight is first
    padded to the bound, then by that policy.
    """
    flight = pad_handshake_to(flight_size_bound(config))
    extra = config.record_padding
    if extra is None:
        return flight

    def policy(content_type: int, length: int) -> int:
        pad = flight(content_type, length)
        return pad + max(0, extra(content_type, length + pad))

    return policy


__all__ = ["ech_flight_padding", "flight_size_bound"]
