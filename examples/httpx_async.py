"""httpx's AsyncClient with ECH: concurrent requests multiplexed over HTTP/2.

Run: ``python examples/httpx_async.py https://secret.example:8443/
--doh https://127.0.0.1:8443/dns-query --ca ca.pem``
"""

from __future__ import annotations

import asyncio

import httpx
from _args import parse

from ech.httpx import AsyncECHTransport


async def main() -> None:
    """Three concurrent GETs; print each status and ECH outcome."""
    args = parse(__doc__ or "")
    transport = AsyncECHTransport(doh=args.doh, cafile=args.ca, http2=True)
    async with httpx.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(*(client.get(args.url) for _ in range(3)))
    for response in responses:
        print(
            response.status_code,
            response.http_version,
            response.extensions["ech_status"],
        )


if __name__ == "__main__":
    asyncio.run(main())
