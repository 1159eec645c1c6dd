"""``ECHQuicConnection``'s handshake classes: the QUIC twin of ``handshake_class``.

A probe or a test runs a handshake of its own making over QUIC (RFC 9001)
exactly as over TCP; here both ends record the messages they received.
"""

from __future__ import annotations

from aioquic._buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted
from aioquic.quic.packet import pull_quic_header

from ech.client.handshake import ClientHandshake
from ech.events import ECHStatus
from ech.quic import ECHQuicConnection
from ech.server.handshake import ServerHandshake
from ech.tls.enums import HandshakeType
from ech.tls.handshake import Epoch
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    client_config,
    config_list,
    ech_key,
    server_config,
)

SEEN: list[tuple[str, int]] = []


class RecordingClient(ClientHandshake):
    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        SEEN.append(("client", msg_type))
        super().handle_message(epoch, msg_type, body)


class RecordingServer(ServerHandshake):
    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        SEEN.append(("server", msg_type))
        super().handle_message(epoch, msg_type, body)


class Client(ECHQuicConnection):
    client_handshake_class = RecordingClient


class Server(ECHQuicConnection):
    server_handshake_class = RecordingServer


def test_both_ends_run_the_handshake_class_they_name() -> None:
    SEEN.clear()
    key = ech_key()
    client = Client(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"]),
        tls=client_config(alpn_protocols=("h3",)),
        server_name=INNER_NAME,
        ech_configs=config_list(key),
    )
    now = 1.0
    client.connect(("127.0.0.1", 4433), now=now)
    server: Server | None = None
    completed = False
    for _ in range(10):
        for data, _ in client.datagrams_to_send(now=now):
            if server is None:
                header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                server = Server(
                    configuration=QuicConfiguration(
                        is_client=False, alpn_protocols=["h3"]
                    ),
                    tls=server_config(key, alpn_protocols=("h3",)),
                    original_destination_connection_id=header.destination_cid,
                )
            server.receive_datagram(data, ("127.0.0.1", 5555), now=now)
        assert server is not None
        for data, _ in server.datagrams_to_send(now=now):
            client.receive_datagram(data, ("127.0.0.1", 4433), now=now)
        while (event := client.next_event()) is not None:
            completed |= isinstance(event, HandshakeCompleted)
        if completed:
            break
        now += 0.01
    assert completed
    assert isinstance(client.handshake, RecordingClient)
    assert client.handshake.ech_status is ECHStatus.ACCEPTED
    assert ("server", HandshakeType.CLIENT_HELLO) in SEEN
    assert ("client", HandshakeType.SERVER_HELLO) in SEEN
