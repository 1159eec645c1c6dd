"""Limits under abuse: slowloris, oversized hellos, floods, idle and slow readers.

Every client here is bounded in count and time, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ech.aio import Limits, TLSStream, open_connection
from ech.aio.limits import address_key
from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.errors import DecodeError, MessageTooLong, PeerAlert, TLSError
from ech.http import encode_request
from ech.serve.metrics import Metrics
from ech.server.connection import ServerConnection
from ech.tls.enums import AlertDescription
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    fetch,
    run_service,
)

PLAIN_DECODE_ERROR = bytes((0x15, 3, 3, 0, 2, 2, AlertDescription.DECODE_ERROR))


def outcomes(metrics: Metrics, outcome: str) -> float:
    return metrics.value("ech_connection_outcomes_total", outcome=outcome)


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> bytes:
    """Everything the server sends until it closes (fails after ``limit`` s)."""
    received = bytearray()
    async with asyncio.timeout(limit):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                received += chunk
    return bytes(received)


def client_hello_bytes(pki: ServerPKI, name: str = PUBLIC_NAME) -> bytes:
    connection = ClientConnection(pki.client_config(), name)
    connection.start()
    return connection.data_to_send()


# the ClientHello length limit (sans-IO, ServerConfig.max_client_hello) ------------


def test_limit_sees_lengths_across_fragments(server_pki: ServerPKI) -> None:
    """A message split over records is refused once its header shows the length."""
    body = bytes(100)
    message = bytes((1,)) + len(body).to_bytes(3, "big") + body
    # One message split over two records.
    records = (
        b"\x16\x03\x01\x00\x30"
        + message[:0x30]
        + b"\x16\x03\x01"
        + (len(message) - 0x30).to_bytes(2, "big")
        + message[0x30:]
    )
    for limit, too_long in ((100, False), (99, True)):
        config = dataclasses.replace(server_pki.server_config(), max_client_hello=limit)
        connection = ServerConnection(config)

        def feed_bytewise(conn: ServerConnection = connection) -> None:
            for i in range(len(records)):
                conn.receive_data(records[i : i + 1])

        with pytest.raises(DecodeError) as raised:
            feed_bytewise()
        assert isinstance(raised.value, MessageTooLong) is too_long
        # The alert went out in the clear, before anything else.
        assert connection.data_to_send() == PLAIN_DECODE_ERROR


# handshake timeout -------------------------------------------------------------------


def test_slowloris_clients_are_cut_off_and_others_served(server_pki: ServerPKI) -> None:
    limits = Limits(handshake_timeout=0.5)
    hello = client_hello_bytes(server_pki)

    async def slowloris(port: int) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()

        async def dribble() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in hello:
                    writer.write(bytes((byte,)))
                    await writer.drain()
                    await asyncio.sleep(0.05)

        dribbler = asyncio.create_task(dribble())
        try:
            received = await read_until_closed(reader, 5.0)
        finally:
            dribbler.cancel()
            writer.close()
        assert received == b""  # no alert on a timeout, just the close
        return time.monotonic() - started

    async def main() -> None:
        async with run_service(server_pki.server_config(), limits=limits) as running:
            attackers = [
                asyncio.create_task(slowloris(running.port)) for _ in range(10)
            ]
            await asyncio.sleep(0.1)
            _, page = await fetch(running.port, server_pki.client_config(), PUBLIC_NAME)
            assert page["server_name"] == PUBLIC_NAME
            # Served while every slow client is still being held open.
            assert not any(attacker.done() for attacker in attackers)
            held = await asyncio.gather(*attackers)
            assert all(seconds > 0.4 for seconds in held), held
            metrics = running.metrics
            assert outcomes(metrics, "handshake_timeout") == 10
            assert outcomes(metrics, "completed") == 1

    asyncio.run(main())


# ClientHello size ----------------------------------------------------------------


def test_oversized_client_hello_header_is_refused_at_once(
    server_pki: ServerPKI,
) -> None:
    limits = Limits(max_client_hello=4096)

    async def main() -> None:
        async with run_service(server_pki.server_config(), limits=limits) as running:
            reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            # A whole record starting a 1 MiB ClientHello; the rest never comes.
            writer.write(b"\x16\x03\x01\x00\x44" + b"\x01\x10\x00\x00" + bytes(64))
            received = await read_until_closed(reader, IO_TIMEOUT)
            writer.close()
            assert received == PLAIN_DECODE_ERROR
            metrics = running.metrics
            assert outcomes(metrics, "client_hello_too_large") == 1
            sent = metrics.value("ech_alerts_sent_total", alert="decode_error")
            assert sent == 1

    asyncio.run(main())


def test_client_hello_limit_with_real_clients(server_pki: ServerPKI) -> None:
    limits = Limits(max_client_hello=4096)
    key = ech_key(7)

    def pad(size: int) -> ClientConfig:
        def hook(hello: ClientHello) -> ClientHello:
            return hello.with_extension(Extension(0x1A1A, bytes(size)))

        return server_pki.client_config(client_hello_hook=hook)

    async def main() -> None:
        config = server_pki.server_config([key])
        async with run_service(config, limits=limits) as running:
            # Under the limit: plain and ECH handshakes work.
            _, page = await fetch(running.port, pad(1000), PUBLIC_NAME)
            assert page["server_name"] == PUBLIC_NAME
            _, page = await fetch(
                running.port,
                server_pki.client_config(),
                HIDDEN_NAME,
                ech_configs=config_list(key),
            )
            assert page["ech_status"] == "accepted"
            with pytest.raises(PeerAlert) as refused:
                async with asyncio.timeout(IO_TIMEOUT):
                    await open_connection(
                        "127.0.0.1", running.port, pad(5000), PUBLIC_NAME
                    )
            assert refused.value.description == AlertDescription.DECODE_ERROR

    asyncio.run(main())


def test_garbage_flood_is_refused_quickly(server_pki: ServerPKI) -> None:
    async def main() -> None:
        async with run_service(server_pki.server_config()) as running:
            reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            # A record longer than TLS allows (record_overflow), then a flood.
            writer.write(b"\x16\x03\x01\xff\xff" + bytes(1 << 20))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            received = await read_until_closed(reader, IO_TIMEOUT)
            writer.close()
            assert received[:1] == b"\x15"  # an alert, then the close
            assert outcomes(running.metrics, "handshake_failed") == 1

    asyncio.run(main())


# connections ------------------------------------------------------------------------


def test_max_connections_closes_extra_ones_at_once(server_pki: ServerPKI) -> None:
    # Every client is 127.0.0.1 here: let one address take every slot.
    limits = Limits(max_connections=3, max_connections_per_address=3)
    client = server_pki.client_config()

    async def connect(port: int) -> TLSStream:
        async with asyncio.timeout(IO_TIMEOUT):
            return await open_connection("127.0.0.1", port, client, PUBLIC_NAME)

    async def main() -> None:
        async with run_service(server_pki.server_config(), limits=limits) as running:
            held = [await connect(running.port) for _ in range(3)]
            started = time.monotonic()
            with pytest.raises((TLSError, OSError)):
                await connect(running.port)
            assert time.monotonic() - started < 2.0
            metrics = running.metrics
            assert outcomes(metrics, "over_capacity") == 1
            await held.pop().close()
            async with asyncio.timeout(IO_TIMEOUT):
                while running.service.open_connections > 2:
                    await asyncio.sleep(0.01)
            held.append(await connect(running.port))  # room again
            for stream in held:
                await stream.close()

    asyncio.run(main())


def test_idle_connection_is_closed(server_pki: ServerPKI) -> None:
    limits = Limits(idle_timeout=0.3)

    async def main() -> None:
        async with run_service(server_pki.server_config(), limits=limits) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), PUBLIC_NAME
                )
                started = time.monotonic()
                assert await stream.recv() == b""
            # Not before the deadline; the outcome below says why it closed.
            assert time.monotonic() - started > 0.25
            await stream.close()
            async with asyncio.timeout(IO_TIMEOUT):
                while running.service.open_connections:
                    await asyncio.sleep(0.01)
            assert outcomes(running.metrics, "idle_timeout") == 1

    asyncio.run(main())


def test_client_that_never_reads_is_dropped(server_pki: ServerPKI) -> None:
    """Pipelined requests, responses never read: writes stall, then time out."""
    limits = Limits(idle_timeout=0.5)
    request = encode_request("GET", "/", host=PUBLIC_NAME, close=False)

    async def main() -> None:
        async with run_service(server_pki.server_config(), limits=limits) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), PUBLIC_NAME
                )
            flood = request * 300  # ~12 KB of requests, ~130 KB of answers each
            with contextlib.suppress(TimeoutError, OSError, TLSError):
                async with asyncio.timeout(8.0):
                    for _ in range(200):
                        await stream.send(flood)
            # Meanwhile others are served.
            _, page = await fetch(running.port, server_pki.client_config(), PUBLIC_NAME)
            assert page["server_name"] == PUBLIC_NAME
            async with asyncio.timeout(IO_TIMEOUT):
                while running.service.open_connections:
                    await asyncio.sleep(0.05)
            stream.writer.transport.abort()
            assert outcomes(running.metrics, "idle_timeout") == 1

    asyncio.run(main())


# the per-address limit's key and default -----------------------------------------


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("::ffff:127.0.0.2", "127.0.0.2"),  # IPv4-mapped: the IPv4 address
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # RFC 6177: a /64 each
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("/run/ech.sock", "/run/ech.sock"),  # not an address: itself
    ],
)
def test_address_key(host: str, key: str) -> None:
    assert address_key(host) == key


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_its_own_key(address: ipaddress.IPv4Address) -> None:
    assert address_key(str(address)) == str(address)


def test_per_address_default_is_half_of_max_connections() -> None:
    assert Limits(max_connections=50).per_address == 25
    assert Limits(max_connections=1).per_address == 1
    assert Limits(max_connections=50, max_connections_per_address=7).per_address == 7
    with pytest.raises(ValueError, match="max_connections_per_address"):
        Limits(max_connections_per_address=0)
