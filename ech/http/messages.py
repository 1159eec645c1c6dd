"""The values every HTTP binding shares: requests, responses, handlers.

One :class:`Request` and one :class:`Response` type whatever the wire
version, as RFC 9110 (HTTP Semantics) separates the meaning of a message
from its framing in RFC 9112 (HTTP/1.1) and RFC 9113 (HTTP/2). A
:data:`Handler` sees only these values, so the same handler answers over
h11, over h2 and, later, over HTTP/3 (RFC 9114, aioquic's ``h3``).
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ech.events import HandshakeComplete

__all__ = [
    "ConnectionInfo",
    "Handler",
    "Headers",
    "Request",
    "Response",
    "reason_phrase",
    "text_response",
]

#: Header fields as ``(name, value)`` pairs, names in lower case (RFC 9110
#: §5.1: names are case-insensitive; RFC 9113 §8.2.2 requires lower case).
Headers = tuple[tuple[str, str], ...]

HTTP_1_1: Final = "HTTP/1.1"
HTTP_2: Final = "HTTP/2"
HTTP_3: Final = "HTTP/3"


def _find(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key == wanted:
            return value
    return None


@dataclass(frozen=True)
class Request:
    """One complete request (RFC 9110 §9, §7.1).

    Attributes:
        method: The method token, e.g. ``GET``.
        target: The request target in origin-form, path and query
            (RFC 9112 §3.2.1; HTTP/2's ``:path``, RFC 9113 §8.3.1).
        headers: Header fields, lower-case names, without pseudo-headers.
        body: The content, framing removed (RFC 9110 §6.4).
        authority: ``Host`` (HTTP/1.1) or ``:authority`` (HTTP/2), RFC 9110
            §7.2; None when the client sent neither.
    """

    method: str
    target: str
    headers: Headers = ()
    body: bytes = b""
    authority: str | None = None

    @property
    def path(self) -> str:
        """The target's path, without the query (RFC 9110 §4.2.1)."""
        return urlsplit(self.target).path

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        return _find(self.headers, name)


@dataclass(frozen=True)
class Response:
    """One response (RFC 9110 §15), independent of the HTTP version.

    Attributes:
        status: The status code, 200 to 599.
        headers: Lower-case names with values; no ``content-length`` (the
            binding adds it from ``body``, RFC 9110 §8.6) and no
            connection-specific fields (RFC 9113 §8.2.2).
        body: The content (not sent for HEAD, RFC 9110 §9.3.2).
        reason: HTTP/1.1's reason phrase (RFC 9112 §4) as received by a
            client; a server sends the standard phrase when it is empty.
        http_version: The version a client received it in (``1.1``).
    """

    status: int
    headers: Headers = ()
    body: bytes = b""
    reason: str = ""
    http_version: str = "1.1"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        return _find(self.headers, name)

    @property
    def status_line(self) -> str:
        """``HTTP/1.1 200 OK``, as ``ech connect --json`` reports it."""
        reason = self.reason or reason_phrase(self.status)
        return f"HTTP/{self.http_version} {self.status} {reason}"


@dataclass(frozen=True)
class ConnectionInfo:
    """What a handler may know about the connection a request came on.

    Attributes:
        http_version: ``HTTP/1.1``, ``HTTP/2`` or ``HTTP/3``.
        tls: The TLS handshake's outcome (ECH status, names, ALPN), or
            None on a plain TCP stream (the metrics endpoint).
    """

    http_version: str
    tls: HandshakeComplete | None = None


#: Answers one request. Raising ends the connection (the server logs it):
#: errors a client should see are responses, e.g. :func:`text_response`.
Handler = Callable[[Request, ConnectionInfo], Awaitable[Response]]


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (RFC 9110 §15), or ``""``."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def text_response(status: int, message: str, headers: Headers = ()) -> Response:
    """A short ``text/plain`` response, for errors."""
    return Response(
        status,
        (("content-type", "text/plain; charset=utf-8"), *headers),
        (message + "\n").encode(),
    )
