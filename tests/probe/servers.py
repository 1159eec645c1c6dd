"""In-process servers for the probe tests: our ServerConnection on 127.0.0.1.

:class:`ThreadedTLSServer` accepts TCP connections in a thread and runs one
:class:`~ech.server.connection.ServerConnection` subclass per connection,
one after another (the probe is sequential), so a test can hand the probe a
server broken in exactly one way through ``handshake_class`` or the
config's hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import ech
from ech.config import ECHConfigList
from ech.errors import Alert, ConnectionClosedError
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.server.handshake import ServerHandshake
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import NamedGroup

INNER_NAME = "secret.probe.test"
PUBLIC_NAME = "public.probe.test"


@dataclass(frozen=True)
class ProbePKI:
    """A CA (as a file for the probe) and leaves for the names."""

    ca: TestCA
    ca_file: Path
    both: CertifiedKey
    inner_only: CertifiedKey
    public_only: CertifiedKey


def make_pki(directory: Path) -> ProbePKI:
    """A CA with Ed25519 leaves (fast), its certificate written to ``directory``."""
    ca = TestCA.create("probe test CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.pem)
    return ProbePKI(
        ca,
        ca_file,
        ca.issue(INNER_NAME, PUBLIC_NAME, key_type="ed25519"),
        ca.issue(INNER_NAME, key_type="ed25519"),
        ca.issue(PUBLIC_NAME, key_type="ed25519"),
    )


def make_key(**kwargs: Any) -> ECHKey:
    """An X25519 ECH key for :data:`PUBLIC_NAME`."""
    return generate_ech_key(PUBLIC_NAME, **kwargs)


def server_config(pki: ProbePKI, *keys: ECHKey, **overrides: Any) -> ech.ServerConfig:
    """Our server for both names with ``keys``; no tickets (nothing to resume)."""
    base = ech.ServerConfig(
        certificates=(pki.both,),
        ech_keys=tuple(keys),
        session_tickets=False,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
    )
    return dataclasses.replace(base, **overrides)


def config_list(*keys: ECHKey) -> ECHConfigList:
    """The list publishing ``keys``."""
    return ECHConfigList(tuple(k.config for k in keys))


@dataclass
class ThreadedTLSServer:
    """Serve ``config`` on 127.0.0.1 in a thread, one connection at a time."""

    config: ech.ServerConfig | Callable[[], ech.ServerConfig]
    handshake_class: type[ServerHandshake] = ServerHandshake
    port: int = 0
    _listener: socket.socket = field(init=False)
    _thread: threading.Thread = field(init=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)

    def __enter__(self) -> Self:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with sock:
                self._handle(sock)

    def _connection(self) -> ech.ServerConnection:
        config = self.config() if callable(self.config) else self.config

        class Connection(ech.ServerConnection):
            handshake_class = self.handshake_class

        return Connection(config)

    def _handle(self, sock: socket.socket) -> None:
        conn = self._connection()
        sock.settimeout(5)
        while True:
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
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                return
            if not data:
                return
