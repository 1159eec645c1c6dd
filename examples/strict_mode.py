"""Strict ECH: connect only with ECH accepted, never with the name in clear.

Without usable ECH configs the transport refuses before sending anything
(``ech.ECHUnavailableError``, the ``__cause__`` of httpx's ConnectError)
instead of falling back to GREASE, which shows the real name.

Run: ``python examples/strict_mode.py https://secret.example:8443/
--doh https://127.0.0.1:8443/dns-query --ca ca.pem``
"""

from __future__ import annotations

import httpx
from _args import parse

from ech import ECHUnavailableError
from ech.httpx import ECHTransport


def main() -> None:
    """One request that must fail (no configs at all), one that must use ECH."""
    args = parse(__doc__ or "")
    nothing = ECHTransport(cafile=args.ca, require_ech=True)  # no DoH, no configs
    with httpx.Client(transport=nothing) as client:
        try:
            client.get(args.url)
        except httpx.ConnectError as error:
            cause = error.__cause__
            if not isinstance(cause, ECHUnavailableError):
                raise
            print("refused:", cause.reason, "-", cause.detail)
        else:
            raise SystemExit("a request without ECH configs went through")
    strict = ECHTransport(doh=args.doh, cafile=args.ca, require_ech=True)
    with httpx.Client(transport=strict) as client:
        response = client.get(args.url)
    print(response.status_code, "ECH", response.extensions["ech_status"])


if __name__ == "__main__":
    main()
