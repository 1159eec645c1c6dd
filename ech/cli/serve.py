"""``ech serve``: its flags, turned into :class:`ech.serve.app.ServeOptions`.

The running server is :mod:`ech.serve.app`; this module only parses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from ech.aio import Limits
from ech.arguments import backend, listen_address, non_negative, positive
from ech.serve.app import ServeError, ServeOptions, serve

__all__ = ["add_parser", "cmd_serve", "default_workers", "serve_options"]


def default_workers() -> int:
    """``--workers``' default: the CPUs this process may run on.

    ``os.cpu_count()``, narrowed to the CPUs the process is allowed
    (``taskset``, a container's cpuset) where the system says, as Python
    3.13's ``os.process_cpu_count()`` does. A CPU quota (``docker
    --cpus``) is not seen: give ``--workers`` there.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """The options the flags ask for (exits with a message for bad limits)."""
    try:
        limits = Limits(
            handshake_timeout=args.handshake_timeout,
            idle_timeout=args.idle_timeout,
            max_connections=args.max_connections,
            max_client_hello=args.max_client_hello,
            shutdown_timeout=args.shutdown_timeout,
        )
    except ValueError as error:
        raise SystemExit(f"ech serve: {error}") from None
    return ServeOptions(
        listen=args.listen,
        certs=tuple(Path(p) for p in args.cert),
        keys=tuple(Path(p) for p in args.key),
        ech_keys=tuple(Path(p) for p in args.ech_key),
        ech_key_dirs=tuple(args.ech_key_dir),
        key_poll=args.key_poll,
        trial_decryption=args.trial_decryption,
        doh=args.doh,
        require_ech=(tuple(args.require_ech) if args.require_ech is not None else None),
        metrics=args.metrics,
        limits=limits,
        backends=dict(args.backend),
        backend_mode=args.backend_mode,
        http3=args.http3,
        workers=args.workers if args.workers is not None else default_workers(),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a client-facing server until SIGTERM or SIGINT (exit status 0)."""
    try:
        asyncio.run(serve(serve_options(args)))
    except ServeError as error:
        raise SystemExit(f"ech serve: {error}") from None
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech serve`` and its flags."""
    parser = commands.add_parser("serve", help="run a client-facing server")
    parser.add_argument(
        "--listen", required=True, type=listen_address, metavar="HOST:PORT"
    )
    parser.add_argument("--cert", action="append", required=True, default=[])
    parser.add_argument("--key", action="append", required=True, default=[])
    parser.add_argument("--ech-key", action="append", default=[], metavar="KEY.pem")
    parser.add_argument(
        "--backend",
        action="append",
        default=[],
        type=backend,
        metavar="NAME=HOST:PORT",
        help="split mode: relay accepted hellos for NAME to this backend",
    )
    parser.add_argument(
        "--backend-mode",
        action="store_true",
        help="act as a split-mode backend: confirm ECH for inner hellos (§7.2)",
    )
    parser.add_argument(
        "--doh", metavar="PATH", help="also answer DoH (RFC 8484) at PATH for our names"
    )
    parser.add_argument(
        "--http3",
        action="store_true",
        help="also serve HTTP/3 over QUIC on UDP at the same HOST:PORT",
    )
    _add_service_flags(parser)
    parser.set_defaults(func=cmd_serve)


def _add_service_flags(parser: argparse.ArgumentParser) -> None:
    """Keys, limits, logs and shutdown of ``ech serve``."""
    defaults = Limits()
    parser.add_argument(
        "--workers",
        type=positive(int),
        metavar="N",
        help="serve with N processes on the port (default: one per CPU; "
        "1: this process only); limits apply to each",
    )
    parser.add_argument(
        "--ech-key-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="ECH keys: DIR/*.pem advertised, DIR/*.accept.pem accept-only",
    )
    parser.add_argument(
        "--key-poll",
        type=non_negative(float),
        default=5.0,
        metavar="SECONDS",
        help="reload ECH keys when their files change, checked this often "
        "(0: only on SIGHUP; default 5)",
    )
    parser.add_argument(
        "--trial-decryption",
        action="store_true",
        help="try every ECH key, not only those with the config_id (RFC 9849 §7.1)",
    )
    parser.add_argument(
        "--require-ech",
        nargs="*",
        metavar="NAME",
        help="refuse (unrecognized_name) handshakes to NAME without ECH; "
        "no NAME: every certificate name but the public names",
    )
    parser.add_argument(
        "--metrics",
        type=listen_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=positive(float),
        default=defaults.handshake_timeout,
        metavar="SECONDS",
        help="close a connection whose handshake takes longer (default %(default)g)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive(float),
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="close a connection idle this long (default %(default)g)",
    )
    parser.add_argument(
        "--max-connections",
        type=positive(int),
        default=defaults.max_connections,
        metavar="N",
        help="close connections beyond N at once, per worker (default %(default)d)",
    )
    parser.add_argument(
        "--max-client-hello",
        type=positive(int),
        default=defaults.max_client_hello,
        metavar="BYTES",
        help="refuse (decode_error) a longer ClientHello (default %(default)d)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=non_negative(float),
        default=defaults.shutdown_timeout,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, let connections finish this long "
        "(default %(default)g)",
    )
