"""ECH over real QUIC on loopback: our engine inside aioquic, both ends.

The public API end to end: :class:`ech.quic.server.HTTP3Server` answering
with an :mod:`ech.http` handler, :func:`ech.quic.client.open_http3` asking;
and each against aioquic's own TLS (no ECH) both ways.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from aioquic.asyncio.client import connect as aioquic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve as aioquic_serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

import ech
from ech.aio.limits import Limits
from ech.aio.report import ConnectionReport, Observer
from ech.errors import ECHRejectedError
from ech.events import ECHStatus
from ech.http import ConnectionInfo, Request, Response, ServerOptions
from ech.http.http3 import H3ClientProtocol
from ech.quic.client import open_http3
from ech.quic.observe import (
    UdpRelay,
    client_initial_crypto,
    first_client_hello,
)
from ech.quic.server import HTTP3Server
from ech.serve.status_page import status_fields
from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType
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


async def status(request: Request, info: ConnectionInfo) -> Response:
    """What the handshake was, as ``ech serve``'s status page says it."""
    assert info.tls is not None
    fields = {**status_fields(info.tls), "http_version": info.http_version}
    return Response(
        200, (("content-type", "application/json"),), json.dumps(fields).encode()
    )


class Recorder(Observer):
    """Keeps the connection reports."""

    def __init__(self) -> None:
        self.reports: list[ConnectionReport] = []

    def connection_closed(self, report: ConnectionReport) -> None:
        self.reports.append(report)


def _run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(4 * TIMEOUT):
            await main()

    asyncio.run(bounded())


@pytest.fixture
def key() -> ech.keys.ECHKey:
    return ech_key()


def test_ech_accepted_over_http3(key: ech.keys.ECHKey) -> None:
    recorder = Recorder()

    async def main() -> None:
        server = HTTP3Server(server_config(key), status, observer=recorder)
        await server.start("127.0.0.1", 0)
        try:
            async with await open_http3(
                "127.0.0.1",
                server.port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=config_list(key),
            ) as client:
                response = await client.request()
                assert client.negotiated.ech_status is ECHStatus.ACCEPTED
                assert not client.retried
        finally:
            await server.shutdown(0)  # waits for the closed connection's report
        assert response.status == 200
        assert response.http_version == "3"
        page = json.loads(response.body)
        assert page["ech_status"] == "accepted"
        assert page["server_name"] == INNER_NAME
        assert page["outer_server_name"] == PUBLIC_NAME
        assert page["alpn"] == "h3"
        assert page["http_version"] == "HTTP/3"

    _run(main)
    (report,) = recorder.reports
    assert report.outcome == "completed"
    assert report.ech_status is ECHStatus.ACCEPTED
    assert report.server_name == INNER_NAME


def test_ech_rejected_over_quic_then_one_retry(key: ech.keys.ECHKey) -> None:
    """RFC 9849 §6.1.6 over QUIC: ech_required, then a new connection."""
    stale = ech_key(99)
    recorder = Recorder()

    async def main() -> None:
        server = HTTP3Server(server_config(key), status, observer=recorder)
        await server.start("127.0.0.1", 0)
        try:
            with pytest.raises(ECHRejectedError) as info:
                await open_http3(
                    "127.0.0.1",
                    server.port,
                    client_config(alpn_protocols=ALPN),
                    INNER_NAME,
                    ech_configs=config_list(stale),
                    ech_retry=False,
                )
            assert info.value.retry_configs == config_list(key)
            async with await open_http3(
                "127.0.0.1",
                server.port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=config_list(stale),
            ) as client:
                assert client.retried
                assert client.retry_configs == config_list(key)
                response = await client.request()
            for _ in range(100):  # the reports come as the connections end
                if len(recorder.reports) == 3:
                    break
                await asyncio.sleep(0.02)
        finally:
            await server.shutdown(0)
        assert json.loads(response.body)["ech_status"] == "accepted"

    _run(main)
    rejected = [r for r in recorder.reports if r.ech_status is ECHStatus.REJECTED]
    assert len(rejected) == 2
    assert {r.alert_received for r in rejected} == {ech.AlertDescription.ECH_REQUIRED}


def test_request_head_deadline_over_http3(key: ech.keys.ECHKey) -> None:
    """A client that completes the handshake but asks nothing is closed."""
    recorder = Recorder()

    async def main() -> None:
        server = HTTP3Server(
            server_config(key),
            status,
            observer=recorder,
            options=ServerOptions(request_head_timeout=0.3),
        )
        await server.start("127.0.0.1", 0)
        try:
            client = await open_http3(
                "127.0.0.1",
                server.port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=config_list(key),
            )
            await asyncio.sleep(1.0)
            with pytest.raises(ConnectionError):
                await client.request()
            await client.close()
        finally:
            await server.shutdown(0)

    _run(main)
    (report,) = recorder.reports
    assert report.error is not None
    assert "no complete request head" in report.error


def test_max_connections_refuses_one_more(key: ech.keys.ECHKey) -> None:
    refused: list[str] = []

    class Refusals(Observer):
        def connection_refused(self, peer: str, reason: str) -> None:
            refused.append(reason)

    async def main() -> None:
        server = HTTP3Server(
            server_config(key),
            status,
            observer=Refusals(),
            limits=Limits(max_connections=1),
        )
        await server.start("127.0.0.1", 0)
        config = client_config(alpn_protocols=ALPN)
        try:
            first = await open_http3("127.0.0.1", server.port, config, INNER_NAME)
            with pytest.raises((ConnectionError, TimeoutError)):
                await open_http3(
                    "127.0.0.1", server.port, config, INNER_NAME, timeout=3
                )
            await first.close()
        finally:
            await server.shutdown(0)

    _run(main)
    assert refused == ["over_capacity"]


# what the network sees ------------------------------------------------------------


def test_observer_sees_the_public_name_only(key: ech.keys.ECHKey) -> None:
    """Our client's Initials, decrypted as anyone can (RFC 9001 §5.2): the
    ClientHello names public_name; the inner name is in no datagram."""

    async def main() -> None:
        server = HTTP3Server(server_config(key), status)
        await server.start("127.0.0.1", 0)
        relay = UdpRelay(("127.0.0.1", server.port))
        await relay.start()
        try:
            async with await open_http3(
                "127.0.0.1",
                relay.port,
                client_config(alpn_protocols=ALPN),
                INNER_NAME,
                ech_configs=config_list(key),
            ) as client:
                response = await client.request()
        finally:
            relay.close()
            await server.shutdown(0)
        assert json.loads(response.body)["ech_status"] == "accepted"
        hello = first_client_hello(relay.datagrams)
        sni = hello.extension(ExtensionType.SERVER_NAME)
        assert sni is not None
        assert ext.decode_server_name(sni) == PUBLIC_NAME
        assert hello.has_extension(ExtensionType.ENCRYPTED_CLIENT_HELLO)
        assert INNER_NAME.encode() not in client_initial_crypto(relay.datagrams)
        for _, datagram in relay.datagrams:
            assert INNER_NAME.encode() not in datagram

    _run(main)


# aioquic's own TLS, no ECH, both ways ---------------------------------------------


class PlainStatusServer(QuicConnectionProtocol):
    """An aioquic HTTP/3 server with aioquic's own TLS."""

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
        transport = server._transport
        assert transport is not None
        port = transport.get_extra_info("sockname")[1]
        try:
            async with await open_http3(
                "127.0.0.1",
                port,
                client_config(alpn_protocols=ALPN, ech_grease=grease),
                INNER_NAME,
            ) as client:
                response = await client.request()
                expected = ECHStatus.GREASE if grease else ECHStatus.NOT_OFFERED
                assert client.negotiated.ech_status is expected
                assert client.negotiated.alpn_protocol == "h3"
        finally:
            server.close()
        assert json.loads(response.body) == {"server": "aioquic"}

    _run(main)


def test_aioquic_client_against_our_server(key: ech.keys.ECHKey) -> None:
    async def main() -> None:
        server = HTTP3Server(server_config(key), status)
        await server.start("127.0.0.1", 0)
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=list(ALPN), server_name=INNER_NAME
        )
        configuration.load_verify_locations(cadata=pki().ca.pem)
        try:
            async with aioquic_connect(
                "127.0.0.1",
                server.port,
                configuration=configuration,
                create_protocol=H3ClientProtocol,
            ) as client:
                assert isinstance(client, H3ClientProtocol)
                response = await client.request(Request("GET", "/"), INNER_NAME)
        finally:
            await server.shutdown(0)
        page = json.loads(response.body)
        assert page["ech_status"] == "not_offered"
        assert page["server_name"] == INNER_NAME
        assert page["alpn"] == "h3"

    _run(main)


def test_keys_rotate_between_quic_connections(key: ech.keys.ECHKey) -> None:
    """The config provider is read per connection, as over TCP."""
    new_key = ech_key(42)
    current = {"config": server_config(key)}

    async def main() -> None:
        server = HTTP3Server(lambda: current["config"], status)
        await server.start("127.0.0.1", 0)
        config = client_config(alpn_protocols=ALPN)
        try:
            async with await open_http3(
                "127.0.0.1",
                server.port,
                config,
                INNER_NAME,
                ech_configs=config_list(key),
            ) as before:
                assert before.negotiated.ech_status is ECHStatus.ACCEPTED
            current["config"] = server_config(new_key)  # rotated
            async with await open_http3(
                "127.0.0.1",
                server.port,
                config,
                INNER_NAME,
                ech_configs=config_list(key),
            ) as after:
                assert after.retried
                assert after.retry_configs == config_list(new_key)
                assert after.negotiated.ech_status is ECHStatus.ACCEPTED
        finally:
            await server.shutdown(0)

    _run(main)
