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
    from ech.events import ECHReason


class ECHRequired(Alert):
    """RFC 9849 §5 ``ech_required``."""

    description = AlertDescription.ECH_REQUIRED


class ECHRejectedError(TLSError):
    """The server rejected ECH (RFC 9849 §6.1.6): a normal outcome, not a violation.

    ``retry_configs`` is the server's authenticated list, or None. With
    usable configs, retry once on a new connection with them. ``retried``
    is set when this rejection answered that one retry. The message says
    what happened in words: the server authenticated as ``public_name``
    (the outer handshake's certificate) and sent N retry configs.
    """

    def __init__(self, retry_configs: ECHConfigList | None, public_name: str) -> None:
        super().__init__(f"ECH rejected by {public_name}")
        self.retry_configs = retry_configs
        self.public_name = public_name
        self.retried = False

    @property
    def can_retry(self) -> bool:
        """Whether the retry configs hold one we can use."""
        return self.retry_configs is not None and bool(self.retry_configs.usable())

    def explain(self) -> str:
        """The rejection in words, for people (logs, ``ech get``, diagnostics)."""
        configs = self.retry_configs
        if configs is None:
            sent = "sent no retry configs (ECH is securely disabled for it)"
        else:
            count, usable = len(configs.configs), len(configs.usable())
            plural = "" if count == 1 else "s"
            sent = f"sent {count} retry config{plural} ({usable} usable)"
        text = (
            f"ECH rejected by {self.public_name}: the server authenticated as "
            f"{self.public_name} and {sent}"
        )
        if self.retried:
            text += "; rejected again on the one retry"
        return text

    def __str__(self) -> str:
        return self.explain()


class ECHUnavailableError(TLSError):
    """ECH cannot be used and must be: nothing was sent (RFC 9848 §5.1).

    Raised before any ClientHello when the HTTPS records all carry ``ech``
    but none of their configs is usable (SVCB-reliant mode, ECH-105), or
    in strict mode (``require_ech=True``) whenever the
    connection would not offer real ECH. Sending a ClientHello anyway
    would put the real server name in clear.

    Attributes:
        reason: Why, in one word.
        detail: Why, in a sentence (which configs, KEMs and suites).
    """

    def __init__(self, reason: ECHReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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
    "ECHUnavailableError",
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
