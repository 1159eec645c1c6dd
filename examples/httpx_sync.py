"""httpx with ECH: the HTTPS record over DoH, HTTP/2 by ALPN, one pooled connection.

Run: ``python examples/httpx_sync.py https://secret.example:8443/
--doh https://127.0.0.1:8443/dns-query --ca ca.pem``
"""

from __future__ import annotations

import httpx
from _args import parse

from ech.httpx import ECHTransport


def main() -> None:
    """GET the URL twice on one connection and say what ECH did."""
    args = parse(__doc__ or "")
    transport = ECHTransport(doh=args.doh, cafile=args.ca, http2=True)
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            response = client.get(args.url)
            ext = response.extensions
            print(
                response.status_code,
                response.http_version,
                ext["ech_status"],
                f"(the network saw {ext['outer_server_name']})",
            )
        print("why:", ext["ech_detail"])


if __name__ == "__main__":
    main()
