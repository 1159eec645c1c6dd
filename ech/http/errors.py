"""The two ways an HTTP exchange fails that a caller may want to tell apart."""

from __future__ import annotations

__all__ = ["RequestHeadTimeout", "ResponseError"]


class RequestHeadTimeout(TimeoutError):
    """A client sent no complete request head within the deadline.

    Raised by :func:`ech.http.serve_http`; the connection should be closed.
    A :class:`TimeoutError`, hence an :class:`OSError`, as other transport
    failures are.
    """


class ResponseError(ConnectionError):
    """A server's response was malformed or cut short (RFC 9112 §8)."""
