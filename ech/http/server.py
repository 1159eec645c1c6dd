"""One entry point for serving HTTP on a connection: :func:`serve_http`.

The version is the one TLS negotiated with ALPN (RFC 7301): ``h2`` is
HTTP/2 (RFC 9113 §3.2), anything else, or no TLS at all, is HTTP/1.1.
HTTP/3 (RFC 9114) is the same :data:`~ech.http.messages.Handler` over QUIC
(:mod:`ech.http.http3`).

**Early data.** A client resuming a session may send its first request as
TLS 1.3 0-RTT data (RFC 8446 §2.3), which the server reads before the
handshake completes and which an attacker can replay (§8, §E.5). The
bytes reach :func:`serve_http` as ``early_data``: they come first, before
the stream's own, so a request sent early is answered like any other. It
is safe because of *when*: :func:`serve_http` runs only once the
handshake is complete (``ech.aio.Server`` calls its handler then), that
is after the client's Finished, which a replayed ClientHello can never
produce. RFC 8470 §3 names this option: a server that waits for the
handshake to complete before processing early data is not exposed to
replay, and never needs 425 (Too Early, §5.2). What 0-RTT still saves
the client is the round trip of sending the request.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final

from ech.events import HandshakeComplete
from ech.http.http1 import serve_http1
from ech.http.http2 import serve_http2
from ech.http.messages import Handler
from ech.http.options import ServerOptions
from ech.http.transport import ByteStream

__all__ = ["serve_http"]

_READ_SIZE: Final = 65536


class _EarlyDataFirst:
    """``stream`` whose first bytes are the client's 0-RTT data (a ByteStream)."""

    def __init__(self, stream: ByteStream, early_data: bytes) -> None:
        self._stream = stream
        self._early = early_data

    @property
    def handshake(self) -> HandshakeComplete | None:
        return self._stream.handshake

    async def recv(self, max_bytes: int = _READ_SIZE) -> bytes:
        if self._early:
            out, self._early = self._early[:max_bytes], self._early[max_bytes:]
            return out
        return await self._stream.recv(max_bytes)

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    async def close(self) -> None:
        await self._stream.close()


def serve_http(
    stream: ByteStream,
    handler: Handler,
    options: ServerOptions | None = None,
    *,
    early_data: bytes = b"",
) -> Coroutine[Any, Any, None]:
    """Answer the requests on ``stream`` with ``handler`` until it closes.

    A coroutine to await, as from an ``async def``; it is the HTTP/1.1 or
    HTTP/2 binding's own, so that a connection waiting for its client
    keeps one coroutine frame less.

    Args:
        stream: A server-side stream after its handshake (or plain TCP).
        handler: Answers each request (a :class:`~ech.http.router.Router`
            is one).
        options: Head and body bounds, head deadline, keep-alive.
        early_data: The client's 0-RTT data (``TLSStream.early_data``),
            read before the stream; only ever pass it once the handshake
            is complete (see the module docstring).

    Raises:
        RequestHeadTimeout: No complete request head within
            ``options.request_head_timeout``.
    """
    options = options or ServerOptions()
    if early_data:
        stream = _EarlyDataFirst(stream, early_data)
    handshake = stream.handshake
    if handshake is not None and handshake.alpn_protocol == "h2":
        return serve_http2(stream, handler, options)
    return serve_http1(stream, handler, options)
