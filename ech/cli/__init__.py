"""The ``ech`` command line: keygen, serve, connect, demo.

The flags and the ``--json`` field names are a contract scripts rely on; see
README.md. Exit status is 0 only when the command did what was asked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ech import hpke
from ech.aio import Limits
from ech.blocking import connect as tls_connect
from ech.client.config import ClientConfig
from ech.config import ECHConfigList, InvalidECHConfigList
from ech.errors import ECHRejectedError, TLSError
from ech.events import ECHStatus
from ech.http import fetch
from ech.keys import generate_ech_key, write_ech_key
from ech.serve.app import ServeError, ServeOptions, serve
from ech.serve.keyring import KeyringError, rotate
from ech.serve.status_page import status_fields

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver

KEMS: dict[str, int] = {
    "x25519": hpke.KEM.DHKEM_X25519_HKDF_SHA256,
    "p256": hpke.KEM.DHKEM_P256_HKDF_SHA256,
    "p384": hpke.KEM.DHKEM_P384_HKDF_SHA384,
    "p521": hpke.KEM.DHKEM_P521_HKDF_SHA512,
    "x448": hpke.KEM.DHKEM_X448_HKDF_SHA512,
    # Post-quantum, draft-ietf-hpke-pq: Go 1.27 takes them; BoringSSL-based
    # clients use only X25519 configs, so publish one of those too.
    "mlkem768": hpke.KEM.ML_KEM_768,
    "mlkem1024": hpke.KEM.ML_KEM_1024,
    "x25519mlkem768": hpke.KEM.MLKEM768_X25519,
    "mlkem768p256": hpke.KEM.MLKEM768_P256,
    "mlkem1024p384": hpke.KEM.MLKEM1024_P384,
}

log = logging.getLogger("ech")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _backend(text: str) -> tuple[str, tuple[str, int]]:
    """``NAME=HOST:PORT`` of ``--backend``."""
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT, got {text!r}")
    return name.lower().rstrip("."), _host_port(address)


def _config_list(text: str) -> ECHConfigList:
    """Base64 text, or ``@FILE`` holding it."""
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        return ECHConfigList.from_base64(text)
    except (OSError, InvalidECHConfigList) as error:
        raise argparse.ArgumentTypeError(f"bad ECHConfigList: {error}") from None


# keygen ---------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write an RFC 9934 ECH key file and print its base64 ECHConfigList.

    With ``--rotate DIR``, rotate the keys of a key directory instead (see
    :mod:`ech.serve.keyring`) and print the configs to publish.
    """
    if args.rotate is not None:
        return _rotate(args)
    if args.output is None:
        raise SystemExit("ech keygen: give -o FILE, or --rotate DIR")
    if args.keep is not None or args.retire_after is not None:
        raise SystemExit("ech keygen: --keep and --retire-after need --rotate")
    try:
        key = generate_ech_key(
            args.public_name,
            kem_id=KEMS[args.kem],
            config_id=args.config_id,
            maximum_name_length=args.max_name_length,
        )
        write_ech_key(args.output, key)
    except (ValueError, OSError) as error:
        raise SystemExit(f"ech keygen: {error}") from None
    print(ECHConfigList((key.config,)).to_base64())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    if args.output is not None:
        raise SystemExit("ech keygen: give -o FILE or --rotate DIR, not both")
    try:
        rotation = rotate(
            args.rotate,
            args.public_name,
            kem_id=KEMS[args.kem],
            config_id=args.config_id,
            maximum_name_length=args.max_name_length,
            keep=args.keep,
            retire_after=args.retire_after,
        )
    except (KeyringError, ValueError, OSError) as error:
        raise SystemExit(f"ech keygen: {error}") from None
    config_id = rotation.key.config.config_id
    print(f"advertised: {rotation.path} (config_id {config_id})", file=sys.stderr)
    for path in rotation.demoted:
        print(f"accept-only: {path}", file=sys.stderr)
    for path in rotation.removed:
        print(f"removed: {path}", file=sys.stderr)
    print(rotation.published.to_base64())
    return 0


# serve ----------------------------------------------------------------------


def _serve_options(args: argparse.Namespace) -> ServeOptions:
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
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a client-facing server until SIGTERM or SIGINT (see :mod:`ech.serve.app`)."""
    try:
        asyncio.run(serve(_serve_options(args)))
    except ServeError as error:
        raise SystemExit(f"ech serve: {error}") from None
    return 0


# connect --------------------------------------------------------------------


def _expected_status(args: argparse.Namespace, tls_status: str | None) -> ECHStatus:
    if args.ech_config_list is not None:
        return ECHStatus.ACCEPTED
    if args.doh:  # the record decides: ECH if it has configs, GREASE if not
        grease = tls_status == str(ECHStatus.GREASE)
        return ECHStatus.GREASE if grease else ECHStatus.ACCEPTED
    return ECHStatus.GREASE if args.grease else ECHStatus.NOT_OFFERED


def cmd_connect(args: argparse.Namespace) -> int:
    """Handshake, GET /, report the outcome."""
    host, port = args.address
    config = ClientConfig(
        cafile=args.ca, alpn_protocols=("http/1.1",), ech_grease=args.grease
    )
    result: dict[str, object] = {
        "ech_status": None,
        "retried": False,
        "retry_configs": None,
    }
    status = 1
    resolver: DoHResolver | None = None
    if args.doh:
        from ech.cli.dns import open_resolver

        resolver = open_resolver(args)
    try:
        with tls_connect(
            host,
            port,
            config,
            args.sni,
            ech_configs=args.ech_config_list,
            ech_retry=not args.no_retry,
            resolver=resolver,
        ) as tls:
            result.update(status_fields(tls.negotiated))
            result["retried"] = tls.retried
            if tls.retry_configs is not None:
                result["retry_configs"] = tls.retry_configs.to_base64()
            response = fetch(tls, "/", host=args.sni)
            result["http_status"] = response.status_line
            try:
                result["server_view"] = json.loads(response.body)
            except ValueError:
                result["body"] = response.body.decode("utf-8", "replace")
        tls_status = str(result["ech_status"])
        if tls_status == str(_expected_status(args, tls_status)):
            status = 0
    except ECHRejectedError as rejection:
        result["ech_status"] = str(ECHStatus.REJECTED)
        result["outer_server_name"] = rejection.public_name
        if rejection.retry_configs is not None:
            result["retry_configs"] = rejection.retry_configs.to_base64()
        result["error"] = str(rejection)
    except (TLSError, OSError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        if resolver is not None:
            resolver.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            if name != "server_view":
                print(f"{name:>18}: {value}")
        if "server_view" in result:
            print(f"{'server saw':>18}: {json.dumps(result['server_view'])}")
    return status


# demo -----------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """The loopback ECH demo."""
    from ech.demo import run

    return run()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ech`` command."""
    parser = argparse.ArgumentParser(
        prog="ech", description="TLS 1.3 with Encrypted Client Hello (RFC 9849)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="make an ECH key file (RFC 9934 PEM)")
    keygen.add_argument("--public-name", required=True)
    keygen.add_argument("--kem", choices=sorted(KEMS), default="x25519")
    keygen.add_argument("--config-id", type=int, choices=range(256), metavar="N")
    keygen.add_argument("--max-name-length", type=int, default=0, metavar="N")
    keygen.add_argument("-o", "--output", type=Path)
    keygen.add_argument(
        "--rotate",
        type=Path,
        metavar="DIR",
        help="add an advertised key to key directory DIR, demote the others "
        "to accept-only (*.accept.pem); prints the configs to publish",
    )
    retire = keygen.add_mutually_exclusive_group()
    retire.add_argument(
        "--keep",
        type=_non_negative(int),
        metavar="N",
        help="with --rotate: keep the N newest accept-only keys, drop older ones",
    )
    retire.add_argument(
        "--retire-after",
        type=_non_negative(float),
        metavar="SECONDS",
        help="with --rotate: drop accept-only keys demoted longer ago "
        "(at least the HTTPS record's TTL)",
    )
    keygen.set_defaults(func=cmd_keygen)

    serve = commands.add_parser("serve", help="run a client-facing server")
    serve.add_argument("--listen", required=True, type=_host_port, metavar="HOST:PORT")
    serve.add_argument("--cert", action="append", required=True, default=[])
    serve.add_argument("--key", action="append", required=True, default=[])
    serve.add_argument("--ech-key", action="append", default=[], metavar="KEY.pem")
    serve.add_argument(
        "--backend",
        action="append",
        default=[],
        type=_backend,
        metavar="NAME=HOST:PORT",
        help="split mode: relay accepted hellos for NAME to this backend",
    )
    serve.add_argument(
        "--backend-mode",
        action="store_true",
        help="act as a split-mode backend: confirm ECH for inner hellos (§7.2)",
    )
    serve.add_argument(
        "--doh", metavar="PATH", help="also answer DoH (RFC 8484) at PATH for our names"
    )
    _add_serve_service_flags(serve)
    serve.set_defaults(func=cmd_serve)

    conn = commands.add_parser("connect", help="connect, GET /, report")
    conn.add_argument("address", type=_host_port, metavar="HOST:PORT")
    conn.add_argument("--sni", required=True)
    conn.add_argument("--ech-config-list", type=_config_list, metavar="B64|@FILE")
    conn.add_argument("--ca", metavar="CA.pem")
    conn.add_argument("--grease", action="store_true")
    conn.add_argument("--no-retry", action="store_true")
    conn.add_argument("--json", action="store_true")
    conn.add_argument(
        "--doh", metavar="URL", help="look up the ECH configs over DoH (RFC 8484)"
    )
    conn.set_defaults(func=cmd_connect)

    demo = commands.add_parser("demo", help="a loopback ECH session, explained")
    demo.set_defaults(func=cmd_demo)
    _add_dns_commands(commands)
    return parser


def _non_negative(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return value

    return parse


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _non_negative(kind)(text)
        if value == 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


def _add_serve_service_flags(serve: argparse.ArgumentParser) -> None:
    """Keys, limits, logs and shutdown of ``ech serve`` (ech.serve.app)."""
    defaults = Limits()
    serve.add_argument(
        "--ech-key-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="ECH keys: DIR/*.pem advertised, DIR/*.accept.pem accept-only",
    )
    serve.add_argument(
        "--key-poll",
        type=_non_negative(float),
        default=5.0,
        metavar="SECONDS",
        help="reload ECH keys when their files change, checked this often "
        "(0: only on SIGHUP; default 5)",
    )
    serve.add_argument(
        "--trial-decryption",
        action="store_true",
        help="try every ECH key, not only those with the config_id (RFC 9849 §7.1)",
    )
    serve.add_argument(
        "--require-ech",
        nargs="*",
        metavar="NAME",
        help="refuse (unrecognized_name) handshakes to NAME without ECH; "
        "no NAME: every certificate name but the public names",
    )
    serve.add_argument(
        "--metrics",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics",
    )
    serve.add_argument(
        "--handshake-timeout",
        type=_positive(float),
        default=defaults.handshake_timeout,
        metavar="SECONDS",
        help="close a connection whose handshake takes longer (default %(default)g)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="close a connection idle this long (default %(default)g)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive(int),
        default=defaults.max_connections,
        metavar="N",
        help="close connections beyond N at once (default %(default)d)",
    )
    serve.add_argument(
        "--max-client-hello",
        type=_positive(int),
        default=defaults.max_client_hello,
        metavar="BYTES",
        help="refuse (decode_error) a longer ClientHello (default %(default)d)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=_non_negative(float),
        default=defaults.shutdown_timeout,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, let connections finish this long "
        "(default %(default)g)",
    )


def _dns_command(name: str) -> Callable[[argparse.Namespace], int]:
    """Dispatch to :mod:`ech.cli.dns`, imported only when used."""

    def run(args: argparse.Namespace) -> int:
        from ech.cli import dns as commands

        status: int = getattr(commands, name)(args)
        return status

    return run


def _add_dns_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    dig = commands.add_parser("dig", help="look up and decode HTTPS records (DoH)")
    dig.add_argument("name")
    dig.add_argument("--port", type=int, default=443)
    dig.add_argument("--doh", metavar="URL", help="DoH resolver URL (RFC 8484)")
    dig.add_argument("--ca", metavar="FILE", help="CA file for the DoH server")
    dig.add_argument("--json", action="store_true")
    dig.set_defaults(func=_dns_command("cmd_dig"))

    get = commands.add_parser("get", help="discover ECH over DoH and GET a URL")
    get.add_argument("url")
    get.add_argument("--doh", metavar="URL", help="DoH resolver URL (RFC 8484)")
    get.add_argument("--ca", metavar="FILE", help="CA file for DoH and the server")
    get.add_argument("--json", action="store_true")
    get.set_defaults(func=_dns_command("cmd_get"))

    record = commands.add_parser("dns-record", help="the HTTPS record to publish")
    record.add_argument("name")
    record.add_argument("--ech-key", action="append", required=True, metavar="KEY.pem")
    record.add_argument("--port", type=int, default=443)
    record.add_argument("--alpn", action="append", metavar="ID")
    record.add_argument("--ipv4hint", action="append", metavar="ADDRESS")
    record.add_argument("--ipv6hint", action="append", metavar="ADDRESS")
    record.set_defaults(func=_dns_command("cmd_dns_record"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ech`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO
        if args.verbose or args.command == "serve"
        else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
