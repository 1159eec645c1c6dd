"""Servers for ``ech fuzz``'s tests, on 127.0.0.1: ours, and deliberately broken ones.

Ours runs :func:`ech.aio.start_server` on an event loop in a thread. The
broken ones are our sans-IO server with a handshake of the test's making,
through ``ServerConnection.handshake_class``, pumped by a small threaded
loop: each breaks one invariant the fuzzer must find.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import ech
from ech.aio import TLSStream, start_server
from ech.config import ECHConfigList
from ech.errors import Alert, ConnectionClosedError
from ech.extension import ECHClientHelloOuter, parse_client_hello_extension
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.server.handshake import ServerHandshake
from ech.tls.enums import ExtensionType, HandshakeType
from ech.tls.extensions import Extension
from ech.tls.handshake import Epoch
from ech.tls.messages import ClientHello

E = ExtensionType
INNER_NAME = "secret.example"
PUBLIC_NAME = "public.example"


@dataclass(frozen=True)
class Pki:
    """A CA (written to disk for ``--ca``), a leaf for both names, an ECH key."""

    ca: TestCA
    ca_path: str
    leaf: ech.CertifiedKey
    key: ECHKey

    @property
    def config_list(self) -> ECHConfigList:
        return ECHConfigList((self.key.config,))

    def server_config(self) -> ech.ServerConfig:
        return ech.ServerConfig(certificates=(self.leaf,), ech_keys=(self.key,))


def make_pki(directory: str) -> Pki:
    ca = TestCA.create("fuzz test CA")
    path = f"{directory}/ca.pem"
    with open(path, "wb") as file:
        file.write(ca.pem)
    leaf = ca.issue(INNER_NAME, PUBLIC_NAME, key_type="ed25519")
    key = generate_ech_key(PUBLIC_NAME, config_id=11, maximum_name_length=32)
    return Pki(ca, path, leaf, key)


@contextlib.contextmanager
def our_server(config: ech.ServerConfig) -> Iterator[int]:
    """``ech.aio.start_server`` on 127.0.0.1 in a thread; yields its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def handler(stream: TLSStream) -> None:
        return None  # the handshake is what is under test

    async def main() -> asyncio.Server:
        server = await start_server(handler, "127.0.0.1", 0, config)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(main())
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def pumped_server(
    config: ech.ServerConfig, handshake_class: type[ServerHandshake]
) -> Iterator[int]:
    """A threaded loop pumping ``ServerConnection``s with ``handshake_class``."""

    class Connection(ech.ServerConnection):
        pass

    Connection.handshake_class = handshake_class
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_one(sock: socket.socket) -> None:
        conn = Connection(config)
        with sock:
            sock.settimeout(10)
            while not stop.is_set():
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                try:
                    conn.receive_data(data)
                except (Alert, ConnectionClosedError):
                    with contextlib.suppress(OSError):
                        sock.sendall(conn.data_to_send())
                    return
                with contextlib.suppress(OSError):
                    sock.sendall(conn.data_to_send())
                if not data:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(sock,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _offer(body: bytes) -> ClientHello | None:
    with contextlib.suppress(ValueError, IndexError):
        return ClientHello.parse(body)
    return None


class HangsOnUnknownECHType(ServerHandshake):
    """Never answers a ClientHello whose ECHClientHelloType byte is not 0 or 1.

    A bug of the kind a fuzzer finds: an unknown enum value leads into a
    path that waits for more input instead of sending illegal_parameter
    (RFC 9849 §7).
    """

    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        if msg_type == HandshakeType.CLIENT_HELLO and epoch is Epoch.INITIAL:
            with contextlib.suppress(ech.Alert):
                hello = ClientHello.parse(body)
                data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
                if data and data[0] not in (0, 1):
                    return  # no output, no alert: the client waits
        super().handle_message(epoch, msg_type, body)


class IgnoresClientSuite(ServerHandshake):
    """Decrypts ECH with its own config's first suite, whatever the client said.

    It rewrites ECHClientHello.cipher_suite to the config's before anything
    else, so the AAD it checks is its own rewrite: a client's suite changed
    in flight (tampered) still decrypts, and ECH is accepted. RFC 9849 §7.1
    wants the received suite checked against the config (ECH-77).
    """

    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        if msg_type == HandshakeType.CLIENT_HELLO and epoch is Epoch.INITIAL:
            with contextlib.suppress(ech.Alert):
                hello = ClientHello.parse(body)
                data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
                offer = parse_client_hello_extension(data) if data else None
                keys = self.config.ech_keys
                contents = keys[0].config.contents if keys else None
                if offer is not None and contents is not None:
                    ours = contents.cipher_suites[0]
                    fixed: ECHClientHelloOuter = dataclasses.replace(
                        offer, cipher_suite=ours
                    )
                    body = hello.with_extension(
                        Extension(E.ENCRYPTED_CLIENT_HELLO, fixed.encode())
                    ).encode()
        super().handle_message(epoch, msg_type, body)
