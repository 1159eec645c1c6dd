"""DoH over HTTP/2 and HTTP/1.1 for ``ech serve --doh`` (RFC 8484).

:func:`doh_app` is ``ech serve``'s application with ``--doh``: DoH at one
path, the status page elsewhere.

:func:`serve_doh` (HTTP/2, with the ``h2`` package; RFC 8484 §5.2: HTTP/2
is the minimum RECOMMENDED version) and :func:`serve_doh_http1` (HTTP/1.1,
with ``h11``) drive :func:`ech.dns.doh_server.handle_request` on an
:class:`ech.aio.TLSStream`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11

from ech.aio import Handler as StreamHandler
from ech.aio import TLSStream
from ech.dns.doh_server import (
    MAX_DNS_MESSAGE,
    HTTPResponse,
    OtherRequests,
    Zone,
    handle_request,
    plain_response,
)
from ech.serve.status_page import status_fields
from ech.server.config import ServerConfig

__all__ = ["doh_app", "serve_doh", "serve_doh_http1"]

_MAX_HEAD: Final = 16384


async def _respond(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    path: str,
    zone: Zone,
    other: OtherRequests | None,
) -> HTTPResponse:
    if other is not None and urlsplit(target).path != path:
        result = other(method, target)
        if isinstance(result, HTTPResponse):
            return result
        return await result
    return handle_request(method, target, headers, body, path=path, zone=zone)


# -- HTTP/2 ----------------------------------------------------------------------


@dataclass
class _H2Request:
    headers: dict[str, str]
    body: bytearray
    too_large: bool = False


async def serve_doh(
    stream: TLSStream,
    path: str,
    zone: Zone,
    *,
    other: OtherRequests | None = None,
) -> None:
    """Serve DoH over HTTP/2 on ``stream`` until the client goes away.

    Streams are answered as their requests complete; response bodies obey
    HTTP/2 flow control (RFC 9113 §5.2). A protocol error closes the
    connection with GOAWAY.

    Args:
        stream: A server-side stream whose handshake chose ALPN ``h2``.
        path: The DoH path (RFC 8484 §3), e.g. ``/dns-query``.
        zone: What to answer from.
        other: Handler for other paths; 404 when ``None``.

    Raises:
        ValueError: The connection did not negotiate ``h2`` (RFC 9113 §3.2).
    """
    if stream.negotiated.alpn_protocol != "h2":
        raise ValueError("serve_doh needs a connection that negotiated ALPN h2")
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    conn.initiate_connection()
    await stream.send(conn.data_to_send())
    requests: dict[int, _H2Request] = {}
    pending: dict[int, memoryview] = {}
    while True:
        data = await stream.recv()
        if not data:
            return
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            await _h2_flush(stream, conn)
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                fields = {
                    _str(name).lower(): _str(value)
                    for name, value in (event.headers or ())
                }
                requests[event.stream_id] = _H2Request(fields, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
                request = requests.get(event.stream_id)
                if request is not None and not request.too_large:
                    request.body += event.data or b""
                    if len(request.body) > MAX_DNS_MESSAGE:
                        request.too_large = True
                        request.body.clear()
            elif isinstance(event, h2.events.StreamEnded):
                request = requests.pop(event.stream_id, None)
                if request is None:
                    continue
                response = await _h2_response(request, path, zone, other)
                _h2_start(conn, event.stream_id, response, pending)
            elif isinstance(event, h2.events.StreamReset):
                if event.stream_id is not None:
                    requests.pop(event.stream_id, None)
                    pending.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                await _h2_flush(stream, conn)
                return
        _h2_send_pending(conn, pending)
        await _h2_flush(stream, conn)


def _str(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def _h2_response(
    request: _H2Request, path: str, zone: Zone, other: OtherRequests | None
) -> HTTPResponse:
    if request.too_large:
        return plain_response(413, "DNS message too large")
    headers = request.headers
    return await _respond(
        headers.get(":method", ""),
        headers.get(":path", ""),
        headers,
        bytes(request.body),
        path,
        zone,
        other,
    )


def _h2_start(
    conn: h2.connection.H2Connection,
    stream_id: int,
    response: HTTPResponse,
    pending: dict[int, memoryview],
) -> None:
    head = [
        (":status", str(response.status)),
        *response.headers,
        ("content-length", str(len(response.body))),
    ]
    conn.send_headers(stream_id, head, end_stream=not response.body)
    if response.body:
        pending[stream_id] = memoryview(response.body)


def _h2_send_pending(
    conn: h2.connection.H2Connection, pending: dict[int, memoryview]
) -> None:
    """Send what flow control allows of each pending body."""
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


async def _h2_flush(stream: TLSStream, conn: h2.connection.H2Connection) -> None:
    out = conn.data_to_send()
    if out:
        await stream.send(out)


# -- HTTP/1.1 ----------------------------------------------------------------------


async def serve_doh_http1(
    stream: TLSStream,
    path: str,
    zone: Zone,
    *,
    other: OtherRequests | None = None,
) -> None:
    """Serve DoH over HTTP/1.1 (keep-alive) on ``stream`` with ``h11``.

    Args:
        stream: A server-side stream (ALPN ``http/1.1`` or none).
        path: The DoH path, e.g. ``/dns-query``.
        zone: What to answer from.
        other: Handler for other paths; 404 when ``None``.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    method = target = ""
    headers: dict[str, str] = {}
    body = bytearray()
    too_large = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as err:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = err.error_status_hint
                await _h1_send(stream, conn, plain_response(status, "bad request"))
            return
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.recv())
        elif isinstance(event, h11.Request):
            method = event.method.decode("ascii", "replace")
            target = event.target.decode("ascii", "replace")
            headers = {_str(name).lower(): _str(value) for name, value in event.headers}
            body = bytearray()
            too_large = False
        elif isinstance(event, h11.Data):
            if not too_large:
                body += event.data
                if len(body) > MAX_DNS_MESSAGE:
                    too_large = True
                    body.clear()
        elif isinstance(event, h11.EndOfMessage):
            if too_large:
                response = plain_response(413, "DNS message too large")
            else:
                response = await _respond(
                    method, target, headers, bytes(body), path, zone, other
                )
            await _h1_send(stream, conn, response)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
        else:  # ConnectionClosed or PAUSED
            return


async def _h1_send(
    stream: TLSStream, conn: h11.Connection, response: HTTPResponse
) -> None:
    head = [*response.headers, ("content-length", str(len(response.body)))]
    out = conn.send(h11.Response(status_code=response.status, headers=head)) or b""
    if response.body:
        out += conn.send(h11.Data(data=response.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send(out)


# -- ech serve --doh ---------------------------------------------------------------


def _common_suffix(names: Sequence[str]) -> str:
    """The longest DNS suffix all ``names`` share (``.`` if none)."""
    labels = [name.lower().rstrip(".").split(".")[::-1] for name in names]
    common: list[str] = []
    for parts in zip(*labels, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(reversed(common)) + "." if common else "."


def doh_app(
    provider: Callable[[], ServerConfig], path: str, host: str, port: int
) -> StreamHandler:
    """DoH (HTTP/2 or 1.1) for the names we serve, the status page elsewhere.

    The HTTPS records carry the advertised ECH configs current at query time.
    """
    config = provider()
    names = sorted({n for c in config.certificates for n in c.dns_names})
    zone = Zone(
        _common_suffix(names),
        lambda: provider().retry_configs,
        hosts=[name + "." for name in names],  # absolute, not origin-relative
        port=port,
        alpn=("h2", "http/1.1"),
        addresses=("127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host,),
    )

    async def handler(stream: TLSStream) -> None:
        body = json.dumps(status_fields(stream.negotiated), indent=2).encode()

        def status_page(method: str, target: str) -> HTTPResponse:
            headers = (("content-type", "application/json"),)
            return HTTPResponse(200, headers, body + b"\n")

        if stream.negotiated.alpn_protocol == "h2":
            await serve_doh(stream, path, zone, other=status_page)
        else:
            await serve_doh_http1(stream, path, zone, other=status_page)

    return handler
