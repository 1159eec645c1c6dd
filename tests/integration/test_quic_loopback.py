"""ECH over real QUIC on loopback: our engine inside aioquic, both ends.

HTTP/3 here is aioquic's own (``aioquic.h3``), driven by a few lines of
test code, so these tests exercise exactly the TLS seam of
:mod:`ech.quic`.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aioquic.asyncio.client import connect as aioquic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.asyncio.server import serve as aioquic_serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

import ech
from ech.errors import ECHRejectedError
from ech.events import ECHStatus
from ech.quic.client import connect
from ech.quic.connection import ECHQuicConnection
from ech.quic.server import serve
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType
from tests.integration.quic_capture import (
    UdpRelay,
    client_initial_crypto,
    first_client_hello,
)
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    PUBLIC_NAME,
    client_config,
    config_list,
    ech_key,
    pki,
    server_config,
)

TIMEOUT = 10.0
ALPN = tuple(H3_ALPN)


class StatusServer(QuicConnectionProtocol):
    """Answers every HTTP/3 request with what the handshake was, as JSON."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if self._h3 is None:
            self._h3 = H3Connection(self._quic)
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                self._answer(h3_event.stream_id)

    def _answer(self, stream_id: int) -> None:
        assert self._h3 is not None
        connection = self._quic
        assert isinstance(connection, ECHQuicConnection)
        done = connection.handshake_complete_event
        assert done is not None
        body = json.dumps(
            {
                "ech_status": str(done.ech_status),
                "server_name": done.server_name,
                "outer_server_name": done.outer_server_name,
                "alpn": done.alpn_protocol,
            }
        ).encode()
        self._h3.send_headers(
            stream_id,
            [(b":status", b"200"), (b"content-type", b"application/json")],
        )
        self._h3.send_data(stream_id, body, end_stream=True)
        self.transmit()


class StatusClient(QuicConnectionProtocol):
    """GET / over HTTP/3; the response body."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._h3 = H3Connection(self._quic)
        self._waiters: dict[int, asyncio.Future[bytes]] = {}
        self._bodies: dict[int, bytearray] = {}

    async def get(self, authority: str) -> dict[str, str]:
        stream_id = self._quic.get_next_available_stream_id()
        self._h3.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", b"/"),
            ],
            end_stream=True,
        )
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[stream_id] = waiter
        self.transmit()
        body = await asyncio.wait_for(waiter, TIMEOUT)
        result: dict[str, str] = json.loads(body)
        return result

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self._h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, DataReceived):
            self._bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.stream_ended:
                body = bytes(self._bodies.pop(event.stream_id))
                self._waiters.pop(event.stream_id).set_result(body)


def _run(coroutine: object) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 4 * TIMEOUT))  # type: ignore[arg-type]


@pytest.fixture
def key() -> ech.keys.ECHKey:
    return ech_key()


def test_ech_accepted_over_http3(key: ech.keys.ECHKey) -> None:
    async def main() -> None:
        server = await serve(
            "127.0.0.1",
            0,
            server_config(key, alpn_protocols=ALPN),
            create_protocol=StatusServer,
        )
        port = _port(server)
        try:
            async with connect(
                "127.0.0.1",
                port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=config_list(key),
                create_protocol=StatusClient,
            ) as client:
                page = await client.get(INNER_NAME)
                connection = client._quic
                assert isinstance(connection, ECHQuicConnection)
                done = connection.handshake_complete_event
                assert done is not None
                assert done.ech_status is ECHStatus.ACCEPTED
        finally:
            server.close()
        assert page == {
            "ech_status": "accepted",
            "server_name": INNER_NAME,
            "outer_server_name": PUBLIC_NAME,
            "alpn": "h3",
        }

    _run(main())


def test_ech_rejected_over_quic_raises_with_retry_configs(
    key: ech.keys.ECHKey,
) -> None:
    stale = ech_key(99)

    async def main() -> None:
        server = await serve(
            "127.0.0.1",
            0,
            server_config(key, alpn_protocols=ALPN),
            create_protocol=StatusServer,
        )
        port = _port(server)
        try:
            with pytest.raises(ECHRejectedError) as info:
                async with connect(
                    "127.0.0.1",
                    port,
                    client_config(alpn_protocols=ALPN),
                    INNER_NAME,
                    ech_configs=config_list(stale),
                    create_protocol=StatusClient,
                ):
                    raise AssertionError("the handshake must not complete")
            assert info.value.retry_configs == config_list(key)
            async with connect(
                "127.0.0.1",
                port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=info.value.retry_configs,
                create_protocol=StatusClient,
            ) as client:
                page = await client.get(INNER_NAME)
        finally:
            server.close()
        assert page["ech_status"] == "accepted"

    _run(main())


# what the network sees ------------------------------------------------------------


def test_observer_sees_the_public_name_only(key: ech.keys.ECHKey) -> None:
    """Our client's Initials, decrypted as anyone can (RFC 9001 §5.2): the
    ClientHello names public_name; the inner name is in no datagram."""

    async def main() -> None:
        server = await serve(
            "127.0.0.1",
            0,
            server_config(key, alpn_protocols=ALPN),
            create_protocol=StatusServer,
        )
        relay = UdpRelay(("127.0.0.1", _port(server)))
        await relay.start()
        try:
            async with connect(
                "127.0.0.1",
                relay.port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=config_list(key),
                create_protocol=StatusClient,
            ) as client:
                page = await client.get(INNER_NAME)
        finally:
            relay.close()
            server.close()
        assert page["ech_status"] == "accepted"
        hello = first_client_hello(relay.datagrams)
        sni = hello.extension(ExtensionType.SERVER_NAME)
        assert sni is not None
        assert ext.decode_server_name(sni) == PUBLIC_NAME
        assert hello.has_extension(ExtensionType.ENCRYPTED_CLIENT_HELLO)
        assert INNER_NAME.encode() not in client_initial_crypto(relay.datagrams)
        for _, datagram in relay.datagrams:
            assert INNER_NAME.encode() not in datagram

    _run(main())


# aioquic's own TLS, no ECH, both ways ---------------------------------------------


class PlainStatusServer(QuicConnectionProtocol):
    """An aioquic HTTP/3 server (aioquic's TLS): answers with the ALPN."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._h3 = H3Connection(self._quic)

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                body = json.dumps({"server": "aioquic"}).encode()
                self._h3.send_headers(h3_event.stream_id, [(b":status", b"200")])
                self._h3.send_data(h3_event.stream_id, body, end_stream=True)
                self.transmit()


@pytest.mark.parametrize("grease", [False, True], ids=["plain", "grease"])
def test_our_client_against_aioquic_server(grease: bool) -> None:
    leaf = pki().both

    async def main() -> None:
        configuration = QuicConfiguration(is_client=False, alpn_protocols=list(ALPN))
        configuration.certificate = leaf.chain[0]
        configuration.private_key = leaf.private_key
        server = await aioquic_serve(
            "127.0.0.1",
            0,
            configuration=configuration,
            create_protocol=PlainStatusServer,
        )
        try:
            async with connect(
                "127.0.0.1",
                _port(server),
                client_config(alpn_protocols=ALPN, ech_grease=grease),
                INNER_NAME,
                create_protocol=StatusClient,
            ) as client:
                page = await client.get(INNER_NAME)
                connection = client._quic
                assert isinstance(connection, ECHQuicConnection)
                done = connection.handshake_complete_event
                assert done is not None
                assert done.ech_status is (
                    ECHStatus.GREASE if grease else ECHStatus.NOT_OFFERED
                )
                assert done.alpn_protocol == "h3"
        finally:
            server.close()
        assert page == {"server": "aioquic"}

    _run(main())


def test_aioquic_client_against_our_server(key: ech.keys.ECHKey) -> None:
    async def main() -> None:
        server = await serve(
            "127.0.0.1",
            0,
            server_config(key, alpn_protocols=ALPN),
            create_protocol=StatusServer,
        )
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=list(ALPN), server_name=INNER_NAME
        )
        configuration.load_verify_locations(cadata=pki().ca.pem)
        try:
            async with aioquic_connect(
                "127.0.0.1",
                _port(server),
                configuration=configuration,
                create_protocol=StatusClient,
            ) as client:
                assert isinstance(client, StatusClient)
                page = await client.get(INNER_NAME)
        finally:
            server.close()
        assert page == {
            "ech_status": "not_offered",
            "server_name": INNER_NAME,
            "outer_server_name": INNER_NAME,
            "alpn": "h3",
        }

    _run(main())


def _port(server: QuicServer) -> int:
    transport = server._transport
    assert transport is not None
    port: int = transport.get_extra_info("sockname")[1]
    return port
