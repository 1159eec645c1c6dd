"""``ech serve`` as a service: limits, logs, metrics, key reloads, shutdown.

:class:`Service` accepts TCP connections and runs one TLS 1.3 server
connection each through :meth:`Service.handle_connection`, the per-connection
hook: take the current :class:`ServerConfig` from the config provider, build
a :class:`ServerConnection`, handshake under a timeout, hand the stream to
the application, log one line.

Limits (defaults in :class:`Limits`; ``ech serve`` flags in brackets):

* handshake timeout [``--handshake-timeout``, 10 s]: the whole handshake,
  from accept to the client's Finished, so a client dribbling bytes
  (slowloris) is cut off; no alert is sent.
* idle timeout [``--idle-timeout``, 60 s]: after the handshake, any read or
  write that waits longer fails with :class:`ConnectionTimeoutError` (a
  :class:`ConnectionClosedError`), and the connection is closed.
* maximum connections [``--max-connections``, 1024]: a connection accepted
  while that many are open is closed at once, without a byte read or sent
  (not queued: queueing would let a flood hold memory). The kernel's listen
  backlog is the only queue. Such closes are counted (``over_capacity``),
  logged at DEBUG, and warned about at most every 10 s.
* maximum ClientHello [``--max-client-hello``, 16384 bytes]: passed to the
  sans-IO connection as ``ServerConfig.max_client_hello``, whose handshake
  reassembler refuses a longer message with ``decode_error`` as soon as its
  4-byte header is in a complete record (records are at most 16 KiB).
* bounded buffers: each read takes at most ``buffer_size`` bytes, and the
  asyncio reader stops reading from the socket once it holds twice that,
  so a connection's memory is bounded whatever the client sends.

``--require-ech [NAME ...]`` sets ``ServerConfig.require_ech``
(:class:`ech.server.config.RequireECH`): the server connection itself
refuses a protected name reached without ECH with ``unrecognized_name``,
before its flight exists; such connections are logged as ``require_ech``.

Logs: logger ``ech.serve``, one ``connection {json}`` line per connection
(outcome, ECH status, outer and inner names, version, suite, group, ALPN,
duration, alert sent or received, error); names and parameters only, never
key material. A completed handshake also logs ``handshake {json}`` with the
status-page fields, as before.

Shutdown (SIGTERM or SIGINT): stop listening, let open connections finish
within ``--shutdown-timeout`` (10 s), then close the rest; a second signal
closes them at once. ``ech serve`` exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from ech.aio import TLSStream
from ech.aio.relay import relay
from ech.errors import (
    Alert,
    ConnectionClosedError,
    MessageTooLong,
    PeerAlert,
    TLSError,
)
from ech.events import ConnectionClosed, ECHStatus, HandshakeComplete
from ech.serve.keyring import Keyring, KeyringError, KeySet
from ech.serve.metrics import Metrics, start_metrics_server
from ech.serve.status_page import serve_status, status_fields
from ech.server.config import RequireECH, ServerConfig
from ech.server.connection import NameRequiresECH, ServerConnection
from ech.server.events import ForwardToBackend
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import AlertDescription

__all__ = [
    "App",
    "ConnectionTimeoutError",
    "Limits",
    "ServeError",
    "ServeOptions",
    "Service",
    "ServiceStream",
    "doh_app",
    "run_serve",
    "serve",
]

log = logging.getLogger("ech.serve")

T = TypeVar("T")

#: An application: gets each stream once its handshake is complete.
App = Callable[[TLSStream], Awaitable[None]]

#: How long closing a connection may take before the transport is aborted.
CLOSE_TIMEOUT: Final = 2.0
#: Seconds between two "at capacity" warnings.
_CAPACITY_WARNING_INTERVAL: Final = 10.0


@dataclass(frozen=True)
class Limits:
    """What one connection may cost (see the module docstring).

    Raises:
        ValueError: a limit is not positive.
    """

    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 1024
    max_client_hello: int = 16384
    buffer_size: int = 16384
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "handshake_timeout",
            "idle_timeout",
            "max_connections",
            "max_client_hello",
            "buffer_size",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")


class ConnectionTimeoutError(ConnectionClosedError):
    """No progress for the idle timeout; the connection is being closed."""


class ServiceStream(TLSStream):
    """A server :class:`TLSStream` with the service's limits and checks.

    Args:
        reader, writer: the accepted connection.
        connection: a new server connection.
        read_size: most bytes taken per read.

    Attributes:
        io_timeout: seconds a read or write may wait (None: no limit).
        timed_out: a read or write exceeded ``io_timeout``.
        alert_sent, alert_received: the fatal alert, if any.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: ServerConnection,
        *,
        read_size: int = 16384,
    ) -> None:
        super().__init__(reader, writer, connection)
        self.server = connection
        self.io_timeout: float | None = None
        self.timed_out = False
        self.alert_sent: AlertDescription | None = None
        self.alert_received: AlertDescription | None = None
        self._read_size = read_size

    async def _io(self, awaitable: Awaitable[T]) -> T:
        if self.io_timeout is None:
            return await awaitable
        try:
            async with asyncio.timeout(self.io_timeout):
                return await awaitable
        except TimeoutError:
            self.timed_out = True
            raise ConnectionTimeoutError(
                f"idle for {self.io_timeout:g} s, closing"
            ) from None

    async def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            self.writer.write(data)
            await self._io(self.writer.drain())

    async def _pump(self) -> None:
        data = await self._io(self.reader.read(self._read_size))
        try:
            events = self.server.receive_data(data)
        except BaseException as error:
            if isinstance(error, Alert):
                self.alert_sent = error.description
            elif isinstance(error, Exception) and not isinstance(error, TLSError):
                self.alert_sent = AlertDescription.INTERNAL_ERROR
            with contextlib.suppress(OSError, ConnectionError, TLSError):
                await self._flush()
            raise
        await self._flush()
        try:
            self._absorb(events)
        except PeerAlert as alert:
            self.alert_received = alert.description
            raise


@dataclass
class _Record:
    """What one connection's log line says."""

    peer: str
    started: float
    outcome: str = "completed"
    error: str | None = None
    handshake_seconds: float | None = None
    backend: str | None = None


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


class Service:
    """Accepts connections and runs :meth:`handle_connection` for each.

    Args:
        config: the server configuration, or a provider called once per
            connection (a :class:`Keyring`), which is how keys rotate.
        app: gets each stream after its handshake (the status page, DoH).
        limits: per-connection limits.
        metrics: counters to update (a new set if None).
    """

    def __init__(
        self,
        config: ServerConfig | Callable[[], ServerConfig],
        app: App,
        *,
        limits: Limits | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._provider: Callable[[], ServerConfig] = (
            config if callable(config) else (lambda: config)
        )
        self.app = app
        self.limits = limits or Limits()
        self.metrics = metrics or Metrics()
        self.server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[object]] = set()
        self._closing = False
        self._capacity_warned = -math.inf
        self._limited_source: ServerConfig | None = None
        self._limited_config: ServerConfig | None = None

    @property
    def open_connections(self) -> int:
        """Connections being handled now."""
        return len(self._connections)

    async def start(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
    ) -> asyncio.Server:
        """Listen on ``host``:``port``, or on the bound ``sock``."""
        limit = self.limits.buffer_size
        if sock is not None:
            server = await asyncio.start_server(
                self._on_connect, sock=sock, limit=limit
            )
        else:
            server = await asyncio.start_server(
                self._on_connect, host, port, limit=limit
            )
        self.server = server
        return server

    async def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._closing or len(self._connections) >= self.limits.max_connections:
            writer.transport.abort()
            outcome = "shutting_down" if self._closing else "over_capacity"
            self.metrics.inc("ech_connection_outcomes_total", outcome=outcome)
            log.debug("connection from %s closed: %s", _peer(writer), outcome)
            now = time.monotonic()
            if not self._closing and (
                now - self._capacity_warned >= _CAPACITY_WARNING_INTERVAL
            ):
                self._capacity_warned = now
                log.warning(
                    "at --max-connections %d: closing new connections",
                    self.limits.max_connections,
                )
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - asyncio runs callbacks in tasks
            raise RuntimeError("not in a task")
        self._connections.add(task)
        self.metrics.set("ech_connections_open", len(self._connections))
        try:
            await self.handle_connection(reader, writer)
        finally:
            self._connections.discard(task)
            self.metrics.set("ech_connections_open", len(self._connections))

    def _limited(self, config: ServerConfig) -> ServerConfig:
        """``config`` with our ClientHello limit, made once per config object."""
        limited = self._limited_config
        if config is not self._limited_source or limited is None:
            limited = dataclasses.replace(
                config, max_client_hello=self.limits.max_client_hello
            )
            self._limited_source, self._limited_config = config, limited
        return limited

    def new_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> ServiceStream:
        """A stream over a new ServerConnection built from the current config."""
        connection = ServerConnection(self._limited(self._provider()))
        return ServiceStream(
            reader,
            writer,
            connection,
            read_size=self.limits.buffer_size,
        )

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One connection: the per-connection hook.

        Builds the stream from the current config (:meth:`new_stream`), runs
        the handshake under the handshake timeout, then hands the stream to
        the application under the idle timeout, or, in split mode, to
        :meth:`forward`; closes it (aborting a transport that does not
        drain), and logs one line. Never raises, except CancelledError when
        shutdown gives up on the connection.
        """
        record = _Record(_peer(writer), time.monotonic())
        stream = self.new_stream(reader, writer)
        handshaken = False
        try:
            result = await self._handshake(stream, record)
            if isinstance(result, ForwardToBackend):
                await self.forward(stream, result, record)
            elif result is not None:
                handshaken = True
                await self._run_app(stream, record)
        except asyncio.CancelledError:
            record.outcome = "shutdown"
            raise
        finally:
            try:
                await self._close(stream, handshaken)
            finally:
                self._finish(record, stream)

    async def _handshake(
        self, stream: ServiceStream, record: _Record
    ) -> HandshakeComplete | ForwardToBackend | None:
        try:
            async with asyncio.timeout(self.limits.handshake_timeout):
                result = await stream.do_handshake()
        except TimeoutError:
            record.outcome = "handshake_timeout"
            record.error = f"no handshake in {self.limits.handshake_timeout:g} s"
        except NameRequiresECH as refused:
            record.outcome, record.error = "require_ech", str(refused)
        except MessageTooLong as refused:  # ServerConfig.max_client_hello
            record.outcome, record.error = "client_hello_too_large", str(refused)
        except Alert as alert:
            record.outcome, record.error = "handshake_failed", str(alert)
        except PeerAlert as alert:
            record.outcome, record.error = "peer_alert", str(alert)
        except (ConnectionClosedError, OSError, ConnectionError) as error:
            record.outcome, record.error = "peer_closed", str(error) or "closed"
        except Exception as error:  # our bug: keep serving the others
            log.error("handshake failed unexpectedly", exc_info=True)
            record.outcome = "internal_error"
            record.error = f"{type(error).__name__}: {error}"
        else:
            if isinstance(result, ForwardToBackend):
                return result
            record.handshake_seconds = time.monotonic() - record.started
            self.metrics.observe("ech_handshake_seconds", record.handshake_seconds)
            fields = status_fields(result)
            log.info("handshake %s", json.dumps(fields, sort_keys=True))
            return result
        return None

    async def forward(
        self, stream: ServiceStream, forward: ForwardToBackend, record: _Record
    ) -> None:
        """Split mode: relay the connection to its backend (RFC 9849 §3.1).

        ECH was accepted for a name in ``ServerConfig.backends``; records
        pass both ways unchanged (:func:`ech.aio.relay.relay`) until
        either side closes or stays silent for the idle timeout.
        """
        record.outcome = "forwarded"
        record.backend = f"{forward.backend[0]}:{forward.backend[1]}"
        try:
            await relay(
                forward,
                stream.reader,
                stream.writer,
                idle_timeout=self.limits.idle_timeout,
            )
        except OSError as error:
            record.outcome, record.error = "backend_unreachable", str(error)
            stream.alert_sent = AlertDescription.INTERNAL_ERROR

    async def _run_app(self, stream: ServiceStream, record: _Record) -> None:
        stream.io_timeout = self.limits.idle_timeout
        try:
            await self.app(stream)
        except ConnectionTimeoutError as error:
            record.error = str(error)
        except PeerAlert as alert:
            record.outcome, record.error = "peer_alert", str(alert)
        except Alert as alert:
            record.outcome, record.error = "failed", str(alert)
        except (TLSError, OSError, ConnectionError) as error:
            record.error = f"{type(error).__name__}: {error}"
        except Exception as error:
            log.error("application failed", exc_info=True)
            record.outcome = "internal_error"
            record.error = f"{type(error).__name__}: {error}"
        if stream.timed_out:
            record.outcome = "idle_timeout"

    async def _close(self, stream: ServiceStream, handshaken: bool) -> None:
        writer = stream.writer
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if handshaken and not stream.timed_out:
                    await stream.close()  # close_notify
                else:
                    writer.close()
                    await writer.wait_closed()
        except (TimeoutError, OSError, ConnectionError):
            writer.transport.abort()
        except BaseException:
            writer.transport.abort()
            raise

    def _finish(self, record: _Record, stream: ServiceStream) -> None:
        connection = stream.server
        for event in stream.events:
            if (
                isinstance(event, ConnectionClosed)
                and event.alert is not None
                and event.alert != AlertDescription.CLOSE_NOTIFY
            ):
                stream.alert_received = event.alert
        seen_hello = (
            connection.client_hello is not None
            or connection.ech_status is not ECHStatus.NOT_OFFERED
        )
        ech_status = str(connection.ech_status) if seen_hello else None
        metrics = self.metrics
        if ech_status is not None:
            metrics.inc("ech_connections_total", ech_status=ech_status)
        metrics.inc("ech_connection_outcomes_total", outcome=record.outcome)
        if stream.alert_sent is not None:
            metrics.inc("ech_alerts_sent_total", alert=str(stream.alert_sent))
        if stream.alert_received is not None:
            metrics.inc("ech_alerts_received_total", alert=str(stream.alert_received))
            if stream.alert_received == AlertDescription.ECH_REQUIRED:
                metrics.inc("ech_required_received_total")
        suite = connection.cipher_suite
        fields: dict[str, object] = {
            "peer": record.peer,
            "outcome": record.outcome,
            "ech_status": ech_status,
            "outer_server_name": connection.outer_server_name,
            "server_name": connection.server_name,
            "tls_version": "TLSv1.3" if suite is not None else None,
            "cipher_suite": str(suite) if suite is not None else None,
            "group": str(connection.group) if connection.group is not None else None,
            "alpn": connection.alpn_protocol,
            "backend": record.backend,
            "resumed": connection.resumed,
            "hello_retry": connection.hello_retry,
            "handshake_ms": (
                round(record.handshake_seconds * 1000, 1)
                if record.handshake_seconds is not None
                else None
            ),
            "duration_ms": round((time.monotonic() - record.started) * 1000, 1),
            "alert_sent": str(stream.alert_sent) if stream.alert_sent else None,
            "alert_received": (
                str(stream.alert_received) if stream.alert_received else None
            ),
            "error": record.error,
        }
        log.info("connection %s", json.dumps(fields))

    async def shutdown(
        self, timeout: float | None = None, *, now: asyncio.Event | None = None
    ) -> int:
        """Stop accepting, wait for open connections, then close the rest.

        Args:
            timeout: seconds to wait (default ``limits.shutdown_timeout``).
            now: set to stop waiting early (a second signal).

        Returns:
            How many connections had to be closed.
        """
        self._closing = True
        if self.server is not None:
            self.server.close()
        if timeout is None:
            timeout = self.limits.shutdown_timeout
        pending = set(self._connections)
        if pending:
            log.info(
                "shutting down: waiting up to %g s for %d connection(s)",
                timeout,
                len(pending),
            )
            waiters: set[asyncio.Future[object]] = {
                asyncio.ensure_future(asyncio.wait(pending))
            }
            if now is not None:
                waiters.add(asyncio.ensure_future(now.wait()))
            await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
            pending = {task for task in pending if not task.done()}
        for task in pending:
            task.cancel()
        if pending:
            log.info("shutting down: closing %d connection(s)", len(pending))
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT + 1)
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.server.wait_closed()
        return len(pending)


# the applications --------------------------------------------------------------


def _common_suffix(names: Sequence[str]) -> str:
    """The longest DNS suffix all ``names`` share (``.`` if none)."""
    labels = [name.lower().rstrip(".").split(".")[::-1] for name in names]
    common: list[str] = []
    for parts in zip(*labels, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(reversed(common)) + "." if common else "."


def doh_app(
    provider: Callable[[], ServerConfig], path: str, host: str, port: int
) -> App:
    """DoH (HTTP/2 or 1.1) for the names we serve, the status page elsewhere.

    The HTTPS records carry the advertised ECH configs current at query time.
    """
    from ech.dns.doh_server import HTTPResponse, Zone
    from ech.serve.doh import serve_doh, serve_doh_http1

    config = provider()
    names = sorted({n for c in config.certificates for n in c.dns_names})
    zone = Zone(
        _common_suffix(names),
        lambda: provider().retry_configs,
        hosts=[name + "." for name in names],  # absolute, not origin-relative
        port=port,
        alpn=("h2", "http/1.1"),
        addresses=("127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host,),
    )

    async def handler(stream: TLSStream) -> None:
        body = json.dumps(status_fields(stream.negotiated), indent=2).encode()

        def status_page(method: str, target: str) -> HTTPResponse:
            headers = (("content-type", "application/json"),)
            return HTTPResponse(200, headers, body + b"\n")

        if stream.negotiated.alpn_protocol == "h2":
            await serve_doh(stream, path, zone, other=status_page)
        else:
            await serve_doh_http1(stream, path, zone, other=status_page)

    return handler


# ech serve ------------------------------------------------------------------------


class ServeError(Exception):
    """``ech serve`` cannot start (the message says why)."""


@dataclass(frozen=True)
class ServeOptions:
    """What ``ech serve`` was asked to do (its flags).

    Attributes:
        listen: address to listen on (port 0: any free port).
        certs, keys: certificate chain and private key files, paired.
        ech_keys: ECH key files (``--ech-key``).
        ech_key_dirs: ECH key directories (``--ech-key-dir``).
        key_poll: seconds between checks for changed key files (0: only
            on SIGHUP).
        trial_decryption: try every key, not only those with the config_id.
        doh: also answer DoH at this path.
        require_ech: ``--require-ech`` names (empty: every certificate
            name but the public names), or None when not given.
        metrics: where to serve ``/metrics``, or None.
        limits: per-connection limits and the shutdown deadline.
        backends: split mode: inner names relayed to ``(host, port)``.
        backend_mode: run as a split-mode backend (``ech_backend``).
    """

    listen: tuple[str, int]
    certs: tuple[Path, ...]
    keys: tuple[Path, ...]
    ech_keys: tuple[Path, ...] = ()
    ech_key_dirs: tuple[Path, ...] = ()
    key_poll: float = 5.0
    trial_decryption: bool = False
    doh: str | None = None
    require_ech: tuple[str, ...] | None = None
    metrics: tuple[str, int] | None = None
    limits: Limits = field(default_factory=Limits)
    backends: dict[str, tuple[str, int]] = field(default_factory=dict)
    backend_mode: bool = False


def base_config(options: ServeOptions) -> ServerConfig:
    """The server configuration without ECH keys.

    Raises:
        ServeError: mismatched ``--cert``/``--key``, or unreadable files.
    """
    if len(options.certs) != len(options.keys):
        raise ServeError("give one --key for each --cert")
    try:
        certificates = tuple(
            CertifiedKey.load(cert, key)
            for cert, key in zip(options.certs, options.keys, strict=True)
        )
    except (ValueError, OSError) as error:
        raise ServeError(str(error)) from None
    # With DoH, HTTP/2 comes first: BIND-style DoH clients speak only h2.
    alpn = ("h2", "http/1.1") if options.doh else ("http/1.1",)
    return ServerConfig(
        certificates=certificates,
        alpn_protocols=alpn,
        ech_trial_decryption=options.trial_decryption,
        backends=options.backends,
        ech_backend=options.backend_mode,
        max_client_hello=options.limits.max_client_hello,
        require_ech=(
            RequireECH(options.require_ech) if options.require_ech is not None else None
        ),
    )


def _check_public_names(config: ServerConfig) -> None:
    for ech_key in config.ech_keys:
        contents = ech_key.config.contents
        name = contents.public_name.decode("ascii") if contents else ""
        if not any(c.matches(name) for c in config.certificates):
            # RFC 9849 §8.1: without it, rejected clients cannot recover.
            log.warning("no certificate names public_name %s: retries will fail", name)


def _raise_file_limit(needed: int) -> None:
    """Raise the soft open-files limit toward ``needed`` if it is lower."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            if target < needed:
                log.warning(
                    "open-files limit %d is below --max-connections; "
                    "accepts may fail under load",
                    target,
                )


async def serve(
    options: ServeOptions, *, announce: Callable[[str], None] | None = None
) -> None:
    """Run ``ech serve`` until SIGTERM or SIGINT, then shut down gracefully.

    ``announce`` gets ``listening on HOST:PORT`` (then ``metrics on
    HOST:PORT``) once connections are accepted; by default it prints them.

    Raises:
        ServeError: the configuration or the listening socket fails.
    """
    say = announce or (lambda line: print(line, flush=True))
    metrics = Metrics()

    def reloaded(result: str, keyset: KeySet) -> None:
        metrics.inc("ech_key_reloads_total", result=result)
        metrics.set("ech_keys", len(keyset.advertised), policy="retry")
        metrics.set("ech_keys", len(keyset.accept_only), policy="accept")
        if result == "ok":
            _check_public_names(keyring.config)

    base = base_config(options)
    try:
        keyring = Keyring(
            base, options.ech_keys, options.ech_key_dirs, on_reload=reloaded
        )
    except KeyringError as error:
        raise ServeError(str(error)) from None
    metrics.set("ech_keys", len(keyring.keyset.advertised), policy="retry")
    metrics.set("ech_keys", len(keyring.keyset.accept_only), policy="accept")
    _check_public_names(keyring.config)
    if keyring.keyset.entries:
        log.info("ECH keys loaded: %s", keyring.keyset.describe())

    limits = options.limits
    _raise_file_limit(limits.max_connections + 64)
    host, port = options.listen
    try:
        listener = socket.create_server((host, port), backlog=512)
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port}: {error}") from None
    bound_host, bound_port = listener.getsockname()[:2]
    app: App = serve_status
    if options.doh is not None:
        app = doh_app(keyring, options.doh, bound_host, bound_port)
    service = Service(keyring, app, limits=limits, metrics=metrics)
    await service.start(sock=listener)
    metrics_server: asyncio.Server | None = None
    if options.metrics is not None:
        try:
            metrics_server = await start_metrics_server(metrics, *options.metrics)
        except OSError as error:
            await service.shutdown(0)
            raise ServeError(f"cannot serve metrics: {error}") from None

    stop = asyncio.Event()
    now = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stop() -> None:
        if stop.is_set():
            now.set()  # a second signal: do not wait for connections
        stop.set()

    def on_hangup() -> None:
        log.info("SIGHUP: reloading ECH keys")
        keyring.reload()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    watcher = (
        asyncio.create_task(keyring.watch(options.key_poll))
        if options.key_poll > 0 and keyring.sources
        else None
    )
    say(f"listening on {bound_host}:{bound_port}")
    if metrics_server is not None:
        metrics_host, metrics_port = metrics_server.sockets[0].getsockname()[:2]
        say(f"metrics on {metrics_host}:{metrics_port}")
    try:
        await stop.wait()
        log.info("shutting down")
        closed = await service.shutdown(limits.shutdown_timeout, now=now)
        log.info("stopped (%d connection(s) closed at the deadline)", closed)
    finally:
        if watcher is not None:
            watcher.cancel()
        if metrics_server is not None:
            metrics_server.close()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def run_serve(options: ServeOptions) -> int:
    """Run :func:`serve` in a new event loop; the exit status (0).

    Raises:
        ServeError: it could not start.
    """
    asyncio.run(serve(options))
    return 0
