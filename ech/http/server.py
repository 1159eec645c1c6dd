"""One entry point for serving HTTP on a connection: :func:`serve_http`.

The version is the one TLS negotiated with ALPN (RFC 7301): ``h2`` is
HTTP/2 (RFC 9113 §3.2), anything else, or no TLS at all, is HTTP/1.1. A
QUIC connection would bring HTTP/3 (RFC 9114) as a third binding of the
same :data:`~ech.http.messages.Handler`.
"""

from __future__ import annotations

from ech.http.http1 import serve_http1
from ech.http.http2 import serve_http2
from ech.http.messages import Handler
from ech.http.options import ServerOptions
from ech.http.transport import ByteStream

__all__ = ["serve_http"]


async def serve_http(
    stream: ByteStream, handler: Handler, options: ServerOptions | None = None
) -> None:
    """Answer the requests on ``stream`` with ``handler`` until it closes.

    Args:
        stream: A server-side stream after its handshake (or plain TCP).
        handler: Answers each request (a :class:`~ech.http.router.Router`
            is one).
        options: Head and body bounds, head deadline, keep-alive.

    Raises:
        RequestHeadTimeout: No complete request head within
            ``options.request_head_timeout``.
    """
    options = options or ServerOptions()
    handshake = stream.handshake
    if handshake is not None and handshake.alpn_protocol == "h2":
        await serve_http2(stream, handler, options)
    else:
        await serve_http1(stream, handler, options)
