"""The ``ech`` command line: keygen, serve, connect, demo.

The flags and the ``--json`` field names are a contract scripts rely on; see
README.md. Exit status is 0 only when the command did what was asked.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ech import hpke
from ech.aio import TLSStream, start_server
from ech.blocking import connect as tls_connect
from ech.client.config import ClientConfig
from ech.config import ECHConfigList, InvalidECHConfigList
from ech.errors import ECHRejectedError, TLSError
from ech.events import ECHStatus
from ech.keys import generate_ech_key, load_ech_key, write_ech_key
from ech.server.config import ServerConfig
from ech.server.status_page import serve_status, status_fields

if TYPE_CHECKING:
    from ech.dns.resolver import DoHResolver
from ech.tls.certificates import CertifiedKey

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
    """Write an RFC 9934 ECH key file and print its base64 ECHConfigList."""
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


# serve ----------------------------------------------------------------------


def _server_config(args: argparse.Namespace) -> ServerConfig:
    if len(args.cert) != len(args.key):
        raise SystemExit("ech serve: give one --key for each --cert")
    try:
        certificates = tuple(
            CertifiedKey.load(cert, key)
            for cert, key in zip(args.cert, args.key, strict=True)
        )
        ech_keys = tuple(load_ech_key(path) for path in args.ech_key)
    except (ValueError, OSError) as error:
        raise SystemExit(f"ech serve: {error}") from None
    for ech_key in ech_keys:
        name = ech_key.config.public_name
        if not any(c.matches(name) for c in certificates):
            # RFC 9849 §8.1: without it, rejected clients cannot recover.
            log.warning("no certificate names public_name %s: retries will fail", name)
    # With DoH, HTTP/2 comes first: BIND-style DoH clients speak only h2.
    alpn = ("h2", "http/1.1") if args.doh else ("http/1.1",)
    return ServerConfig(
        certificates=certificates, alpn_protocols=alpn, ech_keys=ech_keys
    )


def _common_suffix(names: list[str]) -> str:
    """The longest DNS suffix all ``names`` share (``.`` if none)."""
    labels = [name.lower().rstrip(".").split(".")[::-1] for name in names]
    common: list[str] = []
    for parts in zip(*labels, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(reversed(common)) + "." if common else "."


async def _serve(config: ServerConfig, host: str, port: int, doh: str | None) -> None:
    listener = socket.create_server((host, port))
    bound_host, bound_port = listener.getsockname()[:2]
    serve: Callable[[TLSStream], Awaitable[None]] = serve_status
    if doh is not None:
        serve = _doh_handler(config, doh, bound_host, bound_port)

    async def handler(stream: TLSStream) -> None:
        fields = status_fields(stream.negotiated)
        log.info("handshake %s", json.dumps(fields, sort_keys=True))
        try:
            await serve(stream)
        except (TLSError, OSError) as error:
            log.info("connection ended: %s", error)

    server = await start_server(handler, None, None, config, sock=listener)
    print(f"listening on {bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _doh_handler(
    config: ServerConfig, path: str, host: str, port: int
) -> Callable[[TLSStream], Awaitable[None]]:
    """DoH (HTTP/2 or 1.1) for the names we serve, the status page elsewhere.

    The HTTPS records are built from the current ECH keys at query time.
    """
    from ech.dns.doh_server import HTTPResponse, Zone, serve_doh, serve_doh_http1

    names = sorted({n for c in config.certificates for n in c.dns_names})
    zone = Zone(
        _common_suffix(names),
        lambda: config.retry_configs,
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


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a client-facing server answering HTTP/1.1 with the status page."""
    host, port = args.listen
    asyncio.run(_serve(_server_config(args), host, port, args.doh))
    return 0


# connect --------------------------------------------------------------------


def _resolver(args: argparse.Namespace) -> DoHResolver | None:
    if not args.doh:
        return None
    from ech.dns.resolver import DoHResolver

    return DoHResolver(args.doh, cafile=args.ca)


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
    try:
        with tls_connect(
            host,
            port,
            config,
            args.sni,
            ech_configs=args.ech_config_list,
            ech_retry=not args.no_retry,
            resolver=_resolver(args),
        ) as tls:
            result.update(status_fields(tls.negotiated))
            result["retried"] = tls.retried
            if tls.retry_configs is not None:
                result["retry_configs"] = tls.retry_configs.to_base64()
            request = f"GET / HTTP/1.1\r\nHost: {args.sni}\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            response = bytearray()
            while chunk := tls.recv():
                response += chunk
            head, _, body = bytes(response).partition(b"\r\n\r\n")
            result["http_status"] = head.split(b"\r\n", 1)[0].decode("latin-1")
            try:
                result["server_view"] = json.loads(body)
            except ValueError:
                result["body"] = body.decode("utf-8", "replace")
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
    keygen.add_argument("-o", "--output", required=True, type=Path)
    keygen.set_defaults(func=cmd_keygen)

    serve = commands.add_parser("serve", help="run a client-facing server")
    serve.add_argument("--listen", required=True, type=_host_port, metavar="HOST:PORT")
    serve.add_argument("--cert", action="append", required=True, default=[])
    serve.add_argument("--key", action="append", required=True, default=[])
    serve.add_argument("--ech-key", action="append", default=[], metavar="KEY.pem")
    serve.add_argument(
        "--doh", metavar="PATH", help="also answer DoH (RFC 8484) at PATH for our names"
    )
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


def _dns_command(name: str) -> Callable[[argparse.Namespace], int]:
    """Dispatch to :mod:`ech.dns.commands`, imported only when used."""

    def run(args: argparse.Namespace) -> int:
        from ech.dns import commands

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
