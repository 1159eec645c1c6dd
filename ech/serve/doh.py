"""DoH for ``ech serve --doh`` (RFC 8484): HTTP semantics over ech.http.

:func:`handle_request` is the HTTP side of RFC 8484 §4, sans-IO: GET with
``?dns=`` (base64url, §4.1), POST with ``application/dns-message`` (§4.1),
``Cache-Control: max-age`` from the smallest TTL (§5.1); the DNS side is
:mod:`ech.dns.doh_server`. :func:`doh_handler` makes it an
:mod:`ech.http` handler, served over HTTP/2 (RFC 8484 §5.2: the minimum
RECOMMENDED version) and HTTP/1.1 by :func:`ech.http.serve_http`, and
:func:`doh_app` is ``ech serve``'s application: DoH at one path, the status
page everywhere else.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

from ech.aio import Handler as StreamHandler
from ech.aio import TLSStream
from ech.dns.doh_server import (
    DNS_MESSAGE,
    MAX_DNS_MESSAGE,
    Zone,
    answer_message,
    cache_max_age,
)
from ech.http import (
    ConnectionInfo,
    Handler,
    Request,
    Response,
    Router,
    serve_http,
    text_response,
)
from ech.serve.status_page import status_page
from ech.server.config import ServerConfig

__all__ = ["doh_app", "doh_handler", "handle_request", "serve_zone"]


def handle_request(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    path: str,
    zone: Zone,
) -> Response:
    """Answer one DoH request (RFC 8484 §4.1, §4.2, §5.1); no I/O.

    Args:
        method: ``GET`` or ``POST`` (others get 405).
        target: The request target (path and query).
        headers: Request headers with lower-case names.
        body: The request body.
        path: The DoH path, e.g. ``/dns-query``; other paths get 404.
        zone: What to answer from.

    Returns:
        200 with the DNS response and ``cache-control: max-age`` set to the
        smallest TTL in it; 400 for a missing or bad ``dns`` parameter or a
        non-DNS payload; 413 above 65535 octets; 415 for a POST that is not
        ``application/dns-message``.
    """
    parts = urlsplit(target)
    if parts.path != path:
        return text_response(404, "not found")
    if method == "GET":
        values = parse_qs(parts.query, keep_blank_values=True).get("dns", [])
        if len(values) != 1:
            return text_response(400, "exactly one dns parameter is required")
        try:
            wire = _base64url_decode(values[0])
        except ValueError as err:
            return text_response(400, f"dns parameter: {err}")
    elif method == "POST":
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type.lower() != DNS_MESSAGE:
            return text_response(415, f"content-type must be {DNS_MESSAGE}")
        wire = body
    else:
        return Response(405, (("allow", "GET, POST"),), b"")
    if len(wire) > MAX_DNS_MESSAGE:
        return text_response(413, "DNS message too large")
    try:
        message = answer_message(wire, zone)
    except ValueError as err:
        return text_response(400, str(err))
    reply = message.to_wire(max_size=MAX_DNS_MESSAGE)
    headers_out = [("content-type", DNS_MESSAGE)]
    max_age = cache_max_age(message)
    if max_age is not None:
        headers_out.append(("cache-control", f"max-age={max_age}"))
    return Response(200, tuple(headers_out), reply)


def _base64url_decode(text: str) -> bytes:
    """Base64url with or without padding (RFC 8484 §6, RFC 4648 §5)."""
    if not text:
        raise ValueError("empty")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"bad base64url: {err}") from err


def doh_handler(zone: Zone, path: str) -> Handler:
    """:func:`handle_request` as an :mod:`ech.http` handler for ``path``."""

    async def handler(request: Request, info: ConnectionInfo) -> Response:
        return handle_request(
            request.method,
            request.target,
            dict(request.headers),
            request.body,
            path=path,
            zone=zone,
        )

    return handler


def _common_suffix(names: Sequence[str]) -> str:
    """The longest DNS suffix all ``names`` share (``.`` if none)."""
    labels = [name.lower().rstrip(".").split(".")[::-1] for name in names]
    common: list[str] = []
    for parts in zip(*labels, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(reversed(common)) + "." if common else "."


#: The ALPN ids ``ech serve`` publishes, best first (RFC 9460 §7.1.1).
TCP_ALPN = ("h2", "http/1.1")
HTTP3_ALPN = ("h3", "h2", "http/1.1")


def serve_zone(
    provider: Callable[[], ServerConfig],
    host: str,
    port: int,
    alpn: tuple[str, ...] = TCP_ALPN,
) -> Zone:
    """The zone ``ech serve --doh`` publishes: every certificate name.

    The HTTPS records carry the advertised ECH configs current at query
    time (``provider().retry_configs``), the service's port, ``alpn`` (with
    ``--http3``, h3 first: RFC 9114 §3.1 allows discovery by HTTPS record),
    and ``host`` as the address (127.0.0.1 for a wildcard).
    """
    config = provider()
    names = sorted({n for c in config.certificates for n in c.dns_names})
    return Zone(
        _common_suffix(names),
        lambda: provider().retry_configs,
        hosts=[name + "." for name in names],  # absolute, not origin-relative
        port=port,
        alpn=alpn,
        addresses=("127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host,),
    )


def doh_router(
    provider: Callable[[], ServerConfig],
    path: str,
    host: str,
    port: int,
    alpn: tuple[str, ...] = TCP_ALPN,
) -> Router:
    """DoH at ``path`` for the names we serve, the status page elsewhere."""
    zone = serve_zone(provider, host, port, alpn)
    return Router({path: doh_handler(zone, path)}, default=status_page)


def doh_app(
    provider: Callable[[], ServerConfig], path: str, host: str, port: int
) -> StreamHandler:
    """:func:`doh_router` served on each TLS stream (HTTP/2 or HTTP/1.1)."""
    router = doh_router(provider, path, host, port)

    async def app(stream: TLSStream) -> None:
        await serve_http(stream, router)

    return app
