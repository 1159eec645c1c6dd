"""serve_http over HTTP/1.1 (h11): bodies, keep-alive, bounds, the head deadline."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

import h11
import pytest

from ech.http import (
    ConnectionInfo,
    Request,
    RequestHeadTimeout,
    Response,
    ServerOptions,
    encode_request,
    serve_http,
)
from tests.unit.httplayer.memory import MemoryStream


class Seen(list[tuple[Request, ConnectionInfo]]):
    """The requests a handler saw, with their connection info."""


def echo(seen: Seen) -> Callable[[Request, ConnectionInfo], Awaitable[Response]]:
    """A handler that records each request and answers with its body."""

    async def handler(request: Request, info: ConnectionInfo) -> Response:
        seen.append((request, info))
        body = f"{request.method} {request.target} {len(request.body)}\n".encode()
        return Response(200, (("content-type", "text/plain"),), body + request.body)

    return handler


class Client:
    """An independent HTTP/1.1 client (plain h11) to read the server with."""

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.CLIENT)

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        out = self.conn.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            out += self.conn.send(h11.Data(data=body))
        return out + self.conn.send(h11.EndOfMessage())

    def response(self, data: bytes) -> tuple[h11.Response, bytes]:
        self.conn.receive_data(data)
        head: h11.Response | None = None
        body = b""
        while True:
            event = self.conn.next_event()
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return head, body
            else:
                raise AssertionError(f"incomplete response: {event!r}")


async def start(
    stream: MemoryStream, seen: Seen, options: ServerOptions | None = None
) -> asyncio.Task[None]:
    task = asyncio.create_task(serve_http(stream, echo(seen), options))
    await asyncio.sleep(0)
    return task


def test_content_length_body_and_keep_alive() -> None:
    """RFC 9112 §6.2: the body is exactly Content-Length; the next request follows."""

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        client = Client()
        headers = [("host", "example.test"), ("content-length", "5")]
        stream.feed(client.request("POST", "/a?x=1", headers, b"hello"))
        head, body = client.response(await stream.wait_sent())
        assert head.status_code == 200
        assert head.reason == b"OK"
        assert (b"content-length", b"%d" % len(body)) in head.headers
        assert body == b"POST /a?x=1 5\nhello"
        request, info = seen[0]
        assert (request.path, request.authority, request.body) == (
            "/a",
            "example.test",
            b"hello",
        )
        assert request.header("Content-Length") == "5"
        assert (info.http_version, info.tls) == ("HTTP/1.1", stream.handshake)
        # Keep-alive: a second request on the same connection.
        client.conn.start_next_cycle()
        stream.feed(client.request("GET", "/b", [("host", "example.test")], b""))
        _, body = client.response(await stream.wait_sent())
        assert body == b"GET /b 0\n"
        stream.feed_eof()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def parsers() -> int:
    """Server-side h11 connections alive now."""
    gc.collect()
    return sum(
        isinstance(o, h11.Connection) and o.our_role is h11.SERVER
        for o in gc.get_objects()
    )


def test_an_idle_connection_holds_no_parser() -> None:
    """Before its first request and between two, a connection keeps no h11 state."""

    async def main() -> None:
        before = parsers()
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        assert parsers() == before  # waiting for the first request
        client = Client()
        stream.feed(client.request("GET", "/a", [("host", "example.test")], b""))
        client.response(await stream.wait_sent())
        await asyncio.sleep(0)
        assert parsers() == before  # kept alive, waiting for the next one
        stream.feed_eof()  # (the next one is served: keep-alive's test above)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_chunked_body_and_split_feeding() -> None:
    """RFC 9112 §7.1, fed a byte at a time: framing never depends on reads."""

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        data = (
            b"POST /c HTTP/1.1\r\nHost: example.test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        for byte in data:
            stream.feed(bytes((byte,)))
        sent = await stream.wait_sent()
        assert sent.startswith(b"HTTP/1.1 200 OK\r\n")
        assert sent.endswith(b"POST /c 5\nabcde")
        assert seen[0][0].body == b"abcde"
        stream.feed_eof()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_pipelined_requests_answered_in_order() -> None:
    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        first = encode_request("GET", "/1", host="example.test", close=False)
        second = encode_request("GET", "/2", host="example.test")
        stream.feed(first + second)
        await asyncio.wait_for(task, 5)  # the second asked to close
        sent = stream.take()
        assert sent.index(b"GET /1 0\n") < sent.index(b"GET /2 0\n")
        assert sent.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert [r.target for r, _ in seen] == ["/1", "/2"]

    asyncio.run(main())


def test_connection_close_ends_the_exchange() -> None:
    """RFC 9112 §9.6: after a request with close, the response closes too."""

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        stream.feed(encode_request("GET", "/", host="example.test"))
        await asyncio.wait_for(task, 5)
        head = stream.take().split(b"\r\n\r\n")[0].lower()
        assert b"\r\nconnection: close" in head

    asyncio.run(main())


def test_keep_alive_off_closes_after_one_response() -> None:
    async def main() -> None:
        stream, seen = MemoryStream(tls=False), Seen()
        task = await start(stream, seen, ServerOptions(keep_alive=False))
        request = encode_request("GET", "/", host="example.test", close=False)
        stream.feed(request + request)
        await asyncio.wait_for(task, 5)
        sent = stream.take()
        assert sent.count(b"HTTP/1.1 200 OK") == 1
        assert b"connection: close" in sent.lower()
        assert len(seen) == 1
        assert seen[0][1].tls is None

    asyncio.run(main())


def test_head_gets_the_get_headers_without_body() -> None:
    """RFC 9110 §9.3.2: HEAD is GET without content; Content-Length as for GET."""

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        stream.feed(encode_request("HEAD", "/", host="example.test"))
        await asyncio.wait_for(task, 5)
        sent = stream.take()
        assert sent.endswith(b"\r\n\r\n")
        assert b"content-length: 9\r\n" in sent.lower()  # len("HEAD / 0\n")

    asyncio.run(main())


@pytest.mark.parametrize("complete", [False, True], ids=["arriving", "in-one-read"])
def test_oversized_head_is_431(complete: bool) -> None:
    """RFC 6585 §5, whether the head is still arriving or came whole."""
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 2000
    if complete:
        head += b"\r\n\r\n"

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen, ServerOptions(max_head=1024))
        stream.feed(head)
        await asyncio.wait_for(task, 5)
        sent = stream.take()
        assert sent.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert b"connection: close" in sent.lower()
        assert seen == []

    asyncio.run(main())


def test_malformed_request_is_400() -> None:
    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen)
        stream.feed(b"NOT HTTP\r\n\r\n")
        await asyncio.wait_for(task, 5)
        assert stream.take().startswith(b"HTTP/1.1 400 ")
        assert seen == []

    asyncio.run(main())


def test_oversized_body_is_413_and_the_connection_stays_usable() -> None:
    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen, ServerOptions(max_body=10))
        big = encode_request(
            "POST", "/", host="example.test", body=b"x" * 11, close=False
        )
        stream.feed(big + encode_request("GET", "/after", host="example.test"))
        await asyncio.wait_for(task, 5)
        sent = stream.take()
        assert sent.startswith(b"HTTP/1.1 413 ")
        assert b"GET /after 0\n" in sent
        assert [r.target for r, _ in seen] == ["/after"]

    asyncio.run(main())


@pytest.mark.parametrize("partial", [b"", b"GET / HTTP/1.1\r\nHost: a"])
def test_request_head_timeout(partial: bytes) -> None:
    """A handshake without a complete request head is closed at the deadline."""

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        options = ServerOptions(request_head_timeout=0.2)
        started = time.monotonic()
        task = await start(stream, seen, options)
        if partial:
            stream.feed(partial)
        with pytest.raises(RequestHeadTimeout, match=r"0\.2 s"):
            await asyncio.wait_for(task, 5)
        assert 0.15 < time.monotonic() - started < 3
        assert stream.take() == b""
        assert seen == []

    asyncio.run(main())


def test_head_deadline_is_per_request_not_idle_time() -> None:
    """Between keep-alive requests only the idle timeout applies; a slow later
    head still meets the deadline from its first byte."""

    async def main() -> None:
        stream, seen = MemoryStream("http/1.1"), Seen()
        task = await start(stream, seen, ServerOptions(request_head_timeout=0.2))
        stream.feed(encode_request("GET", "/1", host="example.test", close=False))
        await stream.wait_sent()
        await asyncio.sleep(0.4)  # idle, longer than the head deadline
        assert not task.done()
        stream.feed(b"GET /2 HTTP/1.1\r\n")  # ... and never the rest
        with pytest.raises(RequestHeadTimeout):
            await asyncio.wait_for(task, 5)
        assert [r.target for r, _ in seen] == ["/1"]

    asyncio.run(main())
