"""``ech.aio.open_streams``: ECH as a standard (StreamReader, StreamWriter) pair."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ech.aio import open_streams
from ech.errors import ECHRejectedError
from ech.stream import EventStream
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    run_service,
)


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
    """GET / with Connection: close, the asyncio-streams way."""
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {HIDDEN_NAME}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200"), status
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"content-length" in head.lower()
    body = await reader.read()  # to EOF: the server closes after the response
    assert reader.at_eof()
    return json.loads(body)


def test_streams_with_ech_accepted(server_pki: ServerPKI) -> None:
    key = ech_key(1)

    async def main() -> tuple[Any, EventStream]:
        async with run_service(server_pki.server_config([key])) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                reader, writer = await open_streams(
                    "127.0.0.1",
                    running.port,
                    server_pki.client_config(),
                    HIDDEN_NAME,
                    ech_configs=config_list(key),
                )
                page = await get(reader, writer)
                tls = writer.get_extra_info("ssl_object")
                assert writer.get_extra_info("peername")[0] == "127.0.0.1"
                writer.close()
                await writer.wait_closed()
        assert isinstance(tls, EventStream)
        return page, tls

    page, tls = asyncio.run(main())
    assert (page["ech_status"], page["server_name"]) == ("accepted", HIDDEN_NAME)
    assert str(tls.ech_status) == "accepted"
    assert tls.outer_server_name == PUBLIC_NAME
    assert tls.version() == "TLSv1.3"
    assert tls.selected_alpn_protocol() == "http/1.1"
    cert = tls.getpeercert()
    assert isinstance(cert, dict)
    assert ("DNS", HIDDEN_NAME) in cert["subjectAltName"]  # type: ignore[operator]
    assert tls.ech_outcome is not None
    assert str(tls.ech_outcome.reason) == "accepted"


def test_streams_retry_once_after_a_rejection(server_pki: ServerPKI) -> None:
    async def main() -> tuple[Any, EventStream]:
        async with run_service(server_pki.server_config([ech_key(2)])) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                reader, writer = await open_streams(
                    "127.0.0.1",
                    running.port,
                    server_pki.client_config(),
                    HIDDEN_NAME,
                    ech_configs=config_list(ech_key(7)),
                )
                page = await get(reader, writer)
                writer.close()
                await writer.wait_closed()
                with pytest.raises(ECHRejectedError) as rejected:
                    await open_streams(
                        "127.0.0.1",
                        running.port,
                        server_pki.client_config(),
                        HIDDEN_NAME,
                        ech_configs=config_list(ech_key(7)),
                        ech_retry=False,
                    )
                assert rejected.value.can_retry
        tls = writer.get_extra_info("ssl_object")
        assert isinstance(tls, EventStream)
        return page, tls

    page, tls = asyncio.run(main())
    assert page["ech_status"] == "accepted"
    assert tls.retried
    assert tls.ech_outcome is not None
    assert str(tls.ech_outcome.reason) == "accepted_after_retry"
