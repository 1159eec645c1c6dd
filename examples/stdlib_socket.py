"""Code written for ``ssl`` with ECH: ``ECHClientContext.wrap_socket``.

The differences from ``ssl.create_default_context().wrap_socket`` are the
ECH configs (given, or from DoH) and what happens on a rejection: the
retry needs a new TCP connection, so pass ``socket_factory`` (as here) or
catch ``ech.ECHRejectedError`` and reconnect with its ``retry_configs``.

Run: ``python examples/stdlib_socket.py https://secret.example:8443/
--ech-config-list "$(cat ech.b64)" --ca ca.pem``
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from _args import parse

from ech import ECHClientContext, ECHConfigList


def main() -> None:
    """One HTTP/1.1 request through ``makefile``, as http.client-style code does."""
    args = parse(__doc__ or "")
    url = urlsplit(args.url)
    host, port = url.hostname or "", url.port or 443
    address = ("127.0.0.1", port)  # where this example's server runs
    context = ECHClientContext(args.ca, alpn_protocols=["http/1.1"])
    configs = ECHConfigList.from_base64(args.ech_config_list)
    sock = socket.create_connection(address)
    with context.wrap_socket(
        sock,
        server_hostname=host,
        ech_configs=configs,
        socket_factory=lambda: socket.create_connection(address),
    ) as tls:
        tls.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        with tls.makefile("rb") as response:
            print(response.readline().decode().strip())
        cipher = tls.cipher()
        print(tls.version(), cipher[0] if cipher else None)
        print("ECH", tls.ech_status, "retried" if tls.retried else "first try")
        cert = tls.getpeercert()
        if isinstance(cert, dict):
            print("certificate for", cert["subjectAltName"])


if __name__ == "__main__":
    main()
