"""httpcore network backends over our TLS, and the httpx transports' work.

httpx 0.28 with httpcore 1.x, and httpx2 with httpcore2, have the same
transport and network-backend interfaces; this module takes the pair as
arguments (:class:`Flavor`) and imports neither, so :mod:`ech.httpx` and
:mod:`ech.httpx2` are thin and each loads only its own pair (one may be
installed without the other).

How it plugs in: httpcore's connection pool does HTTP/1.1 and HTTP/2 and
keeps connections alive; it opens them through a network backend
(``connect_tcp``) and turns TCP into TLS with the stream's ``start_tls``,
then asks ``get_extra_info("ssl_object").selected_alpn_protocol()`` whether
to speak h2. Our backend does discovery before the TCP connection (RFC 9848
§5.3: no ClientHello before the HTTPS record is known, and the record's
endpoint says where to connect), and our ``start_tls`` is the ECH handshake
with :mod:`ech.dial`'s one retry, on a new TCP connection after a
rejection. httpcore has no HTTP/3: with ``http3=True`` requests go to
:func:`ech.quic.client.open_http3`, one connection per origin, kept open.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography import x509

from ech import dial
from ech.aio.client import start_tls as aio_start_tls
from ech.aio.limits import ConnectionTimeoutError
from ech.aio.stream import TLSStream
from ech.blocking import _handshake
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.context import ECHSocket
from ech.errors import TLSError
from ech.stream import EventStream

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver
    from ech.quic.client import HTTP3Connection

T = TypeVar("T")

#: ``verify=`` as httpx takes it: True (system store), False, a CA file
#: path, or an ``ssl.SSLContext`` whose loaded CAs are trusted.
Verify = bool | str | ssl.SSLContext


def client_config(
    verify: Verify,
    cafile: str | Path | None,
    alpn: tuple[str, ...],
    base: ClientConfig | None,
) -> ClientConfig:
    """Our :class:`ClientConfig` from httpx-style ``verify=`` and ``cafile=``.

    From an ``ssl.SSLContext`` we take its CA certificates
    (``get_ca_certs``) and whether it verifies; CAs it would load lazily
    from the system's paths mean the system store, as for ``True``.
    """
    config = base or ClientConfig()
    if cafile is not None:
        config = replace(config, cafile=cafile, trust_store=None)
    elif isinstance(verify, str):
        config = replace(config, cafile=verify, trust_store=None)
    elif isinstance(verify, ssl.SSLContext):
        ders = verify.get_ca_certs(binary_form=True)
        if ders:
            trusted = tuple(x509.load_der_x509_certificate(d) for d in ders)
            config = replace(config, trust_store=trusted)
        if verify.verify_mode == ssl.CERT_NONE:
            config = replace(config, verify_certificates=False)
    elif verify is False:
        config = replace(config, verify_certificates=False)
    return replace(config, alpn_protocols=alpn)


@dataclass
class Flavor:
    """One httpx/httpcore pair: the classes the transports need from it."""

    httpx: ModuleType
    httpcore: ModuleType
    _map: dict[type[Exception], type[Exception]] = field(init=False)

    def __post_init__(self) -> None:
        core, top = self.httpcore, self.httpx
        self._map = {
            getattr(core, name): getattr(top, name)
            for name in (
                "TimeoutException",
                "ConnectTimeout",
                "ReadTimeout",
                "WriteTimeout",
                "PoolTimeout",
                "NetworkError",
                "ConnectError",
                "ReadError",
                "WriteError",
                "ProxyError",
                "UnsupportedProtocol",
                "ProtocolError",
                "LocalProtocolError",
                "RemoteProtocolError",
            )
        }

    @contextlib.contextmanager
    def mapped(self) -> Iterator[None]:
        """Raise httpcore's exceptions as httpx's, as httpx's own transport does.

        The httpx exception's ``__cause__`` is our error when ECH or TLS
        caused it (an :class:`~ech.errors.ECHRejectedError`, say), so
        ``except httpx.ConnectError as e: e.__cause__`` finds it.
        """
        try:
            yield
        except Exception as error:
            target = None
            for source, mapped in self._map.items():
                if isinstance(error, source) and (
                    target is None or issubclass(mapped, target)
                ):
                    target = mapped
            if target is None:
                raise
            ours: BaseException | None = getattr(error, "ech_error", None)
            raise target(str(error)) from (ours or error)


class MappedByteStream:
    """A response body from httpcore whose errors reach the caller as httpx's.

    Mixed into each flavour's ``httpx.SyncByteStream`` subclass (httpx checks
    the base class), so ``ech.httpx`` and ``ech.httpx2`` share the body.
    """

    def __init__(self, stream: Iterable[bytes], flavor: Flavor) -> None:
        self._stream = stream
        self._flavor = flavor

    def __iter__(self) -> Iterator[bytes]:
        with self._flavor.mapped():
            yield from self._stream

    def close(self) -> None:
        """Close httpcore's stream, which returns the connection to the pool."""
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class AsyncMappedByteStream:
    """The asyncio twin of :class:`MappedByteStream`."""

    def __init__(self, stream: AsyncIterator[bytes], flavor: Flavor) -> None:
        self._stream = stream
        self._flavor = flavor

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with self._flavor.mapped():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        """Close httpcore's stream, which returns the connection to the pool."""
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


def failed(kind: type[Exception], error: BaseException) -> Exception:
    """Make httpcore's exception ``kind`` for our ``error``, and carry it along.

    httpcore's pool re-raises with ``from None``, which drops ``__cause__``;
    :meth:`Flavor.mapped` makes it the httpx exception's cause again.
    """
    mapped = kind(str(error) or type(error).__name__)
    mapped.ech_error = error  # type: ignore[attr-defined]  # carried to mapped()
    return mapped


def outcome_extensions(tls: EventStream | HTTP3Connection) -> dict[str, object]:
    """What a response tells of its connection's ECH (``response.extensions``)."""
    handshake = tls.negotiated
    found: dict[str, object] = {
        "ech_status": str(handshake.ech_status),
        "outer_server_name": handshake.outer_server_name,
        "server_name": handshake.server_name,
        "retried": tls.retried,
        "alpn": handshake.alpn_protocol,
        "handshake": handshake,
    }
    if tls.ech_outcome is not None:
        found.update(tls.ech_outcome.fields())
    return found


@dataclass
class Dialer:
    """What every connection of one transport shares: config, DNS, policy."""

    config: ClientConfig
    resolver: DoHResolver | None
    ech_configs: ECHConfigList | None
    require_ech: bool
    ech_retry: bool
    owns_resolver: bool = False
    address: str | None = None
    #: The plan and address of the last connection begun, for error
    #: messages that say where it went and why (``ech get``'s).
    last_attempt: tuple[dial.Plan, tuple[str, int]] | None = field(
        default=None, init=False
    )

    def target(self, plan: dial.Plan, host: str, port: int) -> tuple[str, int]:
        """Where to connect: ``address`` if set, else the record's endpoint.

        After discovery without an address (none in DoH, no hints) nothing
        falls back to the system resolver, which would reveal the name
        outside the encrypted DNS (RFC 9849 §10.2).

        Raises:
            OSError: discovery found no address.
        """
        where = self._target(plan, host, port)
        self.last_attempt = (plan, where)
        return where

    def _target(self, plan: dial.Plan, host: str, port: int) -> tuple[str, int]:
        if self.address is not None:
            return self.address, plan.port or port
        if plan.addresses:
            return plan.addresses[0], plan.port or port
        if plan.port is not None:  # the plan came from discovery
            raise OSError(f"DNS gave no address for {host}")
        return host, port

    def plan(self, host: str, port: int) -> dial.Plan:
        """Steps 1-2 of :mod:`ech.dial` for ``https://host:port`` (blocking)."""
        return dial.plan(
            self.config,
            host,
            port,
            ech_configs=self.ech_configs,
            resolver=self.resolver,
            ech_retry=self.ech_retry,
            require_ech=self.require_ech,
        )

    def close(self) -> None:
        """Close the resolver if the transport made it (``doh=``)."""
        if self.owns_resolver and self.resolver is not None:
            self.resolver.close()


# -- blocking ------------------------------------------------------------------------


class SyncTCP:
    """httpcore's ``NetworkStream`` before TLS: a connected socket and its plan."""

    def __init__(
        self,
        backend: SyncBackend,
        sock: socket.socket,
        plan: dial.Plan,
        target: tuple[str, int],
        options: Iterable[tuple[int, ...]],
    ) -> None:
        self._backend = backend
        self._sock = sock
        self._plan = plan
        self._target = target
        self._options = tuple(options)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> SyncTLS:
        """The ECH handshake and its one retry, instead of ``ssl``'s.

        ``ssl_context`` is httpcore's and unused: our configuration is the
        transport's (ALPN, trust, ECH).
        """
        core = self._backend.flavor.httpcore
        name = server_hostname or self._target[0]
        sockets = iter([self._sock])

        def once(config: ClientConfig, configs: ECHConfigList | None) -> ECHSocket:
            sock = next(sockets, None) or self._backend.open(
                self._target, timeout, self._options
            )
            sock.settimeout(timeout)
            return _handshake(sock, config, name, None, configs, stream_class=ECHSocket)

        try:
            tls = dial.connect_with_retry(self._plan, once)
        except TimeoutError as error:
            raise failed(core.ConnectTimeout, error) from error
        except (TLSError, OSError) as error:
            raise failed(core.ConnectError, error) from error
        return SyncTLS(self._backend, tls)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Not used before TLS (https only)."""
        raise self._backend.flavor.httpcore.UnsupportedProtocol("https only")

    write = read

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def get_extra_info(self, info: str) -> object:
        """Nothing before TLS."""
        return None


class SyncTLS:
    """httpcore's ``NetworkStream`` over our TLS; ``ssl_object`` is the socket."""

    def __init__(self, backend: SyncBackend, tls: ECHSocket) -> None:
        self._core = backend.flavor.httpcore
        self.tls = tls

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` at EOF."""
        try:
            self.tls.settimeout(timeout)
            return self.tls.recv(max_bytes)
        except TimeoutError as error:
            raise failed(self._core.ReadTimeout, error) from error
        except (TLSError, OSError) as error:
            raise failed(self._core.ReadError, error) from error

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send application data."""
        if not buffer:
            return
        try:
            self.tls.settimeout(timeout)
            self.tls.sendall(buffer)
        except TimeoutError as error:
            raise failed(self._core.WriteTimeout, error) from error
        except (TLSError, OSError) as error:
            raise failed(self._core.WriteError, error) from error

    def close(self) -> None:
        """close_notify, then close the socket."""
        self.tls.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> SyncTLS:
        """TLS in TLS (proxies) is not supported."""
        raise self._core.UnsupportedProtocol("TLS over TLS is not supported")

    def get_extra_info(self, info: str) -> object:
        """``ssl_object`` (the :class:`ECHSocket`), ``is_readable`` and more."""
        sock = self.tls.socket
        if info == "ssl_object":
            return self.tls
        if info == "socket":
            return sock
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "is_readable":  # an idle connection the server closed
            if self.tls.pending():
                return True
            try:
                readable, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                return True
            return bool(readable)
        return None


class SyncBackend:
    """httpcore's ``NetworkBackend``: discovery, then TCP to the endpoint."""

    def __init__(self, flavor: Flavor, dialer: Dialer) -> None:
        self.flavor = flavor
        self.dialer = dialer

    def open(
        self,
        target: tuple[str, int],
        timeout: float | None,
        options: Iterable[tuple[int, ...]] = (),
        local_address: str | None = None,
    ) -> socket.socket:
        """A TCP connection to ``target``."""
        source = (local_address, 0) if local_address else None
        sock = socket.create_connection(target, timeout, source_address=source)
        for option in options:
            sock.setsockopt(*option)
        return sock

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
    ) -> SyncTCP:
        """Look up the HTTPS record (if asked), then connect where it says."""
        core = self.flavor.httpcore
        try:
            plan = self.dialer.plan(host, port)
            target = self.dialer.target(plan, host, port)
        except (TLSError, OSError, ValueError) as error:  # ValueError: an IP with DoH
            raise failed(core.ConnectError, error) from error
        options = tuple(socket_options or ())
        try:
            sock = self.open(target, timeout, options, local_address)
        except TimeoutError as error:
            raise failed(core.ConnectTimeout, error) from error
        except OSError as error:
            raise failed(core.ConnectError, error) from error
        return SyncTCP(self, sock, plan, target, options)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
    ) -> SyncTCP:
        """Not supported: ECH is for names on the network."""
        raise self.flavor.httpcore.UnsupportedProtocol("no Unix sockets with ECH")

    def sleep(self, seconds: float) -> None:
        """Wait, for httpcore's retry back-off."""
        time.sleep(seconds)


# -- asyncio -------------------------------------------------------------------------


class AsyncTCP:
    """httpcore's ``AsyncNetworkStream`` before TLS."""

    def __init__(
        self,
        backend: AsyncBackend,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        plan: dial.Plan,
        target: tuple[str, int],
    ) -> None:
        self._backend = backend
        self._streams = streams
        self._plan = plan
        self._target = target

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncTLS:
        """The ECH handshake and its one retry (see :meth:`SyncTCP.start_tls`)."""
        core = self._backend.flavor.httpcore
        name = server_hostname or self._target[0]
        first: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = [self._streams]

        async def once(
            config: ClientConfig, configs: ECHConfigList | None
        ) -> TLSStream:
            reader, writer = (
                first.pop() if first else await self._backend.open(self._target)
            )
            return await aio_start_tls(
                reader, writer, config, name, ech_configs=configs
            )

        try:
            async with asyncio.timeout(timeout):
                tls = await dial.connect_with_retry_async(self._plan, once)
        except TimeoutError as error:
            raise failed(core.ConnectTimeout, error) from error
        except (TLSError, OSError) as error:
            raise failed(core.ConnectError, error) from error
        return AsyncTLS(self._backend, tls)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Not used before TLS (https only)."""
        raise self._backend.flavor.httpcore.UnsupportedProtocol("https only")

    write = read

    async def aclose(self) -> None:
        """Close the TCP connection."""
        self._streams[1].close()

    def get_extra_info(self, info: str) -> object:
        """Nothing before TLS."""
        return None


class AsyncTLS:
    """httpcore's ``AsyncNetworkStream`` over :class:`~ech.aio.TLSStream`."""

    def __init__(self, backend: AsyncBackend, tls: TLSStream) -> None:
        self._core = backend.flavor.httpcore
        self.tls = tls

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` at EOF."""
        self.tls.io_timeout = timeout
        try:
            return await self.tls.recv(max_bytes)
        except ConnectionTimeoutError as error:
            raise failed(self._core.ReadTimeout, error) from error
        except (TLSError, OSError) as error:
            raise failed(self._core.ReadError, error) from error

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send application data."""
        if not buffer:
            return
        self.tls.io_timeout = timeout
        try:
            await self.tls.send(buffer)
        except ConnectionTimeoutError as error:
            raise failed(self._core.WriteTimeout, error) from error
        except (TLSError, OSError) as error:
            raise failed(self._core.WriteError, error) from error

    async def aclose(self) -> None:
        """close_notify, then close the transport."""
        self.tls.io_timeout = 1.0
        with contextlib.suppress(TLSError, OSError):
            await self.tls.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncTLS:
        """TLS in TLS (proxies) is not supported."""
        raise self._core.UnsupportedProtocol("TLS over TLS is not supported")

    def get_extra_info(self, info: str) -> object:
        """``ssl_object`` (the :class:`~ech.aio.TLSStream`), ``is_readable``..."""
        writer = self.tls.writer
        if info == "ssl_object":
            return self.tls
        if info == "socket":
            return writer.get_extra_info("socket")
        if info == "client_addr":
            return writer.get_extra_info("sockname")
        if info == "server_addr":
            return writer.get_extra_info("peername")
        if info == "is_readable":  # an idle connection the server closed
            return self.tls.reader.at_eof() or writer.is_closing()
        return None


class AsyncBackend:
    """httpcore's ``AsyncNetworkBackend`` on asyncio (not trio)."""

    def __init__(self, flavor: Flavor, dialer: Dialer) -> None:
        self.flavor = flavor
        self.dialer = dialer

    async def open(
        self, target: tuple[str, int], local_address: str | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``target``."""
        source = (local_address, 0) if local_address else None
        return await asyncio.open_connection(*target, local_addr=source)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
    ) -> AsyncTCP:
        """Look up the HTTPS record (in a thread, if asked), then connect."""
        core = self.flavor.httpcore
        try:
            plan = await asyncio.to_thread(self.dialer.plan, host, port)
            target = self.dialer.target(plan, host, port)
        except (TLSError, OSError, ValueError) as error:  # ValueError: an IP with DoH
            raise failed(core.ConnectError, error) from error
        try:
            async with asyncio.timeout(timeout):
                streams = await self.open(target, local_address)
        except TimeoutError as error:
            raise failed(core.ConnectTimeout, error) from error
        except OSError as error:
            raise failed(core.ConnectError, error) from error
        sock = streams[1].get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncTCP(self, streams, plan, target)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
    ) -> AsyncTCP:
        """Not supported: ECH is for names on the network."""
        raise self.flavor.httpcore.UnsupportedProtocol("no Unix sockets with ECH")

    async def sleep(self, seconds: float) -> None:
        """Wait, for httpcore's retry back-off."""
        await asyncio.sleep(seconds)


# -- HTTP/3 ----------------------------------------------------------------------------


class H3Pool:
    """One :class:`HTTP3Connection` per origin, opened on first use.

    httpcore has no HTTP/3, so ``http3=True`` requests come here; QUIC
    multiplexes, so one connection per origin serves every request.
    """

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self._connections: dict[tuple[str, int], HTTP3Connection] = {}
        self._lock: asyncio.Lock | None = None

    async def connection(
        self, host: str, port: int, timeout: float | None
    ) -> HTTP3Connection:
        """The origin's open connection, or a new one (discovery, ECH, retry)."""
        from ech.quic.client import open_http3  # aioquic, only when asked

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            found = self._connections.get((host, port))
            if found is not None and not found.is_closed:
                return found
            h3 = replace(
                self.dialer, config=replace(self.dialer.config, alpn_protocols=("h3",))
            )
            plan = await asyncio.to_thread(h3.plan, host, port)
            address, target_port = self.dialer.target(plan, host, port)
            opened = await open_http3(
                address, target_port, plan.config, host, plan=plan, timeout=timeout
            )
            self._connections[(host, port)] = opened
            return opened

    async def close(self) -> None:
        """Close every connection."""
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            with contextlib.suppress(Exception):
                await connection.close()


class LoopThread:
    """An asyncio loop in a thread, for the blocking transport's HTTP/3."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[object, object, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="ech-httpx-h3", daemon=True
                )
                self._thread.start()
            loop = self._loop
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coroutine, loop
        )
        return future.result()

    def stop(self) -> None:
        """Stop the loop and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


# -- the transports, whichever httpx ---------------------------------------------------

#: httpcore needs an ``ssl.SSLContext`` to call ``start_tls`` at all; ours
#: ignores it (it only sets ALPN on it), so one cheap context serves all.
_UNUSED_SSL = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def make_dialer(
    *,
    verify: Verify,
    cafile: str | Path | None,
    http1: bool,
    http2: bool,
    doh: str | None,
    resolver: DoHResolver | None,
    ech_configs: ECHConfigList | None,
    require_ech: bool,
    ech_retry: bool,
    config: ClientConfig | None,
    address: str | None = None,
) -> Dialer:
    """The shared part of both transports' constructors."""
    if not (http1 or http2):
        raise ValueError("offer http1, http2 or both")
    alpn = (("h2",) if http2 else ()) + (("http/1.1",) if http1 else ())
    owns = False
    if doh is not None:
        if resolver is not None:
            raise ValueError("give doh= or resolver=, not both")
        from ech.dns.resolver import DoHResolver  # dnspython, only when asked

        ca = (
            cafile
            if cafile is not None
            else verify
            if isinstance(verify, str)
            else None
        )
        resolver, owns = DoHResolver(doh, cafile=str(ca) if ca else None), True
    return Dialer(
        client_config(verify, cafile, alpn, config),
        resolver,
        ech_configs,
        require_ech,
        ech_retry,
        owns,
        address,
    )


def _core_request(flavor: Flavor, request: Any) -> Any:
    url = request.url
    return flavor.httpcore.Request(
        method=request.method,
        url=flavor.httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _extensions(response: Any) -> dict[str, object]:
    extensions = dict(response.extensions)
    stream = extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    if isinstance(tls, EventStream):
        extensions.update(outcome_extensions(tls))
    return extensions


def _h3_target(request: Any) -> tuple[str, int, str, tuple[tuple[str, str], ...]]:
    url = request.url
    headers = tuple(
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in request.headers.raw
        if name.lower() not in (b"host", b"connection", b"transfer-encoding")
    )
    return url.host, url.port or 443, url.raw_path.decode("ascii"), headers


def _timeouts(request: Any) -> tuple[float | None, float | None]:
    timeouts = request.extensions.get("timeout", {})
    return timeouts.get("connect"), timeouts.get("read")


async def h3_exchange(
    flavor: Flavor,
    pool: H3Pool,
    request: Any,
    body: bytes,
) -> tuple[int, tuple[tuple[str, str], ...], bytes, dict[str, object]]:
    """One request over the origin's HTTP/3 connection; the whole response."""
    host, port, target, headers = _h3_target(request)
    connect, read = _timeouts(request)
    core = flavor.httpcore
    try:
        h3 = await pool.connection(host, port, connect)
    except TimeoutError as error:
        raise core.ConnectTimeout("QUIC handshake timed out") from error
    except (TLSError, OSError, ValueError) as error:
        raise failed(core.ConnectError, error) from error
    try:
        async with asyncio.timeout(read):
            response = await h3.request(
                request.method, target, headers=headers, body=body
            )
    except TimeoutError as error:
        raise core.ReadTimeout("HTTP/3 response timed out") from error
    except (TLSError, OSError) as error:
        raise failed(core.ReadError, error) from error
    extensions: dict[str, object] = {"http_version": b"HTTP/3"}
    extensions.update(outcome_extensions(h3))
    return response.status, response.headers, response.body, extensions


class TransportCore:
    """What both transports of a flavor share: their arguments and their pool.

    Args:
        verify: httpx's ``verify=``: True (the system store), False, a CA
            file, or an ``ssl.SSLContext`` whose loaded CAs are trusted.
        cafile: A PEM CA file to trust, for the servers and the DoH server.
        http1, http2: Offer ALPN ``http/1.1`` and ``h2`` (RFC 7301).
        http3: Send https requests over HTTP/3 (QUIC) instead.
        doh: A DoH resolver URL (RFC 8484) for HTTPS records.
        resolver: A :class:`~ech.dns.DoHResolver` to use instead (not
            closed by the transport).
        ech_configs: ECH configs to use for every origin, without DNS.
        require_ech: Strict mode: real ECH or an error, nothing sent.
        ech_retry: Retry once after a rejection (RFC 9849 §6.1.6).
        limits: The flavor's ``httpx.Limits`` (httpx's defaults if None).
        retries, local_address, socket_options: httpx's.
        config: A :class:`~ech.ClientConfig` to start from (ALPN and trust
            are set from the arguments above).
        address: Connect every origin here, whatever DNS says (as curl's
            ``--connect-to``; ``ech get --address``); names and ECH stay.
    """

    flavor: Flavor

    @property
    def last_attempt(self) -> tuple[dial.Plan, tuple[str, int]] | None:
        """The plan (configs, GREASE, why) and address of the last connection."""
        return self._dialer.last_attempt

    def __init__(
        self,
        *,
        verify: Verify = True,
        cafile: str | Path | None = None,
        http1: bool = True,
        http2: bool = False,
        http3: bool = False,
        doh: str | None = None,
        resolver: DoHResolver | None = None,
        ech_configs: ECHConfigList | None = None,
        require_ech: bool = False,
        ech_retry: bool = True,
        limits: Any = None,
        retries: int = 0,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
        config: ClientConfig | None = None,
        address: str | None = None,
    ) -> None:
        self._dialer = make_dialer(
            verify=verify,
            cafile=cafile,
            http1=http1,
            http2=http2,
            doh=doh,
            resolver=resolver,
            ech_configs=ech_configs,
            require_ech=require_ech,
            ech_retry=ech_retry,
            config=config,
            address=address,
        )
        if limits is None:  # httpx's own defaults
            limits = self.flavor.httpx.Limits(
                max_connections=100, max_keepalive_connections=20
            )
        self._http3 = http3
        self._h3 = H3Pool(self._dialer)
        self._pool = self._make_pool(
            ssl_context=_UNUSED_SSL,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            socket_options=socket_options,
        )

    def _make_pool(self, **options: Any) -> Any:
        """Make httpcore's pool with our network backend (sync or asyncio)."""
        raise NotImplementedError


class SyncCore(TransportCore):
    """The blocking transport's work; :mod:`ech.httpx` adds httpx's face."""

    def _make_pool(self, **options: Any) -> Any:
        self._loop = LoopThread()  # for HTTP/3, started on first use
        backend = SyncBackend(self.flavor, self._dialer)
        return self.flavor.httpcore.ConnectionPool(network_backend=backend, **options)

    def _handle(self, request: Any, stream_class: Any) -> Any:
        top = self.flavor.httpx
        if self._http3 and request.url.scheme == "https":
            body = request.read()
            with self.flavor.mapped():
                status, headers, content, extensions = self._loop.run(
                    h3_exchange(self.flavor, self._h3, request, body)
                )
            return top.Response(
                status, headers=headers, content=content, extensions=extensions
            )
        with self.flavor.mapped():
            response = self._pool.handle_request(_core_request(self.flavor, request))
        return top.Response(
            status_code=response.status,
            headers=response.headers,
            stream=stream_class(response.stream, self.flavor),
            extensions=_extensions(response),
        )

    def _close(self) -> None:
        with self.flavor.mapped():
            self._pool.close()
        if self._http3:
            with contextlib.suppress(RuntimeError):
                self._loop.run(self._h3.close())
        self._loop.stop()
        self._dialer.close()


class AsyncCore(TransportCore):
    """The asyncio transport's work; :mod:`ech.httpx` adds httpx's face."""

    def _make_pool(self, **options: Any) -> Any:
        backend = AsyncBackend(self.flavor, self._dialer)
        return self.flavor.httpcore.AsyncConnectionPool(
            network_backend=backend, **options
        )

    async def _handle(self, request: Any, stream_class: Any) -> Any:
        top = self.flavor.httpx
        if self._http3 and request.url.scheme == "https":
            body = await request.aread()
            with self.flavor.mapped():
                status, headers, content, extensions = await h3_exchange(
                    self.flavor, self._h3, request, body
                )
            return top.Response(
                status, headers=headers, content=content, extensions=extensions
            )
        with self.flavor.mapped():
            response = await self._pool.handle_async_request(
                _core_request(self.flavor, request)
            )
        return top.Response(
            status_code=response.status,
            headers=response.headers,
            stream=stream_class(response.stream, self.flavor),
            extensions=_extensions(response),
        )

    async def _close(self) -> None:
        with self.flavor.mapped():
            await self._pool.aclose()
        await self._h3.close()
        await asyncio.to_thread(self._dialer.close)
