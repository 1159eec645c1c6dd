"""HTTP/3 binding over aioquic's ``h3`` (RFC 9114), server and client.

aioquic does QUIC and HTTP/3 framing and QPACK; this module turns a
request stream's HEADERS and DATA into one :class:`~ech.http.messages.Request`
for the same :data:`~ech.http.messages.Handler` that answers HTTP/1.1 and
HTTP/2, and sends its :class:`~ech.http.messages.Response` back. The
connection under it is an :class:`ech.quic.ECHQuicConnection`, so the
handler's :class:`~ech.http.messages.ConnectionInfo` carries our handshake's
outcome (ECH status, names) as over TCP.

A client that completes the handshake but sends no complete request head
within ``ServerOptions.request_head_timeout`` is closed with
H3_REQUEST_INCOMPLETE (RFC 9114 §8.1), as the TCP bindings close theirs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent

from ech.events import HandshakeComplete
from ech.http.errors import ResponseError
from ech.http.messages import (
    HTTP_3,
    ConnectionInfo,
    Handler,
    Request,
    Response,
    text_response,
)
from ech.http.options import ServerOptions
from ech.quic.connection import ECHQuicConnection

__all__ = ["H3ClientProtocol", "H3ServerProtocol"]

#: Fields HTTP/3 forbids, as HTTP/2 does (RFC 9114 §4.2); dropped.
_CONNECTION_SPECIFIC: Final = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")
)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


@dataclass
class _Incoming:
    """One request stream's head, and its body so far."""

    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    too_large: bool = False

    def request(self) -> Request:
        pseudo = {n: v for n, v in self.headers if n.startswith(":")}
        return Request(
            method=pseudo.get(":method", ""),
            target=pseudo.get(":path", ""),
            headers=tuple((n, v) for n, v in self.headers if not n.startswith(":")),
            body=bytes(self.body),
            authority=pseudo.get(":authority"),
        )


def _handshake(quic: object) -> HandshakeComplete | None:
    return (
        quic.handshake_complete_event if isinstance(quic, ECHQuicConnection) else None
    )


class H3ServerProtocol(QuicConnectionProtocol):
    """Answers every HTTP/3 request on one QUIC connection with ``handler``.

    Args:
        quic: the connection (an :class:`~ech.quic.ECHQuicConnection`).
        handler: answers each request.
        options: head deadline and body bound (``max_head`` is QPACK's).
        **kwargs: aioquic's protocol arguments (``stream_handler``).
    """

    def __init__(
        self,
        quic: Any,  # noqa: ANN401 - aioquic's QuicConnection
        *,
        handler: Handler,
        options: ServerOptions | None = None,
        **kwargs: Any,  # noqa: ANN401 - aioquic's
    ) -> None:
        super().__init__(quic, **kwargs)
        self.handler = handler
        self.options = options or ServerOptions()
        self._h3: H3Connection | None = None
        self._incoming: dict[int, _Incoming] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._head_deadline: asyncio.TimerHandle | None = None
        self.requests = 0
        #: The connection was closed for want of a request head in time.
        self.head_timed_out = False

    def quic_event_received(self, event: QuicEvent) -> None:
        """Arm the head deadline at the handshake; pass events to HTTP/3."""
        if isinstance(event, HandshakeCompleted):
            self._arm_head_deadline()
        if self._h3 is None:
            self._h3 = H3Connection(self._quic)
        for h3_event in self._h3.handle_event(event):
            self._h3_event(h3_event)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the deadline and the handlers still running."""
        self._disarm_head_deadline()
        for task in self._tasks:
            task.cancel()
        super().connection_lost(exc)

    # the request head deadline ---------------------------------------------------

    def _arm_head_deadline(self) -> None:
        timeout = self.options.request_head_timeout
        self._head_deadline = self._loop.call_later(timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.requests == 0:
            self.head_timed_out = True
            timeout = self.options.request_head_timeout
            self._quic.close(
                error_code=ErrorCode.H3_REQUEST_INCOMPLETE,
                reason_phrase=f"no complete request head in {timeout:g} s",
            )
            self.transmit()

    # requests ------------------------------------------------------------------------

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            self.requests += 1
            self._disarm_head_deadline()
            headers = [(_text(n).lower(), _text(v)) for n, v in event.headers]
            self._incoming[event.stream_id] = _Incoming(headers)
        elif isinstance(event, DataReceived):
            incoming = self._incoming.get(event.stream_id)
            if incoming is not None and not incoming.too_large:
                incoming.body += event.data
                if len(incoming.body) > self.options.max_body:
                    incoming.too_large = True
                    incoming.body.clear()
        else:
            return
        if event.stream_ended and event.stream_id in self._incoming:
            incoming = self._incoming.pop(event.stream_id)
            task = asyncio.ensure_future(self._answer(event.stream_id, incoming))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, stream_id: int, incoming: _Incoming) -> None:
        request = incoming.request()
        if incoming.too_large:
            response = text_response(413, "request content too large")
        else:
            info = ConnectionInfo(HTTP_3, _handshake(self._quic))
            response = await self.handler(request, info)
        self._send(stream_id, request, response)

    def _send(self, stream_id: int, request: Request, response: Response) -> None:
        if self._h3 is None:
            return
        body = b"" if request.method == "HEAD" else response.body
        headers = [(b":status", str(response.status).encode())]
        headers += [
            (name.encode(), value.encode())
            for name, value in response.headers
            if name not in _CONNECTION_SPECIFIC and name != "content-length"
        ]
        headers.append((b"content-length", str(len(response.body)).encode()))
        self._h3.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self._h3.send_data(stream_id, body, end_stream=True)
        self.transmit()


class H3ClientProtocol(QuicConnectionProtocol):
    """Sends HTTP/3 requests on one QUIC connection; awaits their responses."""

    def __init__(self, quic: Any, **kwargs: Any) -> None:  # noqa: ANN401 - aioquic's
        super().__init__(quic, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._responses: dict[int, asyncio.Future[Response]] = {}
        self._heads: dict[int, list[tuple[str, str]]] = {}
        self._bodies: dict[int, bytearray] = {}
        self._closed_reason: str | None = None

    @property
    def handshake(self) -> HandshakeComplete | None:
        """Our handshake's outcome (ECH status, names), once complete."""
        return _handshake(self._quic)

    @property
    def closed_reason(self) -> str | None:
        """Why the connection closed, once it has; requests then fail."""
        return self._closed_reason

    async def request(
        self, request: Request, authority: str, *, scheme: str = "https"
    ) -> Response:
        """Send ``request`` to ``authority`` and wait for the whole response.

        Raises:
            ResponseError: the response came without a valid ``:status``.
            ConnectionError: the connection closed first.
        """
        if self._closed_reason is not None:
            raise ConnectionError(self._closed_reason)
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", request.method.encode()),
            (b":scheme", scheme.encode()),
            (b":authority", authority.encode()),
            (b":path", request.target.encode()),
            *((n.encode(), v.encode()) for n, v in request.headers),
        ]
        self._h3.send_headers(stream_id, headers, end_stream=not request.body)
        if request.body:
            self._h3.send_data(stream_id, request.body, end_stream=True)
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self._responses[stream_id] = waiter
        self.transmit()
        return await waiter

    def quic_event_received(self, event: QuicEvent) -> None:
        """Collect each response's HEADERS and DATA (RFC 9114 §4.1)."""
        if isinstance(event, ConnectionTerminated):
            self._fail_waiting(event.reason_phrase or "QUIC connection closed")
        for h3_event in self._h3.handle_event(event):
            self._h3_event(h3_event)

    def _fail_waiting(self, reason: str) -> None:
        self._closed_reason = reason
        for waiter in self._responses.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(reason))

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the requests still waiting."""
        self._fail_waiting("QUIC connection closed")
        super().connection_lost(exc)

    def _h3_event(self, event: H3Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        if stream_id not in self._responses:
            return
        if isinstance(event, HeadersReceived):
            self._heads[stream_id] = [(_text(n), _text(v)) for n, v in event.headers]
        elif isinstance(event, DataReceived):
            self._bodies.setdefault(stream_id, bytearray()).extend(event.data)
        else:
            return
        if event.stream_ended:
            self._complete(stream_id)

    def _complete(self, stream_id: int) -> None:
        waiter = self._responses.pop(stream_id)
        head = self._heads.pop(stream_id, [])
        body = bytes(self._bodies.pop(stream_id, b""))
        status = dict(head).get(":status", "")
        if not status.isdigit():
            waiter.set_exception(ResponseError("HTTP/3 response without :status"))
            return
        headers = tuple((n.lower(), v) for n, v in head if not n.startswith(":"))
        waiter.set_result(Response(int(status), headers, body, http_version="3"))
