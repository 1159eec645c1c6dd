"""HTTP/2 server binding over ``h2`` (RFC 9113).

h2 does the framing, HPACK, stream states and flow-control accounting;
this module receives each stream's request, calls the handler when the
stream's request is complete (END_STREAM), and sends response bodies only
as fast as the peer's flow-control windows allow (RFC 9113 §5.2),
resuming on WINDOW_UPDATE. Streams are answered one after another, in the
order their requests complete.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from ech.http._deadline import recv_before
from ech.http.messages import (
    HTTP_2,
    ConnectionInfo,
    Handler,
    Request,
    Response,
    text_response,
)
from ech.http.options import ServerOptions
from ech.http.transport import ByteStream

__all__ = ["serve_http2"]

#: Fields HTTP/2 forbids (RFC 9113 §8.2.2); dropped from responses.
_CONNECTION_SPECIFIC: Final = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")
)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass
class _Incoming:
    """One stream's request head, and its body so far."""

    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    too_large: bool = False

    def add(self, data: bytes, max_body: int) -> None:
        """Keep ``data``, or drop everything once over ``max_body``."""
        if self.too_large:
            return
        self.body += data
        if len(self.body) > max_body:
            self.too_large = True
            self.body.clear()

    def request(self) -> Request:
        pseudo = {n: v for n, v in self.headers if n.startswith(":")}
        return Request(
            method=pseudo.get(":method", ""),
            target=pseudo.get(":path", ""),
            headers=tuple((n, v) for n, v in self.headers if not n.startswith(":")),
            body=bytes(self.body),
            authority=pseudo.get(":authority"),
        )


async def serve_http2(
    stream: ByteStream, handler: Handler, options: ServerOptions
) -> None:
    """Answer HTTP/2 requests on ``stream`` until the client goes away.

    A protocol error ends the connection with GOAWAY (RFC 9113 §5.4.1).
    The caller closes the stream.

    Raises:
        RequestHeadTimeout: No complete request HEADERS in time.
    """
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    conn.initiate_connection()
    conn.update_settings(
        {h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: options.max_head}
    )
    await _flush(stream, conn)
    info = ConnectionInfo(HTTP_2, stream.handshake)
    timeout = options.request_head_timeout
    deadline: float | None = asyncio.get_running_loop().time() + timeout
    incoming: dict[int, _Incoming] = {}
    pending: dict[int, memoryview] = {}
    while True:
        data = await recv_before(stream, deadline, timeout)
        if not data:
            return
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            # RFC 9113 §5.4.1: a connection error ends with GOAWAY. h2 queues
            # it for errors in frames, not for a bad preface.
            if conn.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                conn.close_connection(error_code=error.error_code)
            await _flush(stream, conn)
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                deadline = None
                incoming[event.stream_id] = _Incoming(
                    [(_text(n), _text(v)) for n, v in event.headers or ()]
                )
            elif isinstance(event, h2.events.DataReceived):
                # Our window reopens whatever we keep (RFC 9113 §6.9).
                conn.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
                partial = incoming.get(event.stream_id)
                if partial is not None:
                    partial.add(event.data or b"", options.max_body)
            elif isinstance(event, h2.events.StreamEnded):
                partial = incoming.pop(event.stream_id, None)
                if partial is None:
                    continue
                request = partial.request()
                if partial.too_large:
                    response = text_response(413, "request content too large")
                else:
                    response = await handler(request, info)
                head = request.method == "HEAD"
                _start(conn, event.stream_id, response, pending, head=head)
            elif isinstance(event, h2.events.StreamReset):
                if event.stream_id is not None:
                    incoming.pop(event.stream_id, None)
                    pending.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                await _flush(stream, conn)
                return
        _send_pending(conn, pending)
        await _flush(stream, conn)


def _start(
    conn: h2.connection.H2Connection,
    stream_id: int,
    response: Response,
    pending: dict[int, memoryview],
    *,
    head: bool,
) -> None:
    """Send the response's HEADERS; queue its body for flow control."""
    fields = [
        (":status", str(response.status)),
        *((n, v) for n, v in response.headers if n not in _CONNECTION_SPECIFIC),
        ("content-length", str(len(response.body))),
    ]
    body = b"" if head else response.body
    conn.send_headers(stream_id, fields, end_stream=not body)
    if body:
        pending[stream_id] = memoryview(body)


def _send_pending(
    conn: h2.connection.H2Connection, pending: dict[int, memoryview]
) -> None:
    """Send what the flow-control windows allow of each pending body."""
    for stream_id in list(pending):
        body = pending[stream_id]
        try:
            while body:
                window = min(
                    conn.local_flow_control_window(stream_id),
                    conn.max_outbound_frame_size,
                )
                if window <= 0:
                    break
                chunk, body = body[:window], body[window:]
                conn.send_data(stream_id, chunk, end_stream=not body)
        except h2.exceptions.StreamClosedError:
            body = memoryview(b"")
        if body:
            pending[stream_id] = body
        else:
            del pending[stream_id]


async def _flush(stream: ByteStream, conn: h2.connection.H2Connection) -> None:
    out = conn.data_to_send()
    if out:
        await stream.send(out)
