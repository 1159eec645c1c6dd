"""asyncio streams with ECH: ``ech.aio.open_streams`` instead of ``open_connection``.

Run: ``python examples/asyncio_streams.py https://secret.example:8443/
--doh https://127.0.0.1:8443/dns-query --ca ca.pem``
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from _args import parse

from ech import ClientConfig, DoHResolver
from ech.aio import open_streams


async def main() -> None:
    """GET / over a (StreamReader, StreamWriter) pair; ECH from the HTTPS record."""
    args = parse(__doc__ or "")
    url = urlsplit(args.url)
    host, port = url.hostname or "", url.port or 443
    config = ClientConfig(cafile=args.ca, alpn_protocols=("http/1.1",))
    with DoHResolver(args.doh, cafile=args.ca) as resolver:
        reader, writer = await open_streams(
            "127.0.0.1", port, config, host, resolver=resolver
        )
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    print((await reader.readline()).decode().strip())
    tls = writer.get_extra_info("ssl_object")
    print("ECH", tls.ech_status, "-", tls.ech_outcome.detail)
    writer.close()
    await writer.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
