"""OpenSSL, through Python's ``ssl`` module, as a TLS 1.3 peer in a subprocess.

Python 3.11's ``ssl`` cannot choose TLS 1.3 cipher suites (there is no
``set_ciphersuites``; ``set_ciphers`` only touches TLS 1.2 and below), and
OpenSSL leaves TLS_AES_128_CCM_SHA256 and TLS_AES_128_CCM_8_SHA256 off by
default. OpenSSL reads its configuration file once, when the library
initialises, and applies the ``system_default`` section to every new
``SSL_CTX``: so a process started with ``OPENSSL_CONF`` pointing at a file
whose ``Ciphersuites`` line names the CCM suites gets them, through the
plain ``ssl`` API. :func:`openssl_conf` writes such a file; this module,
run as a script, is the peer:

    OPENSSL_CONF=conf python -m interop.openssl_peer server --cert C --key K
    OPENSSL_CONF=conf python -m interop.openssl_peer client --port P --ca CA

The server prints ``LISTENING <port>``, then for each connection one JSON
line (``cipher``, ``version``, ``received`` as hex); it echoes what it
reads until the client closes. The client sends ``--send`` (hex), reads the
echo, closes, and prints one JSON line. Groups and signature schemes can be
configured the same way (``Groups``, ``SignatureAlgorithms``), which
:func:`openssl_conf` also takes.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
from pathlib import Path


def openssl_conf(
    path: Path,
    *,
    ciphersuites: str | None = None,
    groups: str | None = None,
    signature_algorithms: str | None = None,
) -> Path:
    """Write an OpenSSL configuration whose ``system_default`` sets these.

    Each value uses OpenSSL's names, colon-separated, e.g.
    ``TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256``.
    """
    lines = [
        "openssl_conf = openssl_init",
        "[openssl_init]",
        "ssl_conf = ssl_sect",
        "[ssl_sect]",
        "system_default = system_default_sect",
        "[system_default_sect]",
        "MinProtocol = TLSv1.3",
    ]
    if ciphersuites is not None:
        lines.append(f"Ciphersuites = {ciphersuites}")
    if groups is not None:
        lines.append(f"Groups = {groups}")
    if signature_algorithms is not None:
        lines.append(f"SignatureAlgorithms = {signature_algorithms}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _emit(value: dict[str, object]) -> None:
    print(json.dumps(value), flush=True)


def _serve(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(cafile=args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(f"LISTENING {listener.getsockname()[1]}", flush=True)
        for _ in range(args.count):
            conn, _ = listener.accept()
            conn.settimeout(15)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    received = bytearray()
                    while data := tls.recv(65536):
                        received += data
                        tls.sendall(data)
                    cipher = tls.cipher()
                    _emit(
                        {
                            "cipher": cipher[0] if cipher else None,
                            "version": tls.version(),
                            "received": received.hex(),
                        }
                    )
            except (ssl.SSLError, OSError) as error:
                _emit({"error": str(error)})


def _connect(args: argparse.Namespace) -> None:
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    payload = bytes.fromhex(args.send)
    with (
        socket.create_connection(("127.0.0.1", args.port), timeout=15) as raw,
        ctx.wrap_socket(raw, server_hostname=args.sni) as tls,
    ):
        tls.sendall(payload)
        echoed = bytearray()
        while len(echoed) < len(payload):
            data = tls.recv(65536)
            if not data:
                break
            echoed += data
        cipher = tls.cipher()
        _emit(
            {
                "cipher": cipher[0] if cipher else None,
                "version": tls.version(),
                "echoed": bytes(echoed).hex(),
            }
        )
        tls.unwrap()


def main(argv: list[str] | None = None) -> None:
    """Run the server or client side (see the module docstring)."""
    parser = argparse.ArgumentParser(description="OpenSSL TLS 1.3 peer")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    server.add_argument("--client-ca")
    server.add_argument("--count", type=int, default=1)
    client = sub.add_parser("client")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--ca", required=True)
    client.add_argument("--sni", required=True)
    client.add_argument("--send", default=b"hello".hex())
    args = parser.parse_args(argv)
    if args.role == "server":
        _serve(args)
    else:
        _connect(args)


if __name__ == "__main__":
    main(sys.argv[1:])
