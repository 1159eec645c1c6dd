"""The h11 client of our commands (Exchange, fetch) and the Router."""

from __future__ import annotations

import asyncio

import pytest

from ech.http import (
    ConnectionInfo,
    Exchange,
    Request,
    Response,
    ResponseError,
    Router,
    encode_request,
    fetch,
    fetch_async,
    serve_http,
    text_response,
)
from tests.unit.httplayer.memory import MemoryStream

INFO = ConnectionInfo("HTTP/1.1")


def test_request_bytes() -> None:
    assert encode_request("GET", "/x?y=1", host="example.test") == (
        b"GET /x?y=1 HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n"
    )
    post = encode_request(
        "POST",
        "/q",
        host="h",
        headers=(("content-type", "application/dns-message"),),
        body=b"abc",
        close=False,
    )
    assert post == (
        b"POST /q HTTP/1.1\r\nhost: h\r\ncontent-type: application/dns-message\r\n"
        b"content-length: 3\r\n\r\nabc"
    )


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello",  # read until close
    ],
    ids=["content-length", "chunked", "until-close"],
)
def test_exchange_reads_one_response_byte_by_byte(wire: bytes) -> None:
    exchange = Exchange("GET", "/", host="example.test")
    assert exchange.data_to_send().startswith(b"GET / HTTP/1.1\r\n")
    response = None
    for byte in wire:
        assert response is None
        response = exchange.receive_data(bytes((byte,)))
    if response is None:
        response = exchange.receive_data(b"")  # EOF ends a close-delimited body
    assert response is not None
    assert (response.status, response.body) == (200, b"hello")
    assert response.status_line == "HTTP/1.1 200 OK"


def test_exchange_stops_at_content_length() -> None:
    """Bytes after the response (say, a close_notify's EOF) are never waited for."""
    exchange = Exchange("GET", "/", host="example.test")
    exchange.data_to_send()
    response = exchange.receive_data(
        b"HTTP/1.1 404 Nope\r\nContent-Length: 2\r\n\r\nno"
    )
    assert response is not None
    assert (response.status, response.reason, response.body) == (404, "Nope", b"no")
    assert response.status_line == "HTTP/1.1 404 Nope"


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",  # cut short
        b"garbage\r\n\r\n",
        b"",
    ],
)
def test_exchange_errors(wire: bytes) -> None:
    exchange = Exchange("GET", "/", host="example.test")
    exchange.data_to_send()
    with pytest.raises(ResponseError):  # at once, or when the server closes
        exchange.receive_data(wire) or exchange.receive_data(b"")


def test_exchange_body_limit() -> None:
    exchange = Exchange("GET", "/", host="example.test", max_body=3)
    exchange.data_to_send()
    with pytest.raises(ResponseError, match="too large"):
        exchange.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")


class BlockingPeer:
    """A blocking stream whose peer answers with canned bytes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = [answer[i : i + 7] for i in range(0, len(answer), 7)]
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, max_bytes: int = 65536) -> bytes:
        return self.answer.pop(0) if self.answer else b""


def test_fetch_blocking() -> None:
    peer = BlockingPeer(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody")
    response = fetch(peer, "/p", host="example.test")
    assert response.body == b"body"
    assert response.header("Content-Length") == "4"
    assert peer.sent.startswith(b"GET /p HTTP/1.1\r\nhost: example.test\r\n")


def test_fetch_async_against_serve_http() -> None:
    """Our client and our server, over a stream pair in memory."""

    async def handler(request: Request, info: ConnectionInfo) -> Response:
        return Response(201, (), request.body[::-1])

    async def main() -> None:
        server_side = MemoryStream("http/1.1")
        task = asyncio.create_task(serve_http(server_side, handler))

        class ClientSide:
            handshake = None

            async def send(self, data: bytes) -> None:
                server_side.feed(data)

            async def recv(self, max_bytes: int = 65536) -> bytes:
                return await server_side.wait_sent()

            async def close(self) -> None:
                server_side.feed_eof()

        response = await fetch_async(
            ClientSide(), "/", host="example.test", method="PUT", body=b"abc"
        )
        assert (response.status, response.body) == (201, b"cba")
        assert response.status_line == "HTTP/1.1 201 Created"
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_router() -> None:
    async def named(request: Request, info: ConnectionInfo) -> Response:
        return Response(200, (), request.path.encode())

    async def fallback(request: Request, info: ConnectionInfo) -> Response:
        return text_response(418, "teapot")

    async def main() -> None:
        router = Router({"/a": named})
        router.add("/b", named)
        answer = await router(Request("GET", "/a?q=1"), INFO)
        assert answer.body == b"/a"
        assert (await router(Request("POST", "/b"), INFO)).body == b"/b"
        missing = await router(Request("GET", "/c"), INFO)
        assert (missing.status, missing.body) == (404, b"not found\n")
        assert missing.header("content-type") == "text/plain; charset=utf-8"
        router.default = fallback
        assert (await router(Request("GET", "/c"), INFO)).status == 418

    asyncio.run(main())
