"""Helpers for ``test_dns_end_to_end.py``: ``--json`` output, curl over DoH, a
ClientHello recorder.

* :func:`json_output`: the JSON object an ``ech ... --json`` run printed.
* :func:`curl_doh_get`: curl_cffi with ``CURLOPT_DOH_URL``, no
  ``CURLOPT_RESOLVE``: names, addresses and ECH configs all come from DoH.
* :class:`HelloRecorder`: a loopback TCP forwarder that parses the first
  ClientHello of every connection, to show what went on the wire in clear.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.integration.peers import (
    IO_TIMEOUT,
    CurlOutcome,
    curl_perform,
    require_curl_cffi,
)

ENCRYPTED_CLIENT_HELLO = 0xFE0D
"""The ``encrypted_client_hello`` extension type (RFC 9849 §11.1)."""
SERVER_NAME = 0
"""The ``server_name`` extension type (RFC 6066 §3)."""


def json_output(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object a ``--json`` command printed; fails with its output."""
    try:
        value = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"no JSON on stdout: {result}") from None
    if not isinstance(value, dict):
        raise AssertionError(f"not a JSON object: {result}")
    return value


# -- curl_cffi with DoH ------------------------------------------------------------


def curl_doh_get(url: str, *, doh_url: str, cafile: Path, ech: bytes) -> CurlOutcome:
    """GET ``url`` with curl_cffi resolving everything over ``doh_url``.

    ``CURLOPT_CAINFO`` also applies to curl's DoH transfers, which verify
    their peer by default (``CURLOPT_DOH_SSL_VERIFYPEER``/``VERIFYHOST``
    are set explicitly so a changed default cannot weaken the test).
    ``ech`` is the ``CURLOPT_ECH`` value: ``b"true"`` (ECH if DNS has a
    config) or ``b"hard"`` (ECH required).
    """
    require_curl_cffi()
    from curl_cffi import CurlOpt

    return curl_perform(
        url,
        cafile=cafile,
        options=[
            (CurlOpt.DOH_URL, doh_url.encode()),
            (CurlOpt.DOH_SSL_VERIFYPEER, 1),
            (CurlOpt.DOH_SSL_VERIFYHOST, 2),
            (CurlOpt.ECH, ech),
        ],
    )


# -- what the client sent in clear ---------------------------------------------------


@dataclass(frozen=True)
class RecordedHello:
    """The cleartext (outer) ClientHello of one connection."""

    extensions: tuple[int, ...]
    server_name: str | None

    @property
    def offers_ech(self) -> bool:
        """Whether it carries an ``encrypted_client_hello`` extension."""
        return ENCRYPTED_CLIENT_HELLO in self.extensions


def parse_client_hello(message: bytes) -> RecordedHello:
    """Extension types and SNI of a ClientHello handshake message."""
    if message[0] != 1:
        raise ValueError(f"handshake type {message[0]} is not ClientHello")
    at = 4 + 2 + 32  # header, legacy_version, random
    at += 1 + message[at]  # legacy_session_id
    at += 2 + int.from_bytes(message[at : at + 2])  # cipher_suites
    at += 1 + message[at]  # legacy_compression_methods
    end = at + 2 + int.from_bytes(message[at : at + 2])
    at += 2
    types: list[int] = []
    server_name: str | None = None
    while at < end:
        kind = int.from_bytes(message[at : at + 2])
        size = int.from_bytes(message[at + 2 : at + 4])
        data = message[at + 4 : at + 4 + size]
        types.append(kind)
        if kind == SERVER_NAME:  # list length, name_type host_name(0), length
            length = int.from_bytes(data[3:5])
            server_name = data[5 : 5 + length].decode("ascii")
        at += 4 + size
    return RecordedHello(tuple(types), server_name)


@dataclass
class HelloRecorder:
    """Forward 127.0.0.1:``port`` to 127.0.0.1:``target``; record ClientHellos.

    A context manager; leaving it stops accepting and joins the threads.
    """

    target: int
    hellos: list[RecordedHello] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    port: int = field(init=False, default=0)
    _listener: socket.socket | None = field(init=False, default=None)
    _threads: list[threading.Thread] = field(init=False, default_factory=list)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __enter__(self) -> Self:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept, listener)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=IO_TIMEOUT)
        if self._listener is not None:
            self._listener.close()

    def snapshot(self) -> list[RecordedHello]:
        """The hellos recorded so far; fails if a connection broke the parser."""
        with self._lock:
            if self.errors:
                raise AssertionError(f"recorder failed: {self.errors!r}")
            return list(self.hellos)

    def _spawn(self, target: Any, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._relay, client)

    def _relay(self, client: socket.socket) -> None:
        client.settimeout(IO_TIMEOUT)
        upstream = ("127.0.0.1", self.target)
        with client, socket.create_connection(upstream, IO_TIMEOUT) as server:
            other = {client: server, server: client}
            pending = bytearray()  # client bytes until the ClientHello is whole
            recording = True
            with selectors.DefaultSelector() as selector:
                for sock in other:
                    selector.register(sock, selectors.EVENT_READ)
                while selector.get_map() and not self._stop.is_set():
                    for key, _ in selector.select(0.05):
                        source = client if key.fileobj is client else server
                        try:
                            data = source.recv(65536)
                        except OSError:
                            data = b""
                        if not data:  # pass the end of stream on
                            selector.unregister(source)
                            with contextlib.suppress(OSError):
                                other[source].shutdown(socket.SHUT_WR)
                            continue
                        if source is client and recording:
                            pending += data
                            recording = not self._record(bytes(pending))
                        with contextlib.suppress(OSError):
                            other[source].sendall(data)

    def _record(self, stream: bytes) -> bool:
        """Record the ClientHello once ``stream`` holds all of it."""
        handshake = bytearray()
        at = 0
        while at + 5 <= len(stream):
            size = int.from_bytes(stream[at + 3 : at + 5])
            if at + 5 + size > len(stream):
                break
            if stream[at] == 22:  # handshake records
                handshake += stream[at + 5 : at + 5 + size]
            at += 5 + size
        if len(handshake) < 4 or len(handshake) < 4 + int.from_bytes(handshake[1:4]):
            return False
        try:
            hello = parse_client_hello(bytes(handshake))
        except (ValueError, IndexError, UnicodeDecodeError) as error:
            with self._lock:
                self.errors.append(error)
            return True
        with self._lock:
            self.hellos.append(hello)
        return True
