r"""A client context in the shape of :class:`ssl.SSLContext`, with ECH.

Code written for :mod:`ssl` ports with small changes::

    ctx = ECHClientContext(cafile="ca.pem", alpn_protocols=["http/1.1"])
    sock = socket.create_connection(("127.0.0.1", 8443))
    with ctx.wrap_socket(
        sock, server_hostname="secret.example", ech_configs=configs
    ) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: secret.example\r\n\r\n")
        print(tls.version(), tls.cipher(), tls.ech_status, tls.recv(4096))

What differs from :mod:`ssl`, and why:

* ECH configs come from ``ech_configs=`` or from the context's DoH
  ``resolver`` (looked up before any ClientHello, RFC 9848 §5.3); the
  policy is :mod:`ech.dial`'s, strict mode (``require_ech``) included.
* An ECH rejection (RFC 9849 §6.1.6) ends that TCP connection: the retry
  needs a new one, which ``wrap_socket`` cannot make from the socket it
  was given. Without ``socket_factory`` it raises
  :class:`~ech.errors.ECHRejectedError`, whose ``retry_configs`` (already
  authenticated for public_name) the caller passes as ``ech_configs`` on a
  new socket; with ``socket_factory`` (a callable returning a new socket
  connected to the same server) it makes that one retry itself. It never
  falls back to a cleartext ClientHello (§8.1.1).
* The handshake always runs in ``wrap_socket`` (``do_handshake_on_connect``
  is always true), and only the client side exists.
"""

from __future__ import annotations

import dataclasses
import io
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ech import dial
from ech.blocking import TLSSocket, _handshake
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from ech.dns.resolver import DoHResolver

__all__ = ["ECHClientContext", "ECHSocket"]


class ECHSocket(TLSSocket):
    """A TLS client connection shaped like :class:`ssl.SSLSocket`.

    Besides :class:`~ech.blocking.TLSSocket`'s ``sendall``, ``recv`` and
    ``close``: ``send``, ``recv_into``, ``makefile``, ``pending``,
    ``settimeout``/``gettimeout``, ``fileno``, ``getpeername``/
    ``getsockname``; ``version()``, ``cipher()``,
    ``selected_alpn_protocol()`` and ``getpeercert()`` as :mod:`ssl` has
    them; and ECH's outcome: ``ech_status``, ``outer_server_name``,
    ``retried``, ``retry_configs``, ``ech_outcome`` (why).
    """

    @property
    def server_hostname(self) -> str | None:
        """The name asked for (the inner SNI) and checked in the certificate."""
        return self.negotiated.server_name

    def send(self, data: ReadableBuffer) -> int:
        """Send all of ``data``; return its length (TLS records are atomic)."""
        payload = bytes(data)
        self.sendall(payload)
        return len(payload)

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0) -> int:
        """Read into ``buffer``; the count, 0 once the peer closed."""
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def pending(self) -> int:
        """Decrypted bytes waiting to be read."""
        return len(self._incoming)

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]:
        """A file object over the connection, as ``socket.makefile`` makes.

        Closing it does not close the connection (as with :mod:`socket`,
        the connection stays open until ``close()``).
        """
        reading, writing = "r" in mode, "w" in mode
        raw = _RawTLS(self, reading, writing)
        size = io.DEFAULT_BUFFER_SIZE if buffering in (None, -1) else buffering
        if size == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return cast(IO[Any], raw)
        binary: io.BufferedIOBase
        if reading and writing:
            binary = io.BufferedRWPair(raw, raw, size)
        elif reading:
            binary = io.BufferedReader(raw, size)
        else:
            binary = io.BufferedWriter(raw, size)
        if "b" in mode:
            return cast(IO[Any], binary)
        return io.TextIOWrapper(binary, encoding, errors, newline)  # type: ignore[type-var]  # typeshed wants a one-way buffer

    def settimeout(self, timeout: float | None) -> None:
        """Seconds a send or receive may block (None: no limit)."""
        self.socket.settimeout(timeout)

    def gettimeout(self) -> float | None:
        """The socket's timeout."""
        return self.socket.gettimeout()

    def fileno(self) -> int:
        """The socket's file descriptor (for selectors)."""
        return self.socket.fileno()

    def getpeername(self) -> tuple[str, int]:
        """The server's address."""
        peer: tuple[str, int] = self.socket.getpeername()
        return peer

    def getsockname(self) -> tuple[str, int]:
        """Our address."""
        own: tuple[str, int] = self.socket.getsockname()
        return own

    def __enter__(self) -> ECHSocket:
        return self


class _RawTLS(io.RawIOBase):
    """The raw file object under :meth:`ECHSocket.makefile`."""

    def __init__(self, tls: ECHSocket, reading: bool, writing: bool) -> None:
        super().__init__()
        self._tls = tls
        self._reading = reading
        self._writing = writing

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return self._writing

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._tls.recv_into(buffer)

    def write(self, buffer: ReadableBuffer) -> int:
        return self._tls.send(buffer)


class ECHClientContext:
    """Client settings shaped like :class:`ssl.SSLContext`, with ECH.

    Args:
        cafile: PEM CA file to trust; None means the system store.
        alpn_protocols: ALPN names to offer (``set_alpn_protocols``).
        verify: Check the server's chain and name (only turn it off in
            tests of the codec).
        resolver: A DoH resolver: find ECH configs in the server name's
            HTTPS record when ``wrap_socket`` is given none.
        require_ech: Strict mode: connect only with real ECH (no GREASE,
            no cleartext name); else :class:`~ech.errors.ECHUnavailableError`.
        ech_retry: Retry once after a rejection (needs ``socket_factory``).
        config: A whole :class:`~ech.ClientConfig` instead of the above.
    """

    def __init__(
        self,
        cafile: str | Path | None = None,
        *,
        alpn_protocols: Iterable[str] = (),
        verify: bool = True,
        resolver: DoHResolver | None = None,
        require_ech: bool = False,
        ech_retry: bool = True,
        config: ClientConfig | None = None,
    ) -> None:
        self.config = config or ClientConfig(
            cafile=cafile,
            alpn_protocols=tuple(alpn_protocols),
            verify_certificates=verify,
        )
        self.resolver = resolver
        self.require_ech = require_ech
        self.ech_retry = ech_retry

    def set_alpn_protocols(self, protocols: Iterable[str]) -> None:
        """The ALPN names to offer, in preference order (RFC 7301)."""
        self.config = dataclasses.replace(self.config, alpn_protocols=tuple(protocols))

    def load_verify_locations(self, cafile: str | Path) -> None:
        """Trust the CAs in ``cafile`` (PEM) instead of the system store."""
        self.config = dataclasses.replace(self.config, cafile=cafile, trust_store=None)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_hostname: str,
        *,
        ech_configs: ECHConfigList | None = None,
        socket_factory: Callable[[], socket.socket] | None = None,
        session: SessionTicket | None = None,
    ) -> ECHSocket:
        """Run a TLS 1.3 handshake on the connected ``sock``, with ECH.

        ``server_hostname`` is the real (inner) name. On an ECH rejection
        with usable retry_configs, ``socket_factory()`` gives the new TCP
        connection for the one retry (RFC 9849 §6.1.6); without it the
        rejection is raised for the caller to retry. ``sock`` is closed on
        any failure, as the TLS alert (if any) has been sent.

        Raises:
            ECHRejectedError: rejected, and not retried here.
            ECHUnavailableError: ECH was promised or required and cannot be
                offered; nothing was sent.
            DNSLookupError: the context's resolver failed.
            Alert, PeerAlert: the handshake failed.
        """
        port = sock.getpeername()[1]
        try:
            plan = dial.plan(
                self.config,
                server_hostname,
                port,
                ech_configs=ech_configs,
                resolver=self.resolver,
                ech_retry=self.ech_retry and socket_factory is not None,
                require_ech=self.require_ech,
            )
        except BaseException:
            sock.close()
            raise
        sockets: Iterator[socket.socket] = iter([sock])

        def once(config: ClientConfig, configs: ECHConfigList | None) -> ECHSocket:
            fresh = next(sockets, None)
            if fresh is None:
                if socket_factory is None:  # ech_retry is off then
                    raise RuntimeError("internal error: a retry without a factory")
                fresh = socket_factory()
            return _handshake(
                fresh, config, server_hostname, session, configs, stream_class=ECHSocket
            )

        return dial.connect_with_retry(plan, once)
