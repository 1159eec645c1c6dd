"""The HTTP/1.1 client of our own commands, over ``h11`` (RFC 9112).

``ech connect``, ``ech get``, the demo and the tests send one request on a
TLS connection they opened and read one response. :class:`Exchange` is
that, sans-IO: h11 writes the request and parses the response, honouring
Content-Length, chunked coding and read-until-close (RFC 9112 §6.3), so no
caller splits bytes by hand. :func:`fetch` drives it over a blocking
:class:`ech.blocking.TLSSocket`, :func:`fetch_async` over an
:class:`ech.aio.TLSStream`.
"""

from __future__ import annotations

import h11

from ech.http.errors import ResponseError
from ech.http.messages import Headers, Response
from ech.http.transport import BlockingByteStream, ByteStream

__all__ = ["Exchange", "encode_request", "fetch", "fetch_async", "read_response"]

#: Largest response head accepted (h11's own default).
MAX_RESPONSE_HEAD = 16384


def _request(
    method: str, target: str, host: str, headers: Headers, body: bytes, close: bool
) -> list[h11.Request | h11.Data | h11.EndOfMessage]:
    fields = [("host", host), *headers]
    if body or method in ("POST", "PUT"):
        fields.append(("content-length", str(len(body))))
    if close:
        fields.append(("connection", "close"))
    events: list[h11.Request | h11.Data | h11.EndOfMessage] = [
        h11.Request(method=method, target=target, headers=fields)
    ]
    if body:
        events.append(h11.Data(data=body))
    events.append(h11.EndOfMessage())
    return events


class Exchange:
    """One request and its response, without I/O.

    Args:
        method: The request method.
        target: The request target, e.g. ``/`` or ``/dns-query?dns=...``.
        host: The ``Host`` field (RFC 9110 §7.2), the server's name.
        headers: More header fields.
        body: The request content (Content-Length is set from it).
        close: Send ``Connection: close`` (RFC 9112 §9.6).
        max_body: Largest response content accepted, or None.
    """

    def __init__(
        self,
        method: str,
        target: str,
        *,
        host: str,
        headers: Headers = (),
        body: bytes = b"",
        close: bool = True,
        max_body: int | None = None,
    ) -> None:
        self._conn = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD
        )
        self._out = b"".join(
            self._conn.send(event) or b""
            for event in _request(method, target, host, headers, body, close)
        )
        self._head: h11.Response | None = None
        self._body = bytearray()
        self._max_body = max_body

    def data_to_send(self) -> bytes:
        """The request's bytes (once)."""
        out, self._out = self._out, b""
        return out

    def receive_data(self, data: bytes) -> Response | None:
        """Feed bytes from the server (``b""`` at EOF); the response once whole.

        Raises:
            ResponseError: The response is malformed, too large, or cut
                short by the server closing.
        """
        self._conn.receive_data(data)
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as error:
                raise ResponseError(f"bad HTTP response: {error}") from None
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Response):
                self._head = event
            elif isinstance(event, h11.Data):
                self._body += event.data
                if self._max_body is not None and len(self._body) > self._max_body:
                    raise ResponseError("response content too large")
            elif isinstance(event, h11.EndOfMessage) and self._head is not None:
                return self._response(self._head)
            elif isinstance(event, h11.ConnectionClosed):
                raise ResponseError("the server closed before a complete response")
            # InformationalResponse (1xx): keep reading.

    def _response(self, head: h11.Response) -> Response:
        return Response(
            status=head.status_code,
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in head.headers
            ),
            body=bytes(self._body),
            reason=head.reason.decode("latin-1"),
            http_version=head.http_version.decode("ascii"),
        )


def encode_request(
    method: str,
    target: str,
    *,
    host: str,
    headers: Headers = (),
    body: bytes = b"",
    close: bool = True,
) -> bytes:
    """The bytes of one HTTP/1.1 request, for peers that take them raw."""
    return Exchange(
        method, target, host=host, headers=headers, body=body, close=close
    ).data_to_send()


def fetch(
    stream: BlockingByteStream,
    target: str = "/",
    *,
    host: str,
    method: str = "GET",
    headers: Headers = (),
    body: bytes = b"",
    close: bool = True,
    max_body: int | None = None,
) -> Response:
    """Send one request on a blocking stream and read its response.

    Raises:
        ResponseError: The response is malformed or incomplete.
    """
    exchange = Exchange(
        method,
        target,
        host=host,
        headers=headers,
        body=body,
        close=close,
        max_body=max_body,
    )
    stream.sendall(exchange.data_to_send())
    return read_response(stream, exchange)


def read_response(stream: BlockingByteStream, exchange: Exchange) -> Response:
    """Read ``exchange``'s response from ``stream``, its request already sent.

    For a caller that sent the request another way, e.g. as TLS 0-RTT data
    (``ech connect --early-data``).

    Raises:
        ResponseError: The response is malformed or incomplete.
    """
    while (response := exchange.receive_data(stream.recv())) is None:
        pass
    return response


async def fetch_async(
    stream: ByteStream,
    target: str = "/",
    *,
    host: str,
    method: str = "GET",
    headers: Headers = (),
    body: bytes = b"",
    close: bool = True,
    max_body: int | None = None,
) -> Response:
    """Send one request on an asyncio stream and read its response.

    Raises:
        ResponseError: The response is malformed or incomplete.
    """
    exchange = Exchange(
        method,
        target,
        host=host,
        headers=headers,
        body=body,
        close=close,
        max_body=max_body,
    )
    await stream.send(exchange.data_to_send())
    while (response := exchange.receive_data(await stream.recv())) is None:
        pass
    return response
