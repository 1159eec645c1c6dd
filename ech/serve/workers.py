"""``ech serve --workers N``: N worker processes on one port, and their supervisor.

Python runs one thread of Python code at a time, so one ``ech serve``
process uses one core. With ``--workers N`` the process started becomes a
supervisor: it binds the sockets, starts N workers (each the usual
:func:`~ech.serve.app.start_service` in a process of its own,
:mod:`ech.serve.worker`), restarts any that dies, forwards rotations and
shutdowns, and serves the sum of their metrics. It never accepts a
connection itself.

**Sockets.** On Linux each worker gets its own listening socket, all bound
to the port with ``SO_REUSEPORT``: the kernel spreads new connections over
the sockets by a hash of the client's address and port, so no worker
takes more than its share (one shared accept queue lets whichever worker
wakes first take a burst). The supervisor binds them all and keeps its
copies open for its whole life, handing socket *i* to worker *i* and to
each replacement of it:

* with port 0, the port is chosen once (a throwaway socket without
  ``SO_REUSEPORT`` picks a port free on TCP, and on UDP with ``--http3``),
  then every socket is bound to it; ``listening on HOST:PORT`` is printed
  once, when every worker is serving;
* a socket of a worker that died is not closed, so the group never changes:
  connections the kernel hashes to it wait in its accept queue for the
  replacement (restarted within a fraction of a second) instead of being
  reset, and, for UDP, the hash of every other client still lands on the
  same worker as before (a group that changed size would move QUIC
  connections to workers that do not know them);
* a plain bind (no ``SO_REUSEPORT``) of the port is tried first when a
  port is given, so a port held by another server is refused as a single
  process refuses it, rather than silently shared with it.

Where ``SO_REUSEPORT`` does not spread connections (it is Linux-only in that
sense; BSD's needs ``SO_REUSEPORT_LB``, macOS hands everything to one
socket), the supervisor binds one TCP socket that every worker accepts
from, and one UDP socket that only worker 0 reads (QUIC needs every
datagram of a connection to reach the same process; the other workers
advertise HTTP/3 in ``Alt-Svc`` all the same).

**QUIC.** With ``SO_REUSEPORT`` on UDP the kernel hashes each client
address to one socket, so every datagram of a QUIC connection reaches the
worker that holds it. If that worker dies its connections are lost: the
replacement gets their datagrams but has no state for them and drops them
(aioquic sends no stateless reset), so those clients see QUIC's idle
timeout and connect again, to the replacement. A client whose address
changes mid-connection (NAT rebinding, migration) is hashed afresh and
may reach another worker, which drops it in the same way; routing by
connection ID would need an eBPF program (``SO_ATTACH_REUSEPORT_EBPF``),
which this does not attempt.

**Orders.** The supervisor handles SIGTERM, SIGINT and SIGHUP; workers
ignore them and obey the control channel (:mod:`ech.serve.worker` says
why). SIGTERM or SIGINT: stop restarting, close the supervisor's copies of
the sockets, tell every worker to shut down gracefully (each waits up to
``--shutdown-timeout`` for its connections, as a single process does), and
exit 0 once all have exited; a second signal makes them close their
connections at once; a worker still running well after its deadline is
killed. Keys: the supervisor holds its own :class:`~ech.serve.keyring.
Keyring`, reloaded on SIGHUP and when the files change (``--key-poll``),
and whenever it has loaded a new valid key set it tells every worker to
reload; so one poller watches the files, and all workers switch within
milliseconds of each other. Every key set a rotation passes through keeps
the previous keys accepted, so no handshake fails meanwhile.

**Restarts.** A worker that exits when not told to is logged (with its
exit status or signal) and started again in its slot: at once after a
long life, with a delay doubling from 0.1 s to 5 s while it keeps dying
young. A worker that fails while the service is starting fails the start.

**Metrics.** The supervisor serves ``--metrics``. At each scrape it asks
every worker for a snapshot (:meth:`ech.serve.metrics.Metrics.snapshot`)
and adds them up: counters and summaries are sums, ``ech_connections_open``
is the sum over the live workers, and the key families (``ech_keys``,
``ech_key_reloads_total``) are the supervisor's own (every worker holds
the same keys; a sum would multiply them by N). It also refreshes the
snapshots every second, and keeps the counters of a worker that died, so
sums never go down (a worker killed outright loses at most the last
second's counts). Two families are the supervisor's: ``ech_workers``
(workers serving now) and ``ech_worker_restarts_total``.

**Limits.** ``--max-connections`` and the other limits apply to each worker,
as nginx's ``worker_connections`` does: N workers hold up to N times
``--max-connections``, and one client address up to N times
``--max-connections-per-address`` (the kernel spreads one address's
connections over the workers by their ports).

**Session tickets and 0-RTT.** The supervisor draws one ticket key and
gives it to every worker in its spec (over the control channel, never on
a command line or in a log), so a ticket issued by one worker resumes at
any other, and at a worker restarted in its slot; a new supervisor draws a
new key. Each worker keeps its own 0-RTT anti-replay record
(``--early-data``): a ClientHello replayed to another worker can have its
early data accepted there once (RFC 8446 §8 says the same of any record
not shared), but a replayed ClientHello never completes its handshake,
and ``ech serve`` answers a request sent as early data only once the
handshake is complete (:mod:`ech.http.server`), so the replay is never
answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from ech.aio.server import CLOSE_TIMEOUT
from ech.serve.app import ServeError, ServeOptions, service_keyring
from ech.serve.metrics import METRICS, Metric, Metrics, Snapshot
from ech.serve.metrics_endpoint import start_metrics_server
from ech.serve.summary import print_summary
from ech.serve.worker import (
    CONTROL_LIMIT,
    WorkerSpec,
    decode_message,
    encode_message,
)

__all__ = [
    "WORKER_METRICS",
    "ListeningSockets",
    "listening_sockets",
    "reuse_port_balances",
    "supervise",
]

log = logging.getLogger("ech.serve")

#: The supervisor's own metrics, after :data:`~ech.serve.metrics.METRICS`.
WORKER_METRICS: Final[tuple[Metric, ...]] = (
    Metric(
        "ech_workers", "gauge", "Worker processes serving now.", workers="supervisor"
    ),
    Metric(
        "ech_worker_restarts_total",
        "counter",
        "Worker processes restarted after they exited unasked.",
        workers="supervisor",
    ),
)

#: The listen backlog of each socket (as ``ech serve``'s single socket).
BACKLOG: Final = 512
#: Seconds every worker may take to start serving.
STARTUP_TIMEOUT: Final = 60.0
#: Seconds a worker may take to answer a metrics request.
METRICS_TIMEOUT: Final = 2.0
#: Seconds between refreshes of the workers' metrics snapshots.
REFRESH_INTERVAL: Final = 1.0
#: Restart delays: the first, the longest, and the life after which a
#: worker counts as healthy again (the delay starts over).
RESTART_DELAY: Final = 0.1
RESTART_DELAY_MAX: Final = 5.0
HEALTHY_AFTER: Final = 10.0
#: Port-0 attempts at a port free on both TCP and UDP (``--http3``).
_PORT_ATTEMPTS: Final = 8


def reuse_port_balances() -> bool:
    """Whether ``SO_REUSEPORT`` spreads connections over sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


@dataclass
class ListeningSockets:
    """The supervisor's sockets: one per worker, or one shared (see the module).

    Attributes:
        host: the address bound.
        port: the port bound (the one chosen, for port 0).
        tcp: listening TCP sockets, one per worker or a single shared one.
        udp: UDP sockets for QUIC, one per worker, one for worker 0, or none.
        reuse_port: whether each worker has its own (``SO_REUSEPORT``).
    """

    host: str
    port: int
    tcp: tuple[socket.socket, ...]
    udp: tuple[socket.socket, ...] = ()
    reuse_port: bool = True

    def for_worker(self, index: int) -> tuple[socket.socket, socket.socket | None]:
        """Worker ``index``'s TCP socket and UDP socket (None: it serves no QUIC)."""
        if self.reuse_port:
            return self.tcp[index], self.udp[index] if self.udp else None
        return self.tcp[0], self.udp[0] if self.udp and index == 0 else None

    def close(self) -> None:
        """Close the supervisor's copies (workers keep theirs until they stop)."""
        for sock in (*self.tcp, *self.udp):
            sock.close()


def _udp_socket(
    family: socket.AddressFamily, host: str, port: int, *, reuse_port: bool
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _BindError(Exception):
    """A bind failed: where (``HOST:PORT`` or ``UDP HOST:PORT``) and why."""

    def __init__(self, where: str, cause: OSError) -> None:
        super().__init__(f"cannot listen on {where}: {cause}")


def _bind(
    family: socket.AddressFamily,
    host: str,
    port: int,
    count: int,
    *,
    udp: bool,
    reuse_port: bool,
) -> ListeningSockets:
    """One attempt of :func:`listening_sockets`.

    Raises:
        _BindError: a socket could not be bound (none is left open).
    """
    bound: list[socket.socket] = []
    where = f"{host}:{port}"
    try:
        if reuse_port:
            # A plain bind first: it fails where another server listens,
            # which a bind into a reuse-port group might not; for port 0
            # it picks a port that no one holds.
            with socket.create_server((host, port), family=family) as probe:
                port = probe.getsockname()[1]
                if udp:
                    where = f"UDP {host}:{port}"
                    _udp_socket(family, host, port, reuse_port=False).close()
        where = f"{host}:{port}"
        for _ in range(count if reuse_port else 1):
            bound.append(
                socket.create_server(
                    (host, port), family=family, backlog=BACKLOG, reuse_port=reuse_port
                )
            )
            port = bound[0].getsockname()[1]
        tcp = tuple(bound)
        where = f"UDP {host}:{port}"
        for _ in range(count if reuse_port else 1) if udp else ():
            bound.append(_udp_socket(family, host, port, reuse_port=reuse_port))
    except OSError as error:
        for sock in bound:
            sock.close()
        raise _BindError(where, error) from None
    return ListeningSockets(host, port, tcp, tuple(bound[len(tcp) :]), reuse_port)


def listening_sockets(
    host: str,
    port: int,
    count: int,
    *,
    udp: bool = False,
    reuse_port: bool | None = None,
) -> ListeningSockets:
    """Bind the sockets ``count`` workers serve ``host``:``port`` on.

    Args:
        host: the address to listen on.
        port: the port; 0 picks one free on TCP (and UDP with ``udp``).
        count: the number of workers.
        udp: also bind UDP sockets for QUIC, on the same port.
        reuse_port: one socket per worker with ``SO_REUSEPORT``, or one
            shared socket; default: :func:`reuse_port_balances`.

    Raises:
        ServeError: the port cannot be bound.
    """
    if reuse_port is None:
        reuse_port = reuse_port_balances()
    try:
        info = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port}: {error}") from None
    family = info[0][0]
    attempts = _PORT_ATTEMPTS if port == 0 else 1
    for attempt in range(attempts):
        try:
            return _bind(family, host, port, count, udp=udp, reuse_port=reuse_port)
        except _BindError as error:
            if attempt + 1 == attempts:
                raise ServeError(str(error)) from None
            # Port 0: the port chosen was taken on UDP, or just now; another.
    raise AssertionError("unreachable")  # pragma: no cover


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _summed(family: Metric) -> bool:
    return family.workers == "sum"


def _summed_counter(family: Metric) -> bool:
    return family.workers == "sum" and family.kind != "gauge"


def _supervisor_own(family: Metric) -> bool:
    return family.workers == "supervisor"


@dataclass(eq=False)
class _Worker:
    """One worker slot: the process in it now, and what it last said."""

    index: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = 0.0
    #: Bumped when a process leaves the slot, so a late answer is not
    #: counted for its successor.
    generation: int = 0
    snapshot: Snapshot | None = None
    #: The answer awaited to a ``metrics`` command (None: the process left).
    reply: asyncio.Future[Snapshot | None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def pid(self) -> int:
        """The pid of the process in the slot (0 if none)."""
        return self.process.pid if self.process is not None else 0

    def send(self, message: dict[str, Any]) -> None:
        """Queue a command to the worker (dropped if it is gone)."""
        writer = self.writer
        if writer is not None and not writer.is_closing():
            writer.write(encode_message(message))


class _Supervisor:
    """Starts, restarts, commands and sums up the workers (see the module)."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.sockets = ListeningSockets(*options.listen, tcp=())
        self.metrics = Metrics((*METRICS, *WORKER_METRICS))
        self.retired = Metrics(self.metrics.families)
        #: Every worker seals its session tickets with this one key.
        self.ticket_key = os.urandom(32)
        self.keyring = service_keyring(
            options, self.metrics, on_new_keys=self._reload_workers
        )
        self.workers = [_Worker(index) for index in range(options.workers)]
        self.stopping = asyncio.Event()
        self._keepers: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        try:
            self._stdout: int = sys.stderr.fileno()  # workers print nothing to ours
        except (AttributeError, OSError, ValueError):
            self._stdout = subprocess.DEVNULL

    # processes --------------------------------------------------------------------

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task that :meth:`stop` cancels."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, worker: _Worker) -> None:
        """Start a process in ``worker``'s slot and send it its spec."""
        ours, theirs = socket.socketpair()
        tcp, udp = self.sockets.for_worker(worker.index)
        fds = [theirs.fileno(), tcp.fileno()] + ([udp.fileno()] if udp else [])
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ech.serve.worker",
                str(theirs.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                pass_fds=fds,
                # Out of the terminal's process group: Ctrl-C reaches the
                # supervisor only, even while a worker starts up (before
                # it ignores SIGINT), and the supervisor forwards it once.
                process_group=0,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(
            sock=ours, limit=CONTROL_LIMIT
        )
        loop = asyncio.get_running_loop()
        worker.process, worker.writer = process, writer
        worker.started = loop.time()
        worker.ready.clear()
        spec = WorkerSpec(
            worker.index,
            self.options,
            tcp.fileno(),
            udp.fileno() if udp else None,
            logging.getLogger().getEffectiveLevel(),
            ticket_key=self.ticket_key,
        )
        worker.send(spec.to_json())
        if self.stopping.is_set():
            worker.send({"op": "stop"})
        self._background(self._listen(worker, reader, worker.generation))

    async def _listen(
        self, worker: _Worker, reader: asyncio.StreamReader, generation: int
    ) -> None:
        """Read what one worker process says until its channel closes."""
        while True:
            try:
                line = await reader.readline()
                if not line or worker.generation != generation:
                    return
                message = decode_message(line)
            except ValueError as error:  # not JSON, or a line over the limit
                log.error("worker %d: bad control message: %s", worker.index, error)
                continue
            except OSError as error:
                log.error("worker %d: control channel failed: %s", worker.index, error)
                return
            if message.get("event") == "ready":
                worker.ready.set()
                log.info("worker %d (pid %d) serving", worker.index, worker.pid)
                self._count_workers()
            elif isinstance(snapshot := message.get("metrics"), dict):
                worker.snapshot = snapshot
                if worker.reply is not None and not worker.reply.done():
                    worker.reply.set_result(snapshot)

    def _count_workers(self) -> None:
        serving = sum(1 for w in self.workers if w.ready.is_set())
        self.metrics.set("ech_workers", serving)

    def _gone(self, worker: _Worker) -> None:
        """The process in ``worker``'s slot exited: keep its counts, clear the slot."""
        if worker.snapshot is not None:
            try:
                self.retired.add(worker.snapshot, only=_summed_counter)
            except ValueError as error:
                log.error("worker %d: %s", worker.index, error)
        worker.generation += 1
        worker.snapshot = None
        worker.ready.clear()
        if worker.reply is not None and not worker.reply.done():
            worker.reply.set_result(None)
        if worker.writer is not None:
            worker.writer.close()
        worker.process = worker.writer = None
        self._count_workers()

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless the service is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def _keep(self, worker: _Worker) -> None:
        """Keep a process in ``worker``'s slot until the service stops."""
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY
        while True:
            if worker.process is None:
                try:
                    await self._spawn(worker)
                except OSError as error:
                    log.error("cannot start worker %d: %s", worker.index, error)
                    await self._pause(delay)
                    delay = min(delay * 2, RESTART_DELAY_MAX)
                    if self.stopping.is_set():
                        return
                    continue
            process = worker.process
            assert process is not None  # noqa: S101 - just spawned or running
            code = await process.wait()
            lived = loop.time() - worker.started
            pid = process.pid
            self._gone(worker)
            if self.stopping.is_set():
                return
            if lived >= HEALTHY_AFTER:
                delay = RESTART_DELAY
            self.metrics.inc("ech_worker_restarts_total")
            log.warning(
                "worker %d (pid %d) %s; restarting it in %g s",
                worker.index,
                pid,
                _exit_reason(code),
                delay,
            )
            await self._pause(delay)
            if self.stopping.is_set():
                return
            delay = min(delay * 2, RESTART_DELAY_MAX)

    async def start(self) -> None:
        """Start every worker and wait until all serve.

        Raises:
            ServeError: a worker exited, or did not serve in time.
        """
        try:
            for worker in self.workers:
                await self._spawn(worker)
            async with asyncio.timeout(STARTUP_TIMEOUT):
                for worker in self.workers:
                    await self._ready_or_exit(worker)
        except TimeoutError:
            await self._kill_all()
            raise ServeError(
                f"the workers did not start serving in {STARTUP_TIMEOUT:g} s"
            ) from None
        except BaseException:
            await self._kill_all()
            raise
        self._keepers = [
            asyncio.create_task(self._keep(worker)) for worker in self.workers
        ]
        self._background(self._refresh())

    async def _ready_or_exit(self, worker: _Worker) -> None:
        process = worker.process
        assert process is not None  # noqa: S101 - spawned by start()
        ready = asyncio.ensure_future(worker.ready.wait())
        exited = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            exited.cancel()
        if not worker.ready.is_set():
            code = await process.wait()
            raise ServeError(
                f"worker {worker.index} {_exit_reason(code)} before serving "
                "(its reason is logged above)"
            )

    async def _kill_all(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if worker.writer is not None:
                worker.writer.close()

    # orders --------------------------------------------------------------------------

    def _reload_workers(self) -> None:
        """The supervisor loaded a new valid key set: every worker reloads."""
        for worker in self.workers:
            worker.send({"op": "reload"})

    def hangup(self) -> None:
        """SIGHUP: reload the keys here, then (if they load) in every worker."""
        log.info("SIGHUP: reloading ECH keys")
        self.keyring.reload()

    async def stop(self, now: asyncio.Event) -> None:
        """Shut every worker down gracefully; ``now`` cuts their waiting short."""
        log.info("shutting down %d workers", len(self.workers))
        self.stopping.set()
        self.sockets.close()  # the ports close once the workers close theirs
        for worker in self.workers:
            worker.send({"op": "stop"})

        async def forward_now() -> None:
            await now.wait()
            for worker in self.workers:
                worker.send({"op": "stop_now"})

        forwarding = asyncio.create_task(forward_now())
        timeout = self.options.limits.shutdown_timeout
        # A worker waits up to the timeout on TCP, then on QUIC, then closes.
        deadline = 2 * timeout + 3 * CLOSE_TIMEOUT + 5.0
        try:
            if self._keepers:
                _, late = await asyncio.wait(self._keepers, timeout=deadline)
                if late:
                    stuck = [w for w in self.workers if w.process is not None]
                    log.error(
                        "killing %d worker(s) still running %g s after the signal",
                        len(stuck),
                        deadline,
                    )
                    for worker in stuck:
                        if worker.process is not None:
                            with contextlib.suppress(ProcessLookupError):
                                worker.process.kill()
                    await asyncio.wait(late, timeout=CLOSE_TIMEOUT)
        finally:
            forwarding.cancel()
            for task in list(self._tasks):
                task.cancel()
        log.info("stopped")

    # metrics ------------------------------------------------------------------------

    async def _ask(self, worker: _Worker) -> tuple[int, Snapshot | None]:
        """A fresh snapshot from ``worker`` (its last one if it is slow)."""
        async with worker.lock:
            generation = worker.generation
            if not worker.ready.is_set():
                return generation, None  # it exited; its counts are retired
            reply: asyncio.Future[Snapshot | None] = (
                asyncio.get_running_loop().create_future()
            )
            worker.reply = reply
            worker.send({"op": "metrics"})
            try:
                async with asyncio.timeout(METRICS_TIMEOUT):
                    return generation, await reply
            except TimeoutError:
                log.warning(
                    "worker %d: no metrics in %g s", worker.index, METRICS_TIMEOUT
                )
                return generation, worker.snapshot
            finally:
                worker.reply = None

    async def _refresh(self) -> None:
        """Keep recent snapshots, so a worker that dies leaves recent counts."""
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            serving = [w for w in self.workers if w.ready.is_set()]
            await asyncio.gather(*(self._ask(w) for w in serving))

    async def render(self) -> str:
        """The service's metrics: the workers' added up, the supervisor's own."""
        serving = [w for w in self.workers if w.ready.is_set()]
        answers = await asyncio.gather(*(self._ask(w) for w in serving))
        total = Metrics(self.metrics.families)
        total.add(self.retired.snapshot())
        for worker, (generation, snapshot) in zip(serving, answers, strict=True):
            # A worker that exited meanwhile is already in ``retired``.
            if snapshot is not None and worker.generation == generation:
                try:
                    total.add(snapshot, only=_summed)
                except ValueError as error:
                    log.error("worker %d: %s", worker.index, error)
        total.add(self.metrics.snapshot(), only=_supervisor_own)
        return total.render()


async def supervise(options: ServeOptions, say: Callable[[str], None]) -> None:
    """Run ``options.workers`` worker processes until SIGTERM or SIGINT.

    ``say`` gets ``listening on HOST:PORT`` (then ``metrics on`` and
    ``http3 on``) once every worker serves.

    Raises:
        ServeError: the configuration, the sockets or a worker's start fail.
    """
    supervisor = _Supervisor(options)  # loads the keys: fails before binding
    host, port = options.listen
    sockets = listening_sockets(host, port, options.workers, udp=options.http3)
    supervisor.sockets = sockets
    log.info(
        "starting %d workers on %s:%d (%s)",
        options.workers,
        sockets.host,
        sockets.port,
        "a socket each, SO_REUSEPORT" if sockets.reuse_port else "one shared socket",
    )
    try:
        await supervisor.start()
    except BaseException:
        sockets.close()
        raise
    stop = asyncio.Event()
    now = asyncio.Event()
    metrics_server: asyncio.Server | None = None
    try:
        if options.metrics is not None:
            try:
                metrics_server = await start_metrics_server(
                    supervisor.render, *options.metrics
                )
            except OSError as error:
                raise ServeError(f"cannot serve metrics: {error}") from None
    except BaseException:
        await supervisor.stop(now)
        raise

    loop = asyncio.get_running_loop()

    def on_stop() -> None:
        if stop.is_set():
            now.set()  # a second signal: do not wait for connections
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGHUP, supervisor.hangup)
    watcher = (
        asyncio.create_task(supervisor.keyring.watch(options.key_poll))
        if options.key_poll > 0 and supervisor.keyring.sources
        else None
    )
    say(f"listening on {sockets.host}:{sockets.port}")
    metrics_address: tuple[str, int] | None = None
    if metrics_server is not None:
        metrics_address = metrics_server.sockets[0].getsockname()[:2]
        say(f"metrics on {metrics_address[0]}:{metrics_address[1]}")
    if options.http3:
        say(f"http3 on {sockets.host}:{sockets.port}")
    print_summary(
        supervisor.keyring,
        options.certs,
        (sockets.host, sockets.port),
        http3=options.http3,
        doh_path=options.doh,
        metrics=metrics_address,
    )
    try:
        await stop.wait()
        await supervisor.stop(now)
    finally:
        if watcher is not None:
            watcher.cancel()
        if metrics_server is not None:
            metrics_server.close()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
