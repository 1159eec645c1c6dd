"""serve_http over HTTP/2 (h2), chosen by ALPN: requests, flow control, bounds."""

from __future__ import annotations

import asyncio
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from ech.http import (
    ConnectionInfo,
    Request,
    RequestHeadTimeout,
    Response,
    ServerOptions,
    serve_http,
)
from tests.unit.httplayer.memory import MemoryStream

BIG = bytes(range(256)) * 800  # 200 KiB: more than the initial 64 KiB window


async def handler(request: Request, info: ConnectionInfo) -> Response:
    if request.path == "/big":
        return Response(200, (("content-type", "application/octet-stream"),), BIG)
    body = f"{info.http_version} {request.method} {request.authority} ".encode()
    return Response(
        200,
        (("content-type", "text/plain"), ("connection", "keep-alive")),
        body + request.body,
    )


class Client:
    """An h2 client that reads what the server sent and acknowledges data."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.responses: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.ended: set[int] = set()
        self.settings: list[h2.settings.ChangedSetting] = []

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:  # b"" would read as the end of the stream
            self.stream.feed(data)

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":path", path),
            (":scheme", "https"),
            (":authority", "example.test"),
        ]
        self.conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.flush()
        return stream_id

    async def until_ended(self, stream_id: int) -> tuple[dict[str, str], bytes]:
        while stream_id not in self.ended:
            data = await self.stream.wait_sent()
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    fields = {str(n): str(v) for n, v in event.headers or ()}
                    self.responses[event.stream_id or 0] = (fields, bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    sid = event.stream_id or 0
                    self.responses[sid][1].extend(event.data or b"")
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length or 0, sid
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id or 0)
                elif isinstance(event, h2.events.RemoteSettingsChanged):
                    self.settings.extend(event.changed_settings.values())
            self.flush()
        fields, body = self.responses[stream_id]
        return fields, bytes(body)


def frame_types(data: bytes) -> list[int]:
    """The type of each frame in ``data`` (RFC 9113 §4.1)."""
    types = []
    while data:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types


def test_requests_bodies_and_flow_control() -> None:
    """RFC 9113 §5.2: a 200 KiB body goes out only as WINDOW_UPDATEs allow."""

    async def main() -> None:
        stream = MemoryStream("h2")
        task = asyncio.create_task(serve_http(stream, handler))
        client = Client(stream)
        client.flush()
        post = client.request("POST", "/echo", b"payload")
        fields, body = await client.until_ended(post)
        assert fields[":status"] == "200"
        assert fields["content-length"] == str(len(body))
        assert "connection" not in fields  # RFC 9113 §8.2.2
        assert body == b"HTTP/2 POST example.test payload"
        big = client.request("GET", "/big")
        fields, body = await client.until_ended(big)
        assert body == BIG
        assert fields["content-length"] == str(len(BIG))
        head = client.request("HEAD", "/big")
        fields, body = await client.until_ended(head)
        assert (fields["content-length"], body) == (str(len(BIG)), b"")
        limit = h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE
        assert any(s.setting == limit and s.new_value == 16384 for s in client.settings)
        stream.feed_eof()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_oversized_body_is_413() -> None:
    async def main() -> None:
        stream = MemoryStream("h2")
        task = asyncio.create_task(
            serve_http(stream, handler, ServerOptions(max_body=4))
        )
        client = Client(stream)
        client.flush()
        fields, _ = await client.until_ended(client.request("POST", "/", b"12345"))
        assert fields[":status"] == "413"
        fields, _ = await client.until_ended(client.request("POST", "/", b"1234"))
        assert fields[":status"] == "200"
        stream.feed_eof()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_protocol_error_ends_with_goaway() -> None:
    async def main() -> None:
        stream = MemoryStream("h2")
        task = asyncio.create_task(serve_http(stream, handler))
        stream.feed(b"GET / HTTP/1.1\r\n\r\n")  # not the HTTP/2 preface
        await asyncio.wait_for(task, 5)
        assert frame_types(stream.take())[-1] == 0x7  # GOAWAY (RFC 9113 §6.8)

    asyncio.run(main())


def test_request_head_timeout() -> None:
    """A preface and SETTINGS, but no HEADERS: closed at the deadline."""

    async def main() -> None:
        stream = MemoryStream("h2")
        options = ServerOptions(request_head_timeout=0.2)
        started = time.monotonic()
        task = asyncio.create_task(serve_http(stream, handler, options))
        Client(stream).flush()
        with pytest.raises(RequestHeadTimeout):
            await asyncio.wait_for(task, 5)
        assert 0.15 < time.monotonic() - started < 3

    asyncio.run(main())
