"""A resolver of your own: every DoH query goes through ``exchange``.

Subclassing :class:`ech.DoHResolver` to log (or route, or pin) queries keeps
SVCB resolution, caching and ECH discovery as they are; any client of the
package takes it as ``resolver=``.

Run: ``python examples/custom_resolver.py https://secret.example:8443/
--doh https://127.0.0.1:8443/dns-query --ca ca.pem``
"""

from __future__ import annotations

import dns.message
import httpx
from _args import parse

from ech import DoHResolver
from ech.httpx import ECHTransport


class LoggingResolver(DoHResolver):
    """Prints each query it sends (the cache answers repeats)."""

    def exchange(self, query: dns.message.Message) -> dns.message.Message:
        """Log, then ask the DoH server."""
        question = query.question[0]
        print("DoH query:", question.name, dns.rdatatype.to_text(question.rdtype))
        return super().exchange(query)


def main() -> None:
    """GET the URL with ECH configs found by our resolver."""
    args = parse(__doc__ or "")
    with LoggingResolver(args.doh, cafile=args.ca, http_version="h2") as resolver:
        transport = ECHTransport(resolver=resolver, cafile=args.ca)
        with httpx.Client(transport=transport) as client:
            response = client.get(args.url)
    print(response.status_code, "ECH", response.extensions["ech_status"])


if __name__ == "__main__":
    main()
