"""``ech serve``: its flags, turned into :class:`ech.serve.app.ServeOptions`.

The running server is :mod:`ech.serve.app`; this module only parses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from ech.aio import Limits
from ech.arguments import (
    add_certificate_pairs,
    backend,
    client_ca_file,
    ech_key_file,
    key_directory,
    listen_address,
    non_negative,
    positive,
    protected_name,
    url_path,
    usage_error,
)
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
    """The options the flags ask for (exits with a message for bad limits).

    A split-mode backend (``--backend-mode``) is reached through its
    client-facing servers, so every connection comes from one of a few
    addresses: there the per-address limit is the whole of
    ``--max-connections`` unless given.
    """
    per_address = args.max_connections_per_address
    if per_address is None and args.backend_mode:
        per_address = args.max_connections
    try:
        limits = Limits(
            handshake_timeout=args.handshake_timeout,
            idle_timeout=args.idle_timeout,
            max_connections=args.max_connections,
            max_client_hello=args.max_client_hello,
            shutdown_timeout=args.shutdown_timeout,
            max_connections_per_address=per_address,
        )
    except ValueError as error:
        usage_error("serve", str(error))
    if len(args.cert) != len(args.key):
        usage_error(
            "serve",
            f"argument --key: give one --key for each --cert (got "
            f"{len(args.cert)} --cert and {len(args.key)} --key); the n-th "
            "--key is the n-th --cert's",
        )
    if args.require_client_cert and args.client_ca is None:
        usage_error(
            "serve",
            "argument --require-client-cert: needs --client-ca CA.pem, the CAs "
            "that issue client certificates",
        )
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
        request_head_timeout=args.request_head_timeout,
        client_ca=Path(args.client_ca) if args.client_ca is not None else None,
        require_client_certificate=args.require_client_cert,
        early_data=args.early_data,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a client-facing server until SIGTERM or SIGINT (exit status 0)."""
    try:
        asyncio.run(serve(serve_options(args)))
    except ServeError as error:
        raise SystemExit(f"ech serve: {error}") from None
    return 0


EXAMPLES = """\
example:
  ech serve --listen 127.0.0.1:8443 --cert public.pem --key public.key \\
      --cert secret.pem --key secret.key --ech-key ech.pem --doh /dns-query

exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start, 2 for a
wrong command line (a missing or malformed file among them).
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech serve`` and its flags."""
    parser = commands.add_parser(
        "serve",
        help="run a client-facing server",
        description="A client-facing ECH server (shared mode): certificates "
        "chosen by SNI, ECH keys decrypted, a JSON status page for each "
        "request. Runs until SIGTERM or SIGINT.",
        epilog=EXAMPLES,
    )
    parser.add_argument(
        "--listen",
        required=True,
        type=listen_address,
        metavar="HOST:PORT",
        help="where to listen (port 0: a free one)",
    )
    add_certificate_pairs(
        parser,
        cert_help="certificate chain, leaf first; repeat with --key for more names",
        key_help="the private key of the --cert given in the same place (mode 0600)",
    )
    parser.add_argument(
        "--ech-key",
        action="append",
        default=[],
        type=ech_key_file,
        metavar="KEY.pem",
        help="an ECH key file (ech keygen -o), advertised in retry_configs; repeat "
        "for more",
    )
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
        "--doh",
        type=url_path,
        metavar="PATH",
        help="also answer DoH (RFC 8484) at PATH for our names",
    )
    parser.add_argument(
        "--http3",
        action="store_true",
        help="also serve HTTP/3 over QUIC on UDP at the same HOST:PORT",
    )
    parser.add_argument(
        "--client-ca",
        type=client_ca_file,
        metavar="CA.pem",
        help="ask clients for a certificate issued by these CAs (RFC 8446 §4.3.2)",
    )
    parser.add_argument(
        "--require-client-cert",
        action="store_true",
        help="refuse clients without one (certificate_required); needs --client-ca",
    )
    parser.add_argument(
        "--early-data",
        type=_early_data_size,
        default=0,
        metavar="BYTES",
        help="accept this much 0-RTT data on a resumed connection (RFC 8446 "
        "§4.2.10; 0, the default: none); answered after the handshake",
    )
    _add_service_flags(parser)
    parser.set_defaults(func=cmd_serve)


def _early_data_size(text: str) -> int:
    """``--early-data``: a uint32 (RFC 8446 §4.6.1, max_early_data_size)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 1 << 32:
        raise argparse.ArgumentTypeError(
            f"expected a number of bytes from 0 (off) to {(1 << 32) - 1}, got {text!r}"
        )
    return value


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
        type=key_directory,
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
        type=protected_name,
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
        "--max-connections-per-address",
        type=positive(int),
        metavar="N",
        help="close connections from one client address (IPv6: its /64) beyond "
        "N at once, per worker (default: half of --max-connections; all of it "
        "with --backend-mode)",
    )
    parser.add_argument(
        "--request-head-timeout",
        type=positive(float),
        default=10.0,
        metavar="SECONDS",
        help="close a connection without a complete HTTP request head this long "
        "after the handshake, over HTTP/1.1, HTTP/2 and HTTP/3 (default %(default)g)",
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
