"""``ech demo``: a loopback TLS 1.3 session between our client and our server.

Everything is made on the spot (a CA, a certificate) and nothing leaves
127.0.0.1. It shows a full handshake, a HelloRetryRequest, a resumption
with a session ticket, and a KeyUpdate, and prints what was negotiated.
The ECH demo replaces this once ECH lands (issue 3).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ech.blocking import TLSSocket, connect, wrap_server
from ech.client.config import ClientConfig
from ech.errors import TLSError
from ech.events import HandshakeComplete
from ech.pki import TestCA
from ech.server.config import ServerConfig
from ech.tls.enums import NamedGroup
from ech.tls.session import SessionTicket

NAME = "demo.example"


@contextmanager
def _echo_server(config: ServerConfig) -> Iterator[int]:
    """Serve TLS echo on 127.0.0.1 in a thread; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(10)
            try:
                with wrap_server(sock, config) as tls:
                    while data := tls.recv():
                        tls.sendall(data)
            except (TLSError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _describe(label: str, hs: HandshakeComplete) -> str:
    flags = [f for f, on in (("HRR", hs.hello_retry), ("resumed", hs.resumed)) if on]
    return (
        f"  {label:<28} {hs.version}  {hs.cipher_suite!s:<28} "
        f"{hs.group!s:<15} alpn={hs.alpn_protocol or '-':<9} {' '.join(flags)}"
    )


def _echo(tls: TLSSocket, payload: bytes) -> bool:
    tls.sendall(payload)
    return tls.recv_exactly(len(payload)) == payload


def run() -> int:
    """Run the demo; returns the process exit status."""
    ca = TestCA.create()
    server_config = ServerConfig(
        certificates=(ca.issue(NAME),),
        alpn_protocols=("h2", "http/1.1"),
        groups=(NamedGroup.X25519MLKEM768, NamedGroup.X25519, NamedGroup.SECP256R1),
    )
    client = ClientConfig(trust_store=(ca.certificate,), alpn_protocols=("http/1.1",))
    print(f"ech demo: TLS 1.3 on 127.0.0.1, server certificate for {NAME!r}\n")
    ok = True
    with _echo_server(server_config) as port:
        ticket: SessionTicket | None = None
        with connect("127.0.0.1", port, client, NAME) as tls:
            print(_describe("full handshake (X25519)", tls.negotiated))
            ok &= _echo(tls, b"x" * 100_000)
            tls.update_keys()
            ok &= _echo(tls, b"after KeyUpdate")
            print("  KeyUpdate both ways, 100 kB echoed intact:", "yes" if ok else "NO")
            ticket = tls.session_tickets[0] if tls.session_tickets else None

        pq = ClientConfig(
            trust_store=(ca.certificate,),
            key_share_groups=(NamedGroup.X25519MLKEM768,),
        )
        with connect("127.0.0.1", port, pq, NAME) as tls:
            print(_describe("post-quantum hybrid share", tls.negotiated))

        p384 = ClientConfig(
            trust_store=(ca.certificate,),
            groups=(NamedGroup.SECP384R1, NamedGroup.SECP256R1),
            key_share_groups=(NamedGroup.SECP384R1,),
        )
        with connect("127.0.0.1", port, p384, NAME) as tls:
            print(_describe("share the server won't take", tls.negotiated))
            ok &= tls.negotiated.hello_retry

        if ticket is None:
            print("  no session ticket arrived")
            return 1
        with connect("127.0.0.1", port, client, NAME, session=ticket) as tls:
            print(_describe("resumed with a ticket", tls.negotiated))
            ok &= tls.negotiated.resumed
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1
