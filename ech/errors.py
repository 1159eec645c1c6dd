"""Exceptions raised on purpose by ``ech``: the TLS errors, and ECH's own.

The TLS errors live in :mod:`ech.tls.errors` (the TLS layer knows nothing of
ECH) and are re-exported here, so ``from ech.errors import DecodeError``
works; this module adds the alert and the outcome that RFC 9849 defines.

Two families, kept apart as h11 keeps local and remote errors apart:

* :class:`Alert` and its subclasses: the *peer* did something wrong. The
  connection has already queued the matching fatal alert (RFC 8446 §6.2) in
  ``data_to_send()`` before raising, and is closed.
* :class:`PeerAlert`: the peer aborted with a fatal alert.

:class:`ECHRejectedError` is neither: a rejection is a normal outcome.
Wrong use of the API raises ``ValueError``, ``TypeError`` or
``RuntimeError``; any other exception escaping a connection is a bug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ech.tls.enums import AlertDescription
from ech.tls.errors import (
    Alert,
    BadCertificate,
    BadRecordMac,
    CertificateExpired,
    CertificateRequired,
    CertificateUnknown,
    ConnectionClosedError,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    MessageTooLong,
    MissingExtension,
    NoApplicationProtocol,
    PeerAlert,
    ProtocolVersion,
    RecordOverflow,
    TLSError,
    UnexpectedMessage,
    UnknownCA,
    UnrecognizedName,
    UnsupportedCertificate,
    UnsupportedExtension,
)

if TYPE_CHECKING:
    from ech.config import ECHConfigList


class ECHRequired(Alert):
    """RFC 9849 §5 ``ech_required``."""

    description = AlertDescription.ECH_REQUIRED


class ECHRejectedError(TLSError):
    """The server rejected ECH (RFC 9849 §6.1.6): a normal outcome, not a violation.

    ``retry_configs`` is the server's authenticated list, or None. With
    usable configs, retry once on a new connection with them.
    """

    def __init__(self, retry_configs: ECHConfigList | None, public_name: str) -> None:
        super().__init__(f"ECH rejected by {public_name}")
        self.retry_configs = retry_configs
        self.public_name = public_name

    @property
    def can_retry(self) -> bool:
        """Whether the retry configs hold one we can use."""
        return self.retry_configs is not None and bool(self.retry_configs.usable())


__all__ = [
    "Alert",
    "BadCertificate",
    "BadRecordMac",
    "CertificateExpired",
    "CertificateRequired",
    "CertificateUnknown",
    "ConnectionClosedError",
    "DecodeError",
    "DecryptError",
    "ECHRejectedError",
    "ECHRequired",
    "HandshakeFailure",
    "IllegalParameter",
    "InternalError",
    "MessageTooLong",
    "MissingExtension",
    "NoApplicationProtocol",
    "PeerAlert",
    "ProtocolVersion",
    "RecordOverflow",
    "TLSError",
    "UnexpectedMessage",
    "UnknownCA",
    "UnrecognizedName",
    "UnsupportedCertificate",
    "UnsupportedExtension",
]
