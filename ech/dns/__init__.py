"""ECH configuration discovery through DNS HTTPS records (RFC 9460, RFC 9848).

* :mod:`ech.dns.records`: HTTPS rdata (dnspython) to :class:`ServiceEndpoint`.
* :mod:`ech.dns.resolver`: SVCB resolution over DoH (:class:`DoHResolver`).
* :mod:`ech.dns.cache`: the TTL cache it uses.
* :mod:`ech.dns.publish`: zone-file lines and advice for publishers.
* :mod:`ech.dns.doh_server`: the zone and DNS answers of ``ech serve --doh``
  (its HTTP side is :mod:`ech.serve.doh`).

Inside this package ``import dns.message`` is dnspython (style.md §10.1).
"""

from __future__ import annotations

from ech.dns.cache import TTLCache
from ech.dns.publish import https_record_line, warnings_for
from ech.dns.records import (
    InvalidHTTPSRecord,
    RejectedRecord,
    ServiceEndpoint,
    endpoints_from_rrset,
    query_name,
)
from ech.dns.resolver import DNSLookupError, DoHResolver, HTTPSResolution

__all__ = [
    "DNSLookupError",
    "DoHResolver",
    "HTTPSResolution",
    "InvalidHTTPSRecord",
    "RejectedRecord",
    "ServiceEndpoint",
    "TTLCache",
    "endpoints_from_rrset",
    "https_record_line",
    "query_name",
    "warnings_for",
]
