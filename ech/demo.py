"""``ech demo``: Encrypted Client Hello on loopback, explained.

Everything is made on the spot (a CA, certificates, ECH keys) and nothing
leaves 127.0.0.1. The client connects to a client-facing server with ECH,
and the demo shows what the network saw next to what the server used,
checking that the real name never crossed the wire in the clear. Then the
server rotates its key: the client's stale config is rejected, it retries
with the authenticated retry_configs, and is accepted. Last, a GREASE
connection, which looks like ECH on the wire but hides nothing.
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
from ech.serve.status_page import serve_status
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
        self._ready.set()
        async with server:
            await self._stop.wait()

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
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1
