"""``ech serve`` running: keys, the TLS server, its pages, metrics, signals.

:func:`serve` puts the pieces together from :class:`ServeOptions` (what
the flags asked for, see :mod:`ech.cli.serve`):

* the :class:`~ech.serve.keyring.Keyring` (ECH key files and directories,
  reloaded on SIGHUP and when they change), read once per connection;
* the :class:`ech.aio.Server` with the options' limits, observed by a
  :class:`~ech.serve.connection_log.ConnectionLog` (log lines, metrics);
* its HTTP application: the status page, or with ``--doh`` DoH plus the
  status page (:mod:`ech.serve.doh`), over HTTP/1.1 and HTTP/2 and, with
  ``--http3``, over HTTP/3 on UDP at the same address (the same keys,
  limits, log and metrics; TCP responses then carry ``Alt-Svc``);
* with ``--metrics``, the Prometheus endpoint;
* signals: SIGTERM or SIGINT stop listening, let open connections finish
  within ``--shutdown-timeout`` (10 s), then close the rest; a second
  signal closes them at once. ``ech serve`` exits 0.

Before serving it checks its files: a certificate and a key that do not
belong together stop it (:func:`base_config`, one line naming both);
private keys readable by anyone but their owner (:func:`audit_key_files`,
and the key ring for ECH keys, reloaded ones too) and key directories
without keys are warned about. Warned, not refused: Debian's ``ssl-cert``
group (keys 0640) and the secrets Kubernetes and Docker mount (0644 and
0444 unless told otherwise) are the usual way to hand a service its keys,
and a key others could read has leaked already, whatever the server then
does; the warning names the file, its mode and the fix.

0-RTT (``--early-data BYTES``): tickets allow that much early data, one
anti-replay record (:class:`~ech.server.anti_replay.AntiReplay`) is shared
by all connections of the process, and the HTTP layer answers a request
sent early only once the handshake is complete (:mod:`ech.http.server`).

That is one process (``--workers 1``). With ``--workers N`` (N > 1) this
process becomes the supervisor of N worker processes, each running the
same pieces on its own socket of the port (:mod:`ech.serve.workers`);
:func:`start_service` and :func:`stop_service` are what a worker and the
single process share.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import signal
import socket
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ech.aio import Limits, Server, TLSStream
from ech.arguments import load_certified_key
from ech.http import ConnectionInfo, Request, Response, ServerOptions, serve_http
from ech.http import Handler as HTTPHandler
from ech.http.messages import HTTP_3
from ech.quic.server import HTTP3Server
from ech.serve.connection_log import ConnectionLog
from ech.serve.gc_policy import serving_gc
from ech.serve.keyring import Keyring, KeyringError, KeySet, warn_if_exposed
from ech.serve.metrics import Metrics
from ech.serve.metrics_endpoint import start_metrics_server
from ech.serve.status_page import status_page
from ech.serve.summary import print_summary
from ech.server.anti_replay import AntiReplay
from ech.server.config import RequireECH, ServerConfig
from ech.tls.certificates import load_trust_store

__all__ = [
    "ServeError",
    "ServeOptions",
    "Service",
    "audit_key_files",
    "base_config",
    "serve",
    "service_keyring",
    "start_service",
    "stop_service",
]

log = logging.getLogger("ech.serve")


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
        http3: also serve HTTP/3 over QUIC on UDP at the same address.
        workers: processes serving the port (1: this one, as always; more:
            a supervisor and that many workers, see
            :mod:`ech.serve.workers`). ``limits`` apply to each worker.
        request_head_timeout: seconds a client has, after the handshake,
            to send a complete HTTP request head (HTTP/1.1, HTTP/2 and
            HTTP/3 alike; :class:`ech.http.ServerOptions`).
        client_ca: CA certificates (PEM) client certificates must chain
            to; asks every full handshake for one (RFC 8446 §4.3.2).
        require_client_certificate: refuse clients without one
            (``certificate_required``, §4.4.2.4); needs ``client_ca``.
        early_data: 0-RTT bytes accepted per connection (RFC 8446
            §4.2.10); 0 turns 0-RTT off.

    Raises:
        ValueError: ``workers`` is below 1, ``early_data`` does not fit a
            uint32, or a client certificate is required without a CA.
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
    http3: bool = False
    workers: int = 1
    request_head_timeout: float = 10.0
    client_ca: Path | None = None
    require_client_certificate: bool = False
    early_data: int = 0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not self.request_head_timeout > 0:
            raise ValueError("request_head_timeout must be positive")
        if not 0 <= self.early_data < 1 << 32:
            raise ValueError("early_data must fit a uint32 (RFC 8446 §4.2.10)")
        if self.require_client_certificate and self.client_ca is None:
            raise ValueError("requiring a client certificate needs a client CA")

    def to_json(self) -> dict[str, Any]:
        """These options as plain JSON values, for a worker process.

        JSON rather than pickle: a worker then reads data, never code, from
        its control channel, and a field this forgets fails the round-trip
        test instead of travelling silently.
        """
        return {
            "listen": list(self.listen),
            "certs": [str(p) for p in self.certs],
            "keys": [str(p) for p in self.keys],
            "ech_keys": [str(p) for p in self.ech_keys],
            "ech_key_dirs": [str(p) for p in self.ech_key_dirs],
            "key_poll": self.key_poll,
            "trial_decryption": self.trial_decryption,
            "doh": self.doh,
            "require_ech": (
                list(self.require_ech) if self.require_ech is not None else None
            ),
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "limits": dataclasses.asdict(self.limits),
            "backends": {name: list(a) for name, a in self.backends.items()},
            "backend_mode": self.backend_mode,
            "http3": self.http3,
            "workers": self.workers,
            "request_head_timeout": self.request_head_timeout,
            "client_ca": str(self.client_ca) if self.client_ca is not None else None,
            "require_client_certificate": self.require_client_certificate,
            "early_data": self.early_data,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServeOptions:
        """The options :meth:`to_json` wrote.

        Raises:
            ValueError: ``data`` is not what :meth:`to_json` writes.
        """
        try:
            require_ech = data["require_ech"]
            metrics = data["metrics"]
            client_ca = data["client_ca"]
            return cls(
                listen=(str(data["listen"][0]), int(data["listen"][1])),
                certs=tuple(Path(p) for p in data["certs"]),
                keys=tuple(Path(p) for p in data["keys"]),
                ech_keys=tuple(Path(p) for p in data["ech_keys"]),
                ech_key_dirs=tuple(Path(p) for p in data["ech_key_dirs"]),
                key_poll=float(data["key_poll"]),
                trial_decryption=bool(data["trial_decryption"]),
                doh=data["doh"],
                require_ech=(tuple(require_ech) if require_ech is not None else None),
                metrics=(
                    (str(metrics[0]), int(metrics[1])) if metrics is not None else None
                ),
                limits=Limits(**data["limits"]),
                backends={
                    str(name): (str(a[0]), int(a[1]))
                    for name, a in data["backends"].items()
                },
                backend_mode=bool(data["backend_mode"]),
                http3=bool(data["http3"]),
                workers=int(data["workers"]),
                request_head_timeout=float(data["request_head_timeout"]),
                client_ca=Path(client_ca) if client_ca is not None else None,
                require_client_certificate=bool(data["require_client_certificate"]),
                early_data=int(data["early_data"]),
            )
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise ValueError(f"bad serve options: {error!r}") from None


def base_config(
    options: ServeOptions, *, ticket_key: bytes | None = None
) -> ServerConfig:
    """The server configuration without ECH keys.

    Args:
        options: the certificates, client CA, 0-RTT size...
        ticket_key: the key sealing session tickets (RFC 8446 §4.6.1),
            shared by the workers of one supervisor so that a ticket from
            one resumes at another; a fresh random key when None.

    Raises:
        ServeError: mismatched ``--cert``/``--key`` (their number, or a key
            that is not its certificate's), or unreadable files.
    """
    if len(options.certs) != len(options.keys):
        raise ServeError("give one --key for each --cert")
    try:
        certificates = tuple(
            load_certified_key(cert, key)
            for cert, key in zip(options.certs, options.keys, strict=True)
        )
        client_ca = load_trust_store(options.client_ca) if options.client_ca else ()
    except ValueError as error:
        raise ServeError(str(error)) from None
    except OSError as error:
        raise ServeError(f"{error.filename}: {error.strerror}") from None
    if options.client_ca is not None and not client_ca:
        raise ServeError(f"{options.client_ca}: no PEM certificate in it")
    # With DoH, HTTP/2 comes first: BIND-style DoH clients speak only h2.
    alpn = ("h2", "http/1.1") if options.doh else ("http/1.1",)
    extra: dict[str, Any] = {} if ticket_key is None else {"ticket_key": ticket_key}
    return ServerConfig(
        **extra,
        client_ca=client_ca,
        require_client_certificate=options.require_client_certificate,
        max_early_data_size=options.early_data,
        # One record for every connection of this process (RFC 8446 §8.2):
        # each config derived from this one (keys, limits) shares it.
        anti_replay=AntiReplay(),
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


def audit_key_files(options: ServeOptions) -> None:
    """Warn about each ``--key`` file anyone but its owner may read."""
    for path in dict.fromkeys(options.keys):
        warn_if_exposed(path, "TLS key")


def service_keyring(
    options: ServeOptions,
    metrics: Metrics,
    *,
    on_new_keys: Callable[[], None] | None = None,
    ticket_key: bytes | None = None,
    audit: bool = True,
) -> Keyring:
    """The keys, with their gauges and reload counter kept up to date.

    Args:
        options: where the certificates and keys are.
        metrics: gets ``ech_keys`` and ``ech_key_reloads_total``.
        on_new_keys: called after each successful reload (the supervisor
            of ``--workers`` tells its workers to reload then).
        ticket_key: the session ticket key (:func:`base_config`).
        audit: warn about exposed key files and empty key directories
            (the single process, or the supervisor; not every worker).

    Raises:
        ServeError: the certificates or keys cannot be loaded.
    """

    def count(keyset: KeySet) -> None:
        metrics.set("ech_keys", len(keyset.advertised), policy="retry")
        metrics.set("ech_keys", len(keyset.accept_only), policy="accept")

    def reloaded(result: str, keyset: KeySet) -> None:
        metrics.inc("ech_key_reloads_total", result=result)
        count(keyset)
        if result == "ok":
            _check_public_names(keyring.config)
            if on_new_keys is not None:
                on_new_keys()

    base = base_config(options, ticket_key=ticket_key)
    if audit:
        audit_key_files(options)
    try:
        keyring = Keyring(
            base,
            options.ech_keys,
            options.ech_key_dirs,
            on_reload=reloaded,
            audit=audit,
        )
    except KeyringError as error:
        raise ServeError(str(error)) from None
    count(keyring.keyset)
    _check_public_names(keyring.config)
    if keyring.keyset.entries:
        log.info("ECH keys loaded: %s", keyring.keyset.describe())
    return keyring


@dataclass
class Service:
    """What one serving process runs: the TCP server and, with ``--http3``, QUIC.

    Attributes:
        server: the TLS server on TCP.
        quic: the HTTP/3 server on UDP, or None.
        host, port: the address listened on.
    """

    server: Server
    quic: HTTP3Server | None
    host: str
    port: int


async def start_service(
    options: ServeOptions,
    keyring: Keyring,
    observer: ConnectionLog,
    listener: socket.socket,
    *,
    udp: socket.socket | None = None,
    quic: bool = True,
) -> Service:
    """Serve TLS on the listening ``listener`` and, with ``--http3``, QUIC.

    Args:
        options: what to serve (the handler, limits, ``--http3``).
        keyring: the config provider, read once per connection.
        observer: the log and metrics of every connection.
        listener: a bound, listening TCP socket; closed on error.
        udp: a bound UDP socket for QUIC (a worker's); None binds one at
            the listener's address.
        quic: whether this process serves QUIC when ``options.http3``
            asks for it. A worker without a UDP socket of its own (where
            there is no ``SO_REUSEPORT``) still advertises HTTP/3 in
            ``Alt-Svc``: another worker serves it.

    Raises:
        ServeError: the UDP socket cannot be bound.
    """
    limits = options.limits
    _raise_file_limit(limits.max_connections + 64)
    bound_host, bound_port = listener.getsockname()[:2]
    handler = _http_handler(options, keyring, bound_host, bound_port)
    # One request-head deadline for HTTP/1.1, HTTP/2 and HTTP/3.
    http_options = ServerOptions(request_head_timeout=options.request_head_timeout)
    quic_server: HTTP3Server | None = None
    if options.http3 and quic:
        # The same port on UDP, the same keys, handler, limits and log.
        quic_server = HTTP3Server(
            keyring, handler, limits=limits, observer=observer, options=http_options
        )
        try:
            await quic_server.start(bound_host, bound_port, sock=udp)
        except OSError as error:
            listener.close()
            host = options.listen[0]
            raise ServeError(
                f"cannot listen on UDP {host}:{bound_port}: {error}"
            ) from None
    if options.http3:
        handler = _with_alt_svc(handler, bound_port)

    def app(stream: TLSStream) -> Coroutine[Any, Any, None]:
        # The handshake is complete: a request sent as 0-RTT data is safe
        # to answer now (ech.http.server says why). Not itself async: an
        # idle connection keeps one coroutine frame less.
        return serve_http(stream, handler, http_options, early_data=stream.early_data)

    server = Server(keyring, app, limits=limits, observer=observer)
    await server.start(sock=listener)
    return Service(server, quic_server, bound_host, bound_port)


async def stop_service(service: Service, timeout: float, now: asyncio.Event) -> None:
    """Graceful shutdown: stop listening, let connections finish, close the rest.

    TCP first, QUIC refusing new connections meanwhile, then QUIC; ``now``
    (a second signal) stops the waiting.
    """
    log.info("shutting down")
    quic = service.quic
    if quic is not None:
        quic.closing = True  # refuse new QUIC connections while TCP drains
    await _shutdown(service.server, timeout, now)
    if quic is not None:
        await quic.shutdown(0 if now.is_set() else timeout, now=now)


async def serve(
    options: ServeOptions, *, announce: Callable[[str], None] | None = None
) -> None:
    """Run ``ech serve`` until SIGTERM or SIGINT, then shut down gracefully.

    ``announce`` gets ``listening on HOST:PORT`` (then ``metrics on
    HOST:PORT``) once connections are accepted; by default it prints them.
    With ``options.workers`` above 1 this process supervises that many
    workers (:func:`ech.serve.workers.supervise`).

    Raises:
        ServeError: the configuration or the listening socket fails.
    """
    say = announce or (lambda line: print(line, flush=True))
    if options.workers > 1:
        from ech.serve.workers import supervise

        await supervise(options, say)
        return
    metrics = Metrics()
    keyring = service_keyring(options, metrics)
    limits = options.limits
    host, port = options.listen
    try:
        listener = socket.create_server((host, port), backlog=512)
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port}: {error}") from None
    observer = ConnectionLog(
        metrics,
        max_connections=limits.max_connections,
        per_address=limits.per_address,
    )
    service = await start_service(options, keyring, observer, listener)
    bound_host, bound_port = service.host, service.port
    metrics_server: asyncio.Server | None = None
    if options.metrics is not None:
        try:
            metrics_server = await start_metrics_server(metrics, *options.metrics)
        except OSError as error:
            await service.server.shutdown(0)
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
    metrics_address: tuple[str, int] | None = None
    if metrics_server is not None:
        metrics_address = metrics_server.sockets[0].getsockname()[:2]
        say(f"metrics on {metrics_address[0]}:{metrics_address[1]}")
    if service.quic is not None:
        say(f"http3 on {bound_host}:{bound_port}")
    print_summary(
        keyring,
        options.certs,
        (bound_host, bound_port),
        http3=service.quic is not None,
        doh_path=options.doh,
        metrics=metrics_address,
    )
    try:
        with serving_gc():
            await stop.wait()
            await stop_service(service, limits.shutdown_timeout, now)
    finally:
        if watcher is not None:
            watcher.cancel()
        if metrics_server is not None:
            metrics_server.close()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _http_handler(
    options: ServeOptions, keyring: Keyring, host: str, port: int
) -> HTTPHandler:
    """The status page, or with ``--doh`` DoH and the status page."""
    if options.doh is None:
        return status_page
    from ech.serve.doh import HTTP3_ALPN, TCP_ALPN, doh_router  # dnspython

    alpn = HTTP3_ALPN if options.http3 else TCP_ALPN
    return doh_router(keyring, options.doh, host, port, alpn)


def _with_alt_svc(handler: HTTPHandler, port: int) -> HTTPHandler:
    """``handler`` whose TCP responses advertise HTTP/3 (RFC 7838, RFC 9114 §3.1.1)."""
    alt_svc = ("alt-svc", f'h3=":{port}"')

    async def advertised(request: Request, info: ConnectionInfo) -> Response:
        response = await handler(request, info)
        if info.http_version == HTTP_3:
            return response
        return dataclasses.replace(response, headers=(*response.headers, alt_svc))

    return advertised


async def _shutdown(server: Server, timeout: float, now: asyncio.Event) -> None:
    """Graceful shutdown, with what it waits for and what it cut in the log."""
    if server.open_connections:
        log.info(
            "shutting down: waiting up to %g s for %d connection(s)",
            timeout,
            server.open_connections,
        )
    closed = await server.shutdown(timeout, now=now)
    if closed:
        log.info("shutting down: closing %d connection(s)", closed)
    log.info("stopped (%d connection(s) closed at the deadline)", closed)
