"""The small HTTP/1.1 page ``ech serve`` answers with: what the handshake was.

Each request gets a JSON object naming the ECH outcome and the negotiated
parameters, so clients (ours, browsers, curl) can see what the server saw.
"""

from __future__ import annotations

import json

from ech.aio import TLSStream
from ech.events import HandshakeComplete

MAX_REQUEST_HEAD = 16384


def status_fields(handshake: HandshakeComplete) -> dict[str, str | bool | None]:
    """The fields ``ech serve`` reports, named as ``ech connect --json`` prints them."""
    return {
        "ech_status": str(handshake.ech_status),
        "outer_server_name": handshake.outer_server_name,
        "server_name": handshake.server_name,
        "tls_version": handshake.version,
        "cipher_suite": str(handshake.cipher_suite),
        "group": str(handshake.group) if handshake.group is not None else None,
        "alpn": handshake.alpn_protocol,
        "resumed": handshake.resumed,
        "hello_retry": handshake.hello_retry,
    }


def _response(status: str, body: bytes, keep_alive: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


async def serve_status(stream: TLSStream) -> None:
    """Answer every HTTP/1.1 request on ``stream`` with the status JSON."""
    handshake = stream.negotiated
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_REQUEST_HEAD:
                await stream.send(
                    _response("431 Request Header Fields Too Large", b"", False)
                )
                return
            data = await stream.recv()
            if not data:
                return
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        keep_alive = not any(
            line.lower().replace(" ", "") == "connection:close" for line in lines[1:]
        )
        body = json.dumps(status_fields(handshake), indent=2).encode() + b"\n"
        await stream.send(_response("200 OK", body, keep_alive))
        if not keep_alive:
            return
