"""HTTP/1.1 server binding over ``h11`` (RFC 9112).

h11 does the framing: request heads bounded by ``max_incomplete_event_size``
(431 beyond it), bodies by Content-Length or chunked coding (RFC 9112 §6),
keep-alive and ``Connection: close`` (RFC 9112 §9.3, §9.6), pipelined
requests answered in order. This module only moves bytes between h11 and a
:class:`~ech.http.transport.ByteStream` and calls the handler.
"""

from __future__ import annotations

import asyncio

import h11

from ech.http._deadline import recv_before
from ech.http.messages import (
    HTTP_1_1,
    ConnectionInfo,
    Handler,
    Request,
    Response,
    reason_phrase,
    text_response,
)
from ech.http.options import ServerOptions
from ech.http.transport import ByteStream

__all__ = ["serve_http1"]


def _text(value: bytes) -> str:
    # RFC 9110 §5.5: field values are octets; latin-1 keeps every one.
    return value.decode("latin-1")


class _Incoming:
    """The request being received: its head, and its body so far.

    The :class:`Request` is made once, when the body is complete: a
    request without a body (most) is one object, not one per part.
    """

    def __init__(self, event: h11.Request, max_body: int) -> None:
        self.method = _text(event.method)
        self._target = _text(event.target)
        self._headers = tuple(
            (_text(name), _text(value)) for name, value in event.headers
        )
        self.body = bytearray()
        self.too_large = False
        self._max_body = max_body

    def add(self, data: bytes) -> None:
        if self.too_large:
            return
        self.body += data
        if len(self.body) > self._max_body:
            self.too_large = True
            self.body.clear()

    def complete(self) -> Request:
        headers = self._headers
        return Request(
            self.method,
            self._target,
            headers,
            bytes(self.body),
            next((v for n, v in headers if n == "host"), None),
        )


async def serve_http1(
    stream: ByteStream, handler: Handler, options: ServerOptions
) -> None:
    """Answer HTTP/1.1 requests on ``stream`` until either side closes.

    Returns when the client closes, after a response with ``Connection:
    close``, or after answering a malformed request (400, or 431 for an
    oversized head). The caller closes the stream.

    The h11 parser is made when a request's first bytes arrive, and
    dropped once it is answered unless the next one is already there
    (pipelined): a fresh parser is what ``start_next_cycle`` would leave,
    and an idle connection (before its first request, or kept alive
    between two) then holds none.

    Raises:
        RequestHeadTimeout: No complete request head in time.
    """
    info = ConnectionInfo(HTTP_1_1, stream.handshake)
    loop = asyncio.get_running_loop()
    timeout, max_head = options.request_head_timeout, options.max_head
    deadline: float | None = loop.time() + timeout  # the first request's head
    conn: h11.Connection | None = None
    incoming: _Incoming | None = None
    while True:
        if conn is None:  # between requests
            data = await recv_before(stream, deadline, timeout)
            if not data:
                return
            if deadline is None:
                deadline = loop.time() + timeout  # a later request has begun
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
            conn.receive_data(data)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = error.error_status_hint
                await _send(stream, conn, text_response(status, reason_phrase(status)))
            return
        if event is h11.NEED_DATA:
            waiting_for_head = conn.their_state is h11.IDLE
            if conn.they_are_waiting_for_100_continue:
                # RFC 9110 §10.1.1: a client may wait for 100 before the body.
                await stream.send(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                )
            data = await recv_before(
                stream, deadline if waiting_for_head else None, timeout
            )
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            deadline = None
            if _head_size(event) > max_head:
                # h11 bounds a head still arriving; one that came whole in a
                # single read is measured here (RFC 6585 §5).
                await _send(stream, conn, text_response(431, reason_phrase(431)))
                return
            incoming = _Incoming(event, options.max_body)
        elif isinstance(event, h11.Data) and incoming is not None:
            incoming.add(event.data)
        elif isinstance(event, h11.EndOfMessage) and incoming is not None:
            if incoming.too_large:
                response = text_response(413, "request content too large")
            else:
                response = await handler(incoming.complete(), info)
            await _send(
                stream,
                conn,
                response,
                close=not options.keep_alive,
                head=incoming.method == "HEAD",
            )
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            incoming = None
            if conn.trailing_data[0]:  # a pipelined request is already here
                conn.start_next_cycle()
                deadline = loop.time() + timeout
            else:
                conn = None
        else:  # ConnectionClosed, or PAUSED after Connection: close
            return


def _head_size(event: h11.Request) -> int:
    """The request head's size on the wire, give or take whitespace."""
    line = len(event.method) + len(event.target) + len(b"  HTTP/1.1\r\n")
    fields = sum(len(name) + len(value) + 4 for name, value in event.headers)
    return line + fields + 2


async def _send(
    stream: ByteStream,
    conn: h11.Connection,
    response: Response,
    *,
    close: bool = True,
    head: bool = False,
) -> None:
    """Send ``response`` whole, without its body for HEAD (RFC 9110 §9.3.2).

    Content-Length is the body's length even for HEAD, as for the GET it
    stands for (RFC 9110 §8.6).
    """
    headers = [
        *response.headers,
        ("content-length", str(len(response.body))),
        *((("connection", "close"),) if close else ()),
    ]
    start = h11.Response(
        status_code=response.status,
        headers=headers,
        reason=response.reason or reason_phrase(response.status),
    )
    out = conn.send(start) or b""
    if response.body and not head:
        out += conn.send(h11.Data(data=response.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send(out)
