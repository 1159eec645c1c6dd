"""One worker process of ``ech serve --workers N``, and how its supervisor talks to it.

The supervisor (:mod:`ech.serve.workers`) starts each worker as
``python -m ech.serve.worker FD``: FD is the worker's end of a Unix
socketpair, the *control channel*; the worker's listening sockets are
inherited too, and named in the first message. The channel carries one
JSON object per line.

Supervisor to worker:

* first, the :class:`WorkerSpec`: ``{"worker": 1, "options": {...},
  "tcp_fd": 4, "udp_fd": 5, "log_level": 20, "ticket_key": "..."}`` (the
  :class:`~ech.serve.app.ServeOptions` as :meth:`~ech.serve.app.
  ServeOptions.to_json` writes them; the session ticket key all workers
  share, in hex: a secret, which is why it travels here and nowhere else);
* then commands: ``{"op": "metrics"}`` (answered with a snapshot),
  ``{"op": "reload"}`` (read the ECH keys again), ``{"op": "stop"}``
  (graceful shutdown, as SIGTERM is to a single process) and
  ``{"op": "stop_now"}`` (as a second signal).

Worker to supervisor: ``{"event": "ready"}`` once it accepts connections,
and ``{"metrics": SNAPSHOT}`` for each ``metrics`` command
(:meth:`ech.serve.metrics.Metrics.snapshot`).

Why a channel rather than signals: a worker ignores SIGINT, SIGTERM and
SIGHUP and takes orders from its supervisor only. Ctrl-C in a terminal
signals the whole process group, and systemd's default ``KillMode``
signals every process of the service; if workers obeyed those as well as
the supervisor's forwarded copy, one SIGTERM would arrive twice and count
as the second signal that skips the graceful wait. The channel also tells
a worker that its supervisor is gone (end of file): it then shuts down
gracefully instead of serving on unsupervised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ech.serve.app import (
    ServeError,
    ServeOptions,
    service_keyring,
    start_service,
    stop_service,
)
from ech.serve.connection_log import ConnectionLog
from ech.serve.gc_policy import serving_gc
from ech.serve.keyring import Keyring
from ech.serve.metrics import Metrics

__all__ = [
    "CONTROL_LIMIT",
    "WorkerSpec",
    "decode_message",
    "encode_message",
    "main",
    "run_worker",
]

log = logging.getLogger("ech.serve")

#: The longest control message (a metrics snapshot is a few KiB).
CONTROL_LIMIT: Final = 1 << 20
#: The worker's log format: the ``ech`` command's, tagged with the worker.
_LOG_FORMAT: Final = "%(asctime)s %(name)s %(levelname)s [worker {index}] %(message)s"


def encode_message(message: dict[str, Any]) -> bytes:
    """One control message: a JSON object on one line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_message(line: bytes) -> dict[str, Any]:
    """The JSON object on one control line.

    Raises:
        ValueError: the line is not a JSON object.
    """
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"a control message is a JSON object, got {line[:80]!r}")
    return message


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker is told first: who it is, what to serve, and where.

    Attributes:
        index: the worker's number, 0 to N-1 (its slot; a restarted worker
            keeps it).
        options: the service's options.
        tcp_fd: the inherited listening TCP socket.
        udp_fd: the inherited UDP socket for QUIC, or None.
        log_level: the supervisor's logging level.
        ticket_key: the session ticket key every worker shares, so that a
            ticket resumes at any of them; None: the worker's own.
    """

    index: int
    options: ServeOptions
    tcp_fd: int
    udp_fd: int | None
    log_level: int = logging.INFO
    ticket_key: bytes | None = dataclasses.field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The spec as the first control message."""
        key = self.ticket_key
        return {
            "worker": self.index,
            "options": self.options.to_json(),
            "tcp_fd": self.tcp_fd,
            "udp_fd": self.udp_fd,
            "log_level": self.log_level,
            "ticket_key": key.hex() if key is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSpec:
        """The spec :meth:`to_json` wrote.

        Raises:
            ValueError: ``data`` is not what :meth:`to_json` writes.
        """
        try:
            udp_fd = data["udp_fd"]
            key = data["ticket_key"]
            return cls(
                index=int(data["worker"]),
                options=ServeOptions.from_json(data["options"]),
                tcp_fd=int(data["tcp_fd"]),
                udp_fd=int(udp_fd) if udp_fd is not None else None,
                log_level=int(data["log_level"]),
                ticket_key=bytes.fromhex(key) if key is not None else None,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"bad worker spec: {error!r}") from None


class _Orders:
    """The worker's side of the control channel: obey, answer, notice the end."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keyring: Keyring,
        metrics: Metrics,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.keyring = keyring
        self.metrics = metrics
        self.stop = asyncio.Event()
        self.now = asyncio.Event()

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message to the supervisor (dropped if it is gone)."""
        if not self.writer.is_closing():
            self.writer.write(encode_message(message))

    def _stop(self, *, now: bool) -> None:
        if self.stop.is_set() or now:
            self.now.set()
        self.stop.set()

    async def follow(self) -> None:
        """Carry out commands until the supervisor closes the channel."""
        try:
            while line := await self.reader.readline():
                try:
                    op = decode_message(line).get("op")
                except ValueError as error:
                    log.error("bad control message: %s", error)
                    continue
                if op == "metrics":
                    self.send({"metrics": self.metrics.snapshot()})
                    await self.writer.drain()
                elif op == "reload":
                    self.keyring.reload()
                elif op == "stop":
                    self._stop(now=False)
                elif op == "stop_now":
                    self._stop(now=True)
                else:
                    log.error("unknown control command %r", op)
        except (OSError, ValueError) as error:  # ValueError: a line over the limit
            log.error("control channel failed: %s", error)
        if not self.stop.is_set():
            log.warning("supervisor gone: shutting down")
            self._stop(now=False)


async def run_worker(control: socket.socket) -> None:
    """Serve as the supervisor's :class:`WorkerSpec` says until told to stop.

    Raises:
        ServeError: the keys or certificates cannot be loaded, or QUIC
            cannot start.
        ValueError: the first message is not a spec.
    """
    reader, writer = await asyncio.open_unix_connection(
        sock=control, limit=CONTROL_LIMIT
    )
    spec = WorkerSpec.from_json(decode_message(await reader.readline()))
    logging.basicConfig(
        level=spec.log_level,
        format=_LOG_FORMAT.format(index=spec.index),
        stream=sys.stderr,
        force=True,
    )
    options = spec.options
    metrics = Metrics()
    # The supervisor audited the files (warnings once, not once per worker).
    keyring = service_keyring(options, metrics, ticket_key=spec.ticket_key, audit=False)
    listener = socket.socket(fileno=spec.tcp_fd)
    udp = socket.socket(fileno=spec.udp_fd) if spec.udp_fd is not None else None
    limits = options.limits
    observer = ConnectionLog(
        metrics,
        max_connections=limits.max_connections,
        per_address=limits.per_address,
        worker=spec.index,
    )
    service = await start_service(
        options, keyring, observer, listener, udp=udp, quic=udp is not None
    )
    orders = _Orders(reader, writer, keyring, metrics)
    following = asyncio.create_task(orders.follow())
    orders.send({"event": "ready"})
    try:
        with serving_gc():
            await orders.stop.wait()
            await stop_service(service, options.limits.shutdown_timeout, orders.now)
    finally:
        following.cancel()
        writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ech.serve.worker FD``: run one worker (the supervisor does this).

    Returns:
        0 after a graceful shutdown, 1 when it cannot serve (the reason is
        on stderr), 2 when started wrongly.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print(
            "usage: python -m ech.serve.worker FD (started by ech serve --workers)",
            file=sys.stderr,
        )
        return 2
    # Orders come from the supervisor, over the channel (see the module docstring).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        control = socket.socket(fileno=int(args[0]))
        asyncio.run(run_worker(control))
    except (ServeError, ValueError, OSError) as error:
        print(f"ech serve: worker: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
