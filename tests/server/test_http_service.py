"""The HTTP layer behind the TLS server: the head deadline, h2 by ALPN, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import h2.config
import h2.connection
import h2.events

from ech.aio import PlainStream, TLSStream, open_connection
from ech.http import (
    ServerOptions,
    encode_request,
    fetch_async,
    serve_http,
)
from ech.serve.metrics import CONTENT_TYPE, Metrics
from ech.serve.metrics_endpoint import start_metrics_server
from ech.serve.status_page import status_page
from tests.harness.http import status_json
from tests.server.conftest import (
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    fetch,
    run_service,
)


def test_handshake_without_request_is_closed_at_the_head_deadline(
    server_pki: ServerPKI,
) -> None:
    """A client that completes the handshake and sends nothing is closed."""
    options = ServerOptions(request_head_timeout=0.3)

    async def app(stream: TLSStream) -> None:
        await serve_http(stream, status_page, options)

    async def main() -> None:
        async with run_service(server_pki.server_config(), app=app) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), PUBLIC_NAME
                )
                started = time.monotonic()
                assert await stream.recv() == b""  # close_notify, no response
            # Not before the deadline; the outcome below says why it closed.
            assert time.monotonic() - started > 0.25
            await stream.close()
            # A client that asks in time is answered as usual.
            _, page = await fetch(running.port, server_pki.client_config(), PUBLIC_NAME)
            assert page["server_name"] == PUBLIC_NAME
            async with asyncio.timeout(IO_TIMEOUT):
                while running.service.open_connections:
                    await asyncio.sleep(0.01)

            def outcomes(outcome: str) -> float:
                return running.metrics.value(
                    "ech_connection_outcomes_total", outcome=outcome
                )

            # The silent one is reported as such, not as completed.
            assert (outcomes("request_head_timeout"), outcomes("completed")) == (1, 1)

    asyncio.run(main())


async def h2_get(stream: TLSStream, authority: str) -> tuple[int, bytes]:
    """GET / over HTTP/2 with the h2 package's client: status and body."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    request = [(":method", "GET"), (":path", "/"), (":scheme", "https")]
    conn.send_headers(1, [*request, (":authority", authority)], end_stream=True)
    await stream.send(conn.data_to_send())
    status, body = 0, bytearray()
    while True:
        data = await stream.recv()
        assert data, "closed before the response ended"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers or ())[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data or b""
                conn.acknowledge_received_data(event.flow_controlled_length or 0, 1)
            elif isinstance(event, h2.events.StreamEnded):
                return status, bytes(body)
        await stream.send(conn.data_to_send())


def test_status_page_over_h2_and_http1(server_pki: ServerPKI) -> None:
    """One handler, the version ALPN chose (RFC 9113 §3.2)."""
    config = dataclasses.replace(
        server_pki.server_config(), alpn_protocols=("h2", "http/1.1")
    )

    async def main() -> None:
        async with run_service(config) as running:
            _, page = await fetch(running.port, server_pki.client_config(), PUBLIC_NAME)
            assert page["alpn"] == "http/1.1"
            client = dataclasses.replace(
                server_pki.client_config(), alpn_protocols=("h2",)
            )
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, client, PUBLIC_NAME
                )
                status, body = await h2_get(stream, PUBLIC_NAME)
                await stream.close()
            assert status == 200
            page = status_json(body)
            assert (page["alpn"], page["server_name"]) == ("h2", PUBLIC_NAME)

    asyncio.run(main())


def test_metrics_endpoint() -> None:
    """Plain HTTP/1.1 through the same layer: GET, HEAD, 404, 405, 431."""
    metrics = Metrics()
    metrics.inc("ech_connections_total", ech_status="accepted")

    async def ask(port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        async with asyncio.timeout(IO_TIMEOUT):
            answer = await reader.read()  # one request per connection
        writer.close()
        return answer

    async def main() -> None:
        server = await start_metrics_server(metrics, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            answer = await ask(port, encode_request("GET", "/metrics", host="m"))
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert f"content-type: {CONTENT_TYPE}".encode() in head.lower()
            assert b'ech_connections_total{ech_status="accepted"} 1' in body
            assert f"content-length: {len(body)}".encode() in head.lower()
            # Keep-alive is asked for, but the endpoint answers one request.
            twice = encode_request("GET", "/", host="m", close=False) * 2
            answer = await ask(port, twice)
            assert answer.count(b"HTTP/1.1 200 OK") == 1
            assert b"connection: close" in answer.lower()
            head_only = await ask(port, encode_request("HEAD", "/metrics", host="m"))
            assert head_only.endswith(b"\r\n\r\n")
            assert f"content-length: {len(body)}".encode() in head_only.lower()
            missing = await ask(port, encode_request("GET", "/other", host="m"))
            assert missing.startswith(b"HTTP/1.1 404 ")
            post = await ask(port, encode_request("POST", "/metrics", host="m"))
            assert post.startswith(b"HTTP/1.1 405 ")
            assert b"\r\nallow: GET, HEAD\r\n" in post
            huge = (
                b"GET /metrics HTTP/1.1\r\nHost: m\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
            )
            assert (await ask(port, huge)).startswith(b"HTTP/1.1 431 ")
            # Our own client reads it too.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            response = await fetch_async(
                PlainStream(reader, writer), "/metrics", host="m"
            )
            assert response.header("content-type") == CONTENT_TYPE
        finally:
            server.close()

    asyncio.run(main())
