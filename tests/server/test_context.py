"""``ECHClientContext.wrap_socket``: code written for ``ssl`` ports to ECH.

The returned socket answers what ``ssl.SSLSocket`` answers (``version``,
``cipher``, ``selected_alpn_protocol``, ``getpeercert``, ``makefile``) plus
ECH's outcome; a rejection is raised with the authenticated retry configs
unless a ``socket_factory`` lets ``wrap_socket`` retry itself (RFC 9849
§6.1.6).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import TypeVar

import pytest

from ech.context import ECHClientContext, ECHSocket
from ech.errors import ECHRejectedError
from ech.keys import ECHKey
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    run_service,
)

T = TypeVar("T")


def with_server(pki: ServerPKI, keys: list[ECHKey], client: Callable[[int], T]) -> T:
    """Run ``client(port)`` in a thread while a server with ``keys`` runs."""

    async def main() -> T:
        async with run_service(pki.server_config(keys)) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                return await asyncio.to_thread(client, running.port)

    return asyncio.run(main())


def context(pki: ServerPKI) -> ECHClientContext:
    ctx = ECHClientContext(pki.ca_file, alpn_protocols=["h2"])
    ctx.set_alpn_protocols(["http/1.1"])  # as ssl.SSLContext, last call wins
    return ctx


def tcp(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)


def get(tls: ECHSocket) -> dict[str, object]:
    """GET / through ``makefile``, as http.client-style code does."""
    tls.sendall(
        f"GET / HTTP/1.1\r\nHost: {HIDDEN_NAME}\r\nConnection: close\r\n\r\n".encode()
    )
    with tls.makefile("rb") as response:
        status = response.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        while response.readline() not in (b"\r\n", b""):
            pass
        page: dict[str, object] = json.loads(response.read())
    return page


def test_wrap_socket_speaks_like_ssl(server_pki: ServerPKI) -> None:
    key = ech_key(1)

    def client(port: int) -> tuple[ECHSocket, dict[str, object]]:
        sock = tcp(port)
        ctx = context(server_pki)
        with ctx.wrap_socket(sock, HIDDEN_NAME, ech_configs=config_list(key)) as tls:
            assert tls.getpeername() == sock.getpeername()
            assert tls.fileno() == sock.fileno()
            return tls, get(tls)

    tls, page = with_server(server_pki, [key], client)
    assert tls.version() == "TLSv1.3"
    assert tls.cipher() == ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)
    assert tls.selected_alpn_protocol() == "http/1.1"
    assert tls.server_hostname == HIDDEN_NAME
    cert = tls.getpeercert()
    assert isinstance(cert, dict)
    assert ("DNS", HIDDEN_NAME) in cert["subjectAltName"]  # type: ignore[operator]
    assert set(cert) >= {"subject", "issuer", "notBefore", "notAfter"}
    der = tls.getpeercert(binary_form=True)
    assert isinstance(der, bytes)
    assert der == tls.peer_certificates[0]
    assert str(tls.ech_status) == "accepted"
    assert tls.outer_server_name == PUBLIC_NAME
    assert tls.ech_outcome is not None
    assert str(tls.ech_outcome.reason) == "accepted"
    assert (page["ech_status"], page["server_name"]) == ("accepted", HIDDEN_NAME)


def test_rejection_raises_with_retry_configs_without_a_factory(
    server_pki: ServerPKI,
) -> None:
    """The caller retries on a new socket with the authenticated configs."""

    def client(port: int) -> tuple[ECHRejectedError, ECHSocket]:
        ctx = context(server_pki)
        stale = config_list(ech_key(9))
        with pytest.raises(ECHRejectedError) as rejected:
            ctx.wrap_socket(tcp(port), HIDDEN_NAME, ech_configs=stale)
        retry = rejected.value.retry_configs
        assert retry is not None
        with ctx.wrap_socket(tcp(port), HIDDEN_NAME, ech_configs=retry) as tls:
            get(tls)
            return rejected.value, tls

    rejection, tls = with_server(server_pki, [ech_key(2)], client)
    assert rejection.public_name == PUBLIC_NAME
    assert "sent 1 retry config (1 usable)" in str(rejection)
    assert (str(tls.ech_status), tls.retried) == ("accepted", False)


def test_socket_factory_lets_wrap_socket_retry(server_pki: ServerPKI) -> None:
    def client(port: int) -> ECHSocket:
        ctx = context(server_pki)
        stale = config_list(ech_key(9))
        tls = ctx.wrap_socket(
            tcp(port),
            HIDDEN_NAME,
            ech_configs=stale,
            socket_factory=lambda: tcp(port),
        )
        with tls:
            page = get(tls)
        assert page["ech_status"] == "accepted"
        return tls

    tls = with_server(server_pki, [ech_key(3)], client)
    assert (str(tls.ech_status), tls.retried) == ("accepted", True)
    assert tls.ech_outcome is not None
    assert str(tls.ech_outcome.reason) == "accepted_after_retry"


def test_makefile_text_mode_and_recv_into(server_pki: ServerPKI) -> None:
    key = ech_key(4)

    def run(port: int) -> tuple[bytes, str]:
        ctx = context(server_pki)
        with ctx.wrap_socket(
            tcp(port), HIDDEN_NAME, ech_configs=config_list(key)
        ) as tls:
            tls.settimeout(IO_TIMEOUT)
            assert tls.gettimeout() == IO_TIMEOUT
            with tls.makefile("w", encoding="ascii", newline="") as out:
                out.write(f"GET / HTTP/1.1\r\nHost: {HIDDEN_NAME}\r\n\r\n")
            buffer = bytearray(4)
            count = tls.recv_into(buffer)
            assert tls.pending() > 0  # the rest of that record is decrypted
            with tls.makefile("r", encoding="ascii", newline="") as response:
                rest = response.readline()
            return bytes(buffer[:count]), rest

    start, rest = with_server(server_pki, [key], run)
    assert start == b"HTTP"
    assert rest.startswith("/1.1 200 ")
