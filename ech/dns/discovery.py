"""From a URL's host to what a client needs to connect with ECH (RFC 9848 §5).

One function, :func:`discover`, that the client API and the ``ech`` command
share: resolve the HTTPS record over DoH before any ClientHello (ECH-107), take
the most preferred endpoint whose ECH configs we can use (else the most
preferred one), and say whether the record promised ECH (SVCB-reliant
mode, ECH-105), in which case the client must never fall back to a cleartext
ClientHello: :func:`ech.dial.plan` refuses to connect when no endpoint's
configs are usable.
"""

from __future__ import annotations

from dataclasses import dataclass

from ech.config import ECHConfigList
from ech.dns.records import ServiceEndpoint
from ech.dns.resolver import DoHResolver, HTTPSResolution


@dataclass(frozen=True)
class Discovery:
    """The outcome of looking up ``https://host:port``.

    Attributes:
        host: The origin's host name (the inner SNI).
        port: The port to connect to (the endpoint's ``port`` if it has one).
        endpoint: The most preferred ServiceMode endpoint, if any.
        addresses: Where to connect, from A/AAAA or the endpoint's hints.
        ech_configs: The endpoint's ECHConfigList; None means use GREASE.
        resolution: The full HTTPS resolution, for reporting.
    """

    host: str
    port: int
    endpoint: ServiceEndpoint | None
    addresses: tuple[str, ...]
    ech_configs: ECHConfigList | None
    resolution: HTTPSResolution

    @property
    def ech_required(self) -> bool:
        """The record promised ECH: no cleartext ClientHello (RFC 9848 §5.1)."""
        return self.resolution.svcb_reliant


def choose_endpoint(
    endpoints: tuple[ServiceEndpoint, ...],
) -> ServiceEndpoint | None:
    """The most preferred endpoint whose ECH configs we can use, else the first.

    RFC 9460 §3 has clients try endpoints in priority order; skipping ahead
    to one with usable ECH keeps the name hidden where the list allows it
    (RFC 9848 §8 advises publishers to prefer ``ech`` records anyway).
    """
    for endpoint in endpoints:
        if endpoint.ech is not None and endpoint.ech.usable():
            return endpoint
    return endpoints[0] if endpoints else None


def discover(resolver: DoHResolver, host: str, port: int = 443) -> Discovery:
    """Resolve ``https://host:port`` (RFC 9460 §3, RFC 9848 §5).

    Raises:
        DNSLookupError: the resolver could not be asked or answered an error.
    """
    resolution = resolver.resolve_https(host, port)
    endpoint = choose_endpoint(resolution.endpoints)
    if endpoint is not None:
        addresses = tuple(resolver.addresses_for(endpoint))
        if not addresses and endpoint.target.startswith(f"_{port}._https."):
            # A "." target at a _PORT._https owner (an underscore name, never
            # an address) without hints: use the origin's, as curl does.
            addresses = tuple(resolver.resolve_addresses(host))
        port = endpoint.port or port
        configs = endpoint.ech
    else:
        addresses = tuple(resolver.resolve_addresses(resolution.target_name))
        configs = None
    return Discovery(host, port, endpoint, addresses, configs, resolution)
