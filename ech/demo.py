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

It is the first thing a newcomer runs (``make demo``), so it speaks plain
words, not Python: ECH in one sentence first, each connection as what the
network sees beside what stays hidden and one line saying which, GREASE
explained, and at the end the README's quickstart (as ``ech certs``
prints it) to try next.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ech.aio import start_server
from ech.blocking import TLSSocket, connect
from ech.cli.certs import ech_program, next_commands, wrap
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.errors import ECHRejectedError
from ech.http import fetch
from ech.keys import ECHKey, generate_ech_key
from ech.pki import DEFAULT_NAMES, DEFAULT_PUBLIC_NAME, TestCA, certificate_files
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

PUBLIC_NAME = DEFAULT_PUBLIC_NAME
HIDDEN_NAME = DEFAULT_NAMES[0]  # the names ech certs and the quickstart use


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
    print("\n5. The same over HTTP/3, on UDP at the same port")
    print(
        "  QUIC encrypts its first packets with keys anyone can compute, so an"
        " observer\n  reads the ClientHello there too; ECH protects the name just"
        " the same."
    )
    _names(seen, view["server_name"], leaked)
    _row("ECH (client / server)", f"{status} / {view['ech_status']}")
    _row("HTTP version", view["http_version"])
    _checked(leaked, len(sent), "the client sent over UDP")
    _outcome(status, leaked)
    return (
        status == "accepted"
        and view["server_name"] == HIDDEN_NAME
        and view["http_version"] == "h3"
        and seen == PUBLIC_NAME
        and not leaked
    )


def _row(label: str, value: str) -> None:
    print(f"  {label:<26}{value}")


def _names(seen: str, used: str, leaked: bool) -> None:
    """What the network sees next to what stays hidden from it."""
    print(f"  {'':<26}{'the network sees':<22}hidden from the network")
    _row("server name (SNI)", f"{seen:<22}{'nothing' if leaked else used}")


def _checked(leaked: bool, size: int, what: str = "the client sent") -> None:
    where = "is in clear in" if leaked else "appears nowhere in"
    print(f"  checked: {HIDDEN_NAME} {where} the {size} bytes {what}")


def _outcome(client_status: str, leaked: bool) -> None:
    """The one plain line that says what happened to the name."""
    if client_status == "accepted" and not leaked:
        print(
            f"  ECH accepted: the network saw {PUBLIC_NAME};"
            f" {HIDDEN_NAME} stayed encrypted"
        )
    elif client_status == "grease":
        print(f"  WARNING: {HIDDEN_NAME} was sent in clear (GREASE, no usable config)")
    else:
        print(f"  WARNING: ECH {client_status}; {HIDDEN_NAME} may have been seen")


def _show(
    title: str, wire: bytes, seen_by_server: dict[str, str], client_status: str
) -> bool:
    leaked = HIDDEN_NAME.encode() in wire
    print(f"\n{title}")
    _names(outer_name(wire), seen_by_server["server_name"], leaked)
    server_status = seen_by_server["ech_status"]
    suite, group = seen_by_server["cipher_suite"], seen_by_server["group"]
    _row("ECH (client / server)", f"{client_status} / {server_status}")
    _row("TLS 1.3 with", f"{suite}, {group}")
    _checked(leaked, len(wire))
    _outcome(client_status, leaked)
    return leaked


def _try_next() -> None:
    """The README's quickstart, as ``ech certs`` prints it: what to run next."""
    program = ech_program()
    files = certificate_files(Path("quickstart"))
    print("\nTry it with your own server and clients (the README's quickstart):")
    print(f"{program} certs quickstart")
    for line in next_commands(files, program):
        print(wrap(line))


def run() -> int:
    """Run the demo; returns the process exit status."""
    ca = TestCA.create()
    first_key = generate_ech_key(PUBLIC_NAME)
    published = ECHConfigList((first_key.config,))
    client = ClientConfig(trust_store=(ca.certificate,), alpn_protocols=("http/1.1",))
    wire = Wire()
    ok = True
    print("ech demo: Encrypted Client Hello (ECH, RFC 9849), on 127.0.0.1 only")
    print(
        "\nECH encrypts the name of the site a client asks for, so that the network"
        "\nsees only the public name of the server in front of it."
    )
    print(
        f"Here the server {PUBLIC_NAME} stands in front of {HIDDEN_NAME}, and has"
        "\npublished its ECH key (in DNS, normally) as this ECHConfigList:"
    )
    print(f"  {published.to_base64()[:48]}...")
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
        leaked = _show(
            f"1. The client connects to {HIDDEN_NAME} with the published key",
            wire.collect(),
            view,
            status,
        )
        ok &= status == "accepted" and view["server_name"] == HIDDEN_NAME and not leaked

        # 2. Key rotation: the client's config is stale.
        server.rotate(generate_ech_key(PUBLIC_NAME))
        print(
            "\n2. The server replaces its ECH key; the client still has the old one"
            "\n  (as from a DNS answer cached before the change)"
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
                "  ECH rejected: the server could not decrypt, so it finished the"
                f" handshake as\n  {rejection.public_name} (its certificate checked)"
                " and sent its new key, which the client\n  can trust:"
                f" {retry.to_base64()[:32] if retry else 'none'}..."
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
            "3. The client tries the old key again: rejected, it retries once, by"
            " itself,\n  with the new key"
            + ("" if retried else " (UNEXPECTED: it did not retry)"),
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
            "4. GREASE: a client with no ECH key for a server sends a decoy ECH"
            "\n  extension (random bytes), so that real ECH does not stand out."
            "\n  It hides nothing: the name goes in clear. The server cannot tell a"
            "\n  decoy from a key it does not hold, so it reports a rejection.",
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
    _try_next()
    return 0 if ok else 1
