"""The TLS errors: alerts we send, alerts we receive, and a closed connection.

Two families, kept apart as h11 keeps local and remote errors apart:

* :class:`Alert` and its subclasses: the *peer* did something wrong. The
  connection has already queued the matching fatal alert (RFC 8446 §6.2) in
  ``data_to_send()`` before raising, and is closed.
* :class:`PeerAlert`: the peer aborted with a fatal alert.

Wrong use of the API raises ``ValueError``, ``TypeError`` or
``RuntimeError``; any other exception escaping a connection is a bug.
"""

from __future__ import annotations

from typing import ClassVar

from ech.tls.enums import AlertDescription


class TLSError(Exception):
    """Root of every exception ``ech`` raises on purpose."""


class Alert(TLSError):
    """The connection must stop and send ``description`` to the peer."""

    description: ClassVar[AlertDescription] = AlertDescription.INTERNAL_ERROR

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.description}: {message}" if message else str(self.description)


class UnexpectedMessage(Alert):
    """RFC 8446 §6.2 ``unexpected_message``."""

    description = AlertDescription.UNEXPECTED_MESSAGE


class BadRecordMac(Alert):
    """RFC 8446 §6.2 ``bad_record_mac``: a record failed to deprotect."""

    description = AlertDescription.BAD_RECORD_MAC


class RecordOverflow(Alert):
    """RFC 8446 §6.2 ``record_overflow``."""

    description = AlertDescription.RECORD_OVERFLOW


class HandshakeFailure(Alert):
    """RFC 8446 §6.2 ``handshake_failure``: no acceptable parameters."""

    description = AlertDescription.HANDSHAKE_FAILURE


class BadCertificate(Alert):
    """RFC 8446 §6.2 ``bad_certificate``."""

    description = AlertDescription.BAD_CERTIFICATE


class UnsupportedCertificate(Alert):
    """RFC 8446 §6.2 ``unsupported_certificate``: not usable for this purpose."""

    description = AlertDescription.UNSUPPORTED_CERTIFICATE


class CertificateExpired(Alert):
    """RFC 8446 §6.2 ``certificate_expired``: expired or not yet valid."""

    description = AlertDescription.CERTIFICATE_EXPIRED


class CertificateRequired(Alert):
    """RFC 8446 §6.2 ``certificate_required``: a client certificate is needed."""

    description = AlertDescription.CERTIFICATE_REQUIRED


class CertificateUnknown(Alert):
    """RFC 8446 §6.2 ``certificate_unknown``: the chain or name did not verify."""

    description = AlertDescription.CERTIFICATE_UNKNOWN


class UnknownCA(Alert):
    """RFC 8446 §6.2 ``unknown_ca``."""

    description = AlertDescription.UNKNOWN_CA


class IllegalParameter(Alert):
    """RFC 8446 §6.2 ``illegal_parameter``."""

    description = AlertDescription.ILLEGAL_PARAMETER


class DecodeError(Alert):
    """RFC 8446 §6.2 ``decode_error``: a message could not be parsed."""

    description = AlertDescription.DECODE_ERROR


class MessageTooLong(DecodeError):
    """A handshake message longer than the local limit (sent as decode_error)."""


class DecryptError(Alert):
    """RFC 8446 §6.2 ``decrypt_error``: a signature or Finished check failed."""

    description = AlertDescription.DECRYPT_ERROR


class ProtocolVersion(Alert):
    """RFC 8446 §6.2 ``protocol_version``."""

    description = AlertDescription.PROTOCOL_VERSION


class InternalError(Alert):
    """RFC 8446 §6.2 ``internal_error``."""

    description = AlertDescription.INTERNAL_ERROR


class MissingExtension(Alert):
    """RFC 8446 §6.2 ``missing_extension``."""

    description = AlertDescription.MISSING_EXTENSION


class UnsupportedExtension(Alert):
    """RFC 8446 §6.2 ``unsupported_extension``."""

    description = AlertDescription.UNSUPPORTED_EXTENSION


class NoApplicationProtocol(Alert):
    """RFC 7301 §3.2 ``no_application_protocol``."""

    description = AlertDescription.NO_APPLICATION_PROTOCOL


class UnrecognizedName(Alert):
    """RFC 6066 §3 ``unrecognized_name``: the name is not served (this way)."""

    description = AlertDescription.UNRECOGNIZED_NAME


class PeerAlert(TLSError):
    """The peer aborted the connection with a fatal alert (RFC 8446 §6.2)."""

    def __init__(self, description: AlertDescription) -> None:
        super().__init__(f"peer sent fatal alert {description}")
        self.description = description


class ConnectionClosedError(TLSError):
    """The connection is closed or failed; no more data can be sent or received."""
