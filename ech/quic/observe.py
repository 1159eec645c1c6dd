"""What a network observer sees of a QUIC handshake, for demos and checks.

:class:`UdpRelay` forwards one client's datagrams to a server and keeps a
copy of each; :func:`first_client_hello` reads the ClientHello back out of
the client's Initial packets. Those are protected with keys anyone can
derive from the client's first Destination Connection ID (RFC 9001 §5.2):
aioquic's ``CryptoPair`` derives them, so an observer on the path reads
the ClientHello (with ECH, the outer one) in them. The frames are walked
with aioquic's ``Buffer`` (RFC 9000 §19); aioquic still does all packet
protection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aioquic._buffer import Buffer
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from ech.tls.enums import HandshakeType
from ech.tls.messages import ClientHello
from ech.tls.records import HandshakeReassembler

__all__ = ["UdpRelay", "client_initial_crypto", "first_client_hello"]

#: RFC 9000 §19 frame types found in a client's Initial packets.
_PADDING, _PING, _ACK, _ACK_ECN, _CRYPTO, _CLOSE = 0x00, 0x01, 0x02, 0x03, 0x06, 0x1C


@dataclass
class UdpRelay:
    """Forwards datagrams between one client and a server; records them all."""

    server: tuple[str, int]
    datagrams: list[tuple[str, bytes]] = field(default_factory=list)
    port: int = 0
    _transport: asyncio.DatagramTransport | None = None
    _client: tuple[str, int] | None = None
    _upstream: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Listen on a free loopback UDP port (:attr:`port`) and relay."""
        loop = asyncio.get_running_loop()
        relay = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                relay._client = addr
                relay.datagrams.append(("client", data))
                if relay._upstream is not None:
                    relay._upstream.sendto(data)

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                relay.datagrams.append(("server", data))
                if relay._transport is not None and relay._client is not None:
                    relay._transport.sendto(data, relay._client)

        self._transport, _ = await loop.create_datagram_endpoint(
            Front, local_addr=("127.0.0.1", 0)
        )
        self._upstream, _ = await loop.create_datagram_endpoint(
            Back, remote_addr=self.server
        )
        self.port = self._transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        """Stop relaying."""
        for transport in (self._transport, self._upstream):
            if transport is not None:
                transport.close()


def client_initial_crypto(datagrams: list[tuple[str, bytes]]) -> bytes:
    """The client's Initial CRYPTO stream, decrypted as an observer would."""
    crypto: CryptoPair | None = None
    chunks: dict[int, bytes] = {}
    for sender, datagram in datagrams:
        if sender != "client":
            continue
        buf = Buffer(data=datagram)
        while not buf.eof():
            start = buf.tell()
            if not datagram[start] & 0x80:
                break  # a short header packet (1-RTT) ends the datagram
            header = pull_quic_header(buf, host_cid_length=8)
            end = start + header.packet_length
            if header.packet_type != QuicPacketType.INITIAL:
                buf.seek(end)
                continue
            if crypto is None:  # keys from the first Destination Connection ID
                if header.version is None:
                    raise ValueError("an Initial packet without a version")
                crypto = CryptoPair()
                crypto.setup_initial(
                    header.destination_cid, is_client=False, version=header.version
                )
            _, payload, _ = crypto.decrypt_packet(
                datagram[start:end], buf.tell() - start, 0
            )
            chunks.update(_crypto_frames(payload))
            buf.seek(end)
    stream = b""
    while len(stream) in chunks:
        stream += chunks.pop(len(stream))
    return stream


def _crypto_frames(payload: bytes) -> dict[int, bytes]:
    frames = Buffer(data=payload)
    found: dict[int, bytes] = {}
    while not frames.eof():
        kind = frames.pull_uint_var()
        if kind in (_PADDING, _PING):
            continue
        if kind == _CRYPTO:
            offset = frames.pull_uint_var()
            found[offset] = frames.pull_bytes(frames.pull_uint_var())
        elif kind in (_ACK, _ACK_ECN):
            frames.pull_uint_var()  # largest acknowledged
            frames.pull_uint_var()  # delay
            ranges = frames.pull_uint_var()
            frames.pull_uint_var()  # first range
            for _ in range(2 * ranges):
                frames.pull_uint_var()
            if kind == _ACK_ECN:
                for _ in range(3):
                    frames.pull_uint_var()
        elif kind == _CLOSE:
            frames.pull_uint_var()  # error code
            frames.pull_uint_var()  # frame type
            frames.pull_bytes(frames.pull_uint_var())
        else:
            raise ValueError(f"unexpected frame {kind:#x} in a client Initial")
    return found


def first_client_hello(datagrams: list[tuple[str, bytes]]) -> ClientHello:
    """The (outer) ClientHello the client sent, read from its Initials."""
    reassembler = HandshakeReassembler(1 << 16)
    reassembler.feed(client_initial_crypto(datagrams))
    message = reassembler.pop()
    if message is None or message[0] != HandshakeType.CLIENT_HELLO:
        raise ValueError("no whole ClientHello in the client's Initials")
    return ClientHello.parse(message[1])
