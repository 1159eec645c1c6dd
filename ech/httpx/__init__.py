"""httpx transports with ECH: :class:`ECHTransport` and :class:`AsyncECHTransport`.

For httpx 0.28 (with httpcore 1.x); :mod:`ech.httpx2` is the same for
httpx2 (whose transport API is the same, on httpcore2)::

    import httpx
    from ech.httpx import ECHTransport

    transport = ECHTransport(doh="https://dns.example/dns-query", http2=True)
    with httpx.Client(transport=transport) as client:
        response = client.get("https://secret.example/")
        print(response.extensions["ech_status"], response.http_version)

What each connection does (the policy is :mod:`ech.dial`'s, as for every
client of this package):

* with ``doh=URL`` or ``resolver=``, the origin's HTTPS record is looked up
  before anything is sent (RFC 9848 §5.3) and its endpoint's address and
  port are used; ``ech_configs=`` skips DNS; neither means no ECH at all
  (a plain TLS 1.3 client, as httpx's own);
* ECH with the record's configs, or GREASE ECH when the record has none
  (RFC 9849 §6.2); never a cleartext ClientHello when every record
  carries ``ech`` (RFC 9848 §5.1), and with ``require_ech=True`` only real
  ECH (else :class:`~ech.errors.ECHUnavailableError`);
* after a rejection, one retry on a new TCP connection with the server's
  authenticated retry_configs (RFC 9849 §6.1.6);
* ALPN ``h2`` and ``http/1.1`` as ``http2=``/``http1=`` ask; httpcore picks
  HTTP/2 from ``selected_alpn_protocol()`` and keeps connections alive;
* with ``http3=True``, https requests go over HTTP/3 instead
  (:func:`ech.quic.client.open_http3`, one QUIC connection per origin),
  since httpcore has no HTTP/3.

Each response says what happened in ``response.extensions``:
``ech_status`` (``accepted``, ``grease``, ``not_offered``), ``ech_reason``
and ``ech_detail`` (why, see :class:`~ech.events.ECHReason`),
``outer_server_name`` (what the network saw), ``server_name``,
``retried``, ``alpn``, ``handshake`` (the whole
:class:`~ech.HandshakeComplete`: suite, group, resumption) and
httpcore's ``http_version`` (``b"HTTP/2"``; read it as
``response.http_version``). A connection that fails for ECH raises
``httpx.ConnectError`` whose ``__cause__`` is our error
(:class:`~ech.errors.ECHRejectedError`, ``ECHUnavailableError``,
``DNSLookupError``).

``verify=`` is httpx's (True, False, a CA file, or an ``ssl.SSLContext``
whose loaded CAs are trusted); ``cafile=`` names a CA file directly and is
also used for the DoH server. Timeouts are httpx's (connect covers
discovery, TCP and the handshake). The asyncio transport runs on asyncio,
not trio. Proxies and Unix sockets are not supported.
"""

from __future__ import annotations

import httpcore
import httpx

from ech.httpcore_backend import (
    AsyncCore,
    AsyncMappedByteStream,
    Flavor,
    MappedByteStream,
    SyncCore,
)

__all__ = ["AsyncECHTransport", "ECHTransport"]

FLAVOR = Flavor(httpx, httpcore)


class _ResponseStream(MappedByteStream, httpx.SyncByteStream):
    """httpcore's response body as httpx reads it."""


class _AsyncResponseStream(AsyncMappedByteStream, httpx.AsyncByteStream):
    """httpcore's response body as httpx reads it, on asyncio."""


class ECHTransport(SyncCore, httpx.BaseTransport):
    """A blocking httpx transport whose TLS is ours, with ECH.

    The arguments (all keywords) are
    :class:`~ech.httpcore_backend.TransportCore`'s: ``verify``, ``cafile``,
    ``http1``, ``http2``, ``http3``, ``doh``, ``resolver``, ``ech_configs``,
    ``require_ech``, ``ech_retry``, ``limits``, ``retries``,
    ``local_address``, ``socket_options``, ``config``, ``address``.
    """

    flavor = FLAVOR

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection (or HTTP/3); its response."""
        response: httpx.Response = self._handle(request, _ResponseStream)
        return response

    def close(self) -> None:
        """Close the pooled connections (and the DoH resolver made from doh=)."""
        self._close()


class AsyncECHTransport(AsyncCore, httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`ECHTransport`; the same arguments."""

    flavor = FLAVOR

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection (or HTTP/3); its response."""
        response: httpx.Response = await self._handle(request, _AsyncResponseStream)
        return response

    async def aclose(self) -> None:
        """Close the pooled connections (and the DoH resolver made from doh=)."""
        await self._close()
