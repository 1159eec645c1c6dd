"""``ech demo``: Encrypted Client Hello on loopback, explained.

Everything is made on the spot (a CA, certificates, ECH keys) and nothing
leaves 127.0.0.1. The client connects to a client-facing server with ECH,
and the demo shows what the network saw next to what the server used,
checking that the real name never crossed the wire in the clear. Then the
server rotates its key: the client's stale config is rejected, it retries
with the authenticated retry_configs, and is accepted. Then a GREASE
connection, which looks like ECH on the wire but hides nothing. Last, ECH
over HTTP/3: the same server on UDP, the ClientHello read back out of the
client's QUIC Initial packets as any observer can (RFC 9001 §5.2).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ech.aio import start_server
from ech.blocking import TLSSocket, connect
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.errors import ECHRejectedError
from ech.http import fetch
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.quic import observe
from ech.quic.client import open_http3
from ech.quic.server import HTTP3Server
from ech.serve.status_page import serve_status, status_page
from ech.server.config import ServerConfig
from ech.tls import extensions as ext
from ech.tls.enums import ContentType, ExtensionType, HandshakeType
from ech.tls.messages import ClientHello
from ech.tls.wire import Reader

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"


class RecordingSocket(socket.socket):
    """A TCP socket that keeps a copy of every byte it sends."""

    sent: bytearray

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        """Send, and remember what went out."""
        self.sent += bytes(data)
        super().sendall(data, flags)


@dataclass
class Wire:
    """Every byte the client put on the network, per connection."""

    connections: list[bytes] = field(default_factory=list)
    _sockets: list[RecordingSocket] = field(default_factory=list)

    def open(self, address: tuple[str, int], timeout: float | None) -> socket.socket:
        """A socket factory for :func:`ech.blocking.connect`."""
        sock = RecordingSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.sent = bytearray()
        sock.settimeout(timeout)
        sock.connect(address)
        self._sockets.append(sock)
        return sock

    def collect(self) -> bytes:
        """All bytes sent since the last call."""
        data = b"".join(bytes(s.sent) for s in self._sockets)
        self._sockets.clear()
        return data


def first_client_hello(stream: bytes) -> ClientHello:
    """Parse the ClientHello at the start of a client's byte stream."""
    r = Reader(stream)
    content_type = r.u8()
    r.u16()
    record = Reader(r.opaque(2))
    if (
        content_type != ContentType.HANDSHAKE
        or record.u8() != HandshakeType.CLIENT_HELLO
    ):
        raise ValueError("stream does not start with a ClientHello")
    return ClientHello.parse(record.opaque(3))


def outer_name(stream: bytes) -> str:
    """The server_name a network observer reads in the first ClientHello."""
    sni = first_client_hello(stream).extension(ExtensionType.SERVER_NAME)
    return ext.decode_server_name(sni) if sni is not None else "(none)"


class DemoServer:
    """``ech serve`` in a thread, with a key that can be rotated live."""

    def __init__(self, ca: TestCA, key: ECHKey) -> None:
        self._certificates = (ca.issue(PUBLIC_NAME), ca.issue(HIDDEN_NAME))
        self.config = self._make_config(key)
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),))

    def _make_config(self, key: ECHKey) -> ServerConfig:
        return ServerConfig(
            certificates=self._certificates,
            alpn_protocols=("http/1.1",),
            ech_keys=(key,),
        )

    def rotate(self, key: ECHKey) -> None:
        """Serve with ``key`` only, from the next connection on."""
        self.config = self._make_config(key)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await start_server(serve_status, "127.0.0.1", 0, lambda: self.config)
        self.port = server.sockets[0].getsockname()[1]
        # HTTP/3 on the same port over UDP, with the same config (keys).
        quic = HTTP3Server(lambda: self.config, status_page)
        await quic.start("127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop.wait()
        await quic.shutdown(0)

    @contextmanager
    def running(self) -> Iterator[DemoServer]:
        """Run the server for the ``with`` block."""
        self._thread.start()
        self._ready.wait(10)
        try:
            yield self
        finally:
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


def _get(tls: TLSSocket) -> dict[str, str]:
    """The server's status page: what it saw of this connection."""
    view: dict[str, str] = json.loads(fetch(tls, "/", host=HIDDEN_NAME).body)
    return view


async def _http3(ca: TestCA, port: int, configs: ECHConfigList) -> bool:
    """Step 5: ECH over HTTP/3, through a tap that keeps the datagrams."""
    tap = observe.UdpRelay(("127.0.0.1", port))
    await tap.start()
    client = ClientConfig(trust_store=(ca.certificate,), alpn_protocols=("h3",))
    try:
        async with await open_http3(
            "127.0.0.1", tap.port, client, HIDDEN_NAME, ech_configs=configs
        ) as h3:
            status = str(h3.negotiated.ech_status)
            view = json.loads((await h3.request()).body)
    finally:
        tap.close()
    hello = observe.first_client_hello(tap.datagrams)
    sni = hello.extension(ExtensionType.SERVER_NAME)
    seen = ext.decode_server_name(sni) if sni is not None else "(none)"
    sent = b"".join(data for who, data in tap.datagrams if who == "client")
    leaked = HIDDEN_NAME.encode() in observe.client_initial_crypto(tap.datagrams) + sent
    print("\n5. ECH over HTTP/3 (QUIC on the same port)")
    print(f"  {'the network saw (outer SNI)':<34} {seen}")
    print(f"  {'the server used (inner SNI)':<34} {view['server_name']}")
    print(f"  {'ECH, client / server':<34} {status} / {view['ech_status']}")
    print(f"  {'HTTP version':<34} {view['http_version']}")
    print(
        f"  {HIDDEN_NAME!r} in the client's datagrams:  "
        f"{'YES (in clear)' if leaked else 'no'} ({len(sent)} bytes checked,"
        " Initial packets decrypted)"
    )
    return (
        status == "accepted"
        and view["server_name"] == HIDDEN_NAME
        and view["http_version"] == "h3"
        and seen == PUBLIC_NAME
        and not leaked
    )


def _show(
    title: str, wire: bytes, seen_by_server: dict[str, str], client_status: str
) -> bool:
    leaked = HIDDEN_NAME.encode() in wire
    print(f"\n{title}")
    print(f"  {'the network saw (outer SNI)':<34} {outer_name(wire)}")
    print(f"  {'the server used (inner SNI)':<34} {seen_by_server['server_name']}")
    server_status = seen_by_server["ech_status"]
    suite, group = seen_by_server["cipher_suite"], seen_by_server["group"]
    print(f"  {'ECH, client / server':<34} {client_status} / {server_status}")
    print(f"  {'negotiated':<34} {suite}, {group}")
    print(
        f"  {HIDDEN_NAME!r} in the client's bytes:  "
        f"{'YES (in clear)' if leaked else 'no'} ({len(wire)} bytes checked)"
    )
    return leaked


def run() -> int:
    """Run the demo; returns the process exit status."""
    ca = TestCA.create()
    first_key = generate_ech_key(PUBLIC_NAME)
    published = ECHConfigList((first_key.config,))
    client = ClientConfig(trust_store=(ca.certificate,), alpn_protocols=("http/1.1",))
    wire = Wire()
    ok = True
    print("ech demo: Encrypted Client Hello on 127.0.0.1")
    print(f"  client-facing server {PUBLIC_NAME!r}, hidden name {HIDDEN_NAME!r}")
    print(f"  published ECHConfigList: {published.to_base64()[:48]}...")
    with DemoServer(ca, first_key).running() as server:
        port = server.port

        # 1. ECH accepted: the name travels encrypted.
        with connect(
            "127.0.0.1",
            port,
            client,
            HIDDEN_NAME,
            ech_configs=published,
            socket_factory=wire.open,
        ) as tls:
            status = str(tls.negotiated.ech_status)
            view = _get(tls)
        leaked = _show("1. ECH with the published config", wire.collect(), view, status)
        ok &= status == "accepted" and view["server_name"] == HIDDEN_NAME and not leaked

        # 2. Key rotation: the client's config is stale.
        server.rotate(generate_ech_key(PUBLIC_NAME))
        print(
            "\n2. the server rotates its ECH key; the client still holds the old config"
        )
        try:
            connect(
                "127.0.0.1",
                port,
                client,
                HIDDEN_NAME,
                ech_configs=published,
                ech_retry=False,
                socket_factory=wire.open,
            ).close()
            print("  unexpected: the stale config was accepted")
            ok = False
        except ECHRejectedError as rejection:
            retry = rejection.retry_configs
            print(
                f"  rejected: the server authenticated as {rejection.public_name!r},"
                f" retry_configs {retry.to_base64()[:32] if retry else None}..."
            )
            ok &= HIDDEN_NAME.encode() not in wire.collect()
        with connect(
            "127.0.0.1",
            port,
            client,
            HIDDEN_NAME,
            ech_configs=published,
            socket_factory=wire.open,
        ) as tls:
            status = str(tls.negotiated.ech_status)
            retried = tls.retried
            view = _get(tls)
        leaked = _show(
            f"3. reconnect: retried with retry_configs = {retried}",
            wire.collect(),
            view,
            status,
        )
        ok &= retried and status == "accepted" and not leaked

        # 4. GREASE: looks like ECH, hides nothing.
        grease = ClientConfig(
            trust_store=(ca.certificate,), alpn_protocols=("http/1.1",), ech_grease=True
        )
        with connect(
            "127.0.0.1", port, grease, HIDDEN_NAME, socket_factory=wire.open
        ) as tls:
            status = str(tls.negotiated.ech_status)
            view = _get(tls)
        data = wire.collect()
        _show(
            "4. GREASE ECH (no config): an ECH extension, but the name is in clear",
            data,
            view,
            status,
        )
        has_ech = first_client_hello(data).has_extension(
            ExtensionType.ENCRYPTED_CLIENT_HELLO
        )
        ok &= status == "grease" and has_ech

        # 5. HTTP/3: the same server over QUIC, the current config.
        current = ECHConfigList((server.config.ech_keys[0].config,))
        ok &= asyncio.run(_http3(ca, port, current))
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1
