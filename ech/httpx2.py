"""httpx2 transports with ECH: :class:`ECHTransport` and :class:`AsyncECHTransport`.

httpx2 (the continuation of httpx, on httpcore2) keeps httpx 0.28's
transport API (``BaseTransport.handle_request``, ``AsyncBaseTransport``)
and httpcore2 keeps httpcore's network backend (``connect_tcp``,
``start_tls``, ``get_extra_info("ssl_object")``), so these are
:mod:`ech.httpx`'s transports for that pair, with the same arguments and
the same ``response.extensions``; see :mod:`ech.httpx`. httpx2 is already
installed with this package (dnspython's DoH client uses it)::

    import httpx2
    from ech.httpx2 import ECHTransport

    with httpx2.Client(transport=ECHTransport(doh=URL, http2=True)) as client:
        print(client.get("https://secret.example/").extensions["ech_status"])
"""

from __future__ import annotations

import httpcore2
import httpx2

from ech.httpcore_backend import (
    AsyncCore,
    AsyncMappedByteStream,
    Flavor,
    MappedByteStream,
    SyncCore,
)

__all__ = ["AsyncECHTransport", "ECHTransport"]

FLAVOR = Flavor(httpx2, httpcore2)


class _ResponseStream(MappedByteStream, httpx2.SyncByteStream):
    """httpcore's response body as httpx2 reads it."""


class _AsyncResponseStream(AsyncMappedByteStream, httpx2.AsyncByteStream):
    """httpcore's response body as httpx2 reads it, on asyncio."""


class ECHTransport(SyncCore, httpx2.BaseTransport):
    """A blocking httpx2 transport whose TLS is ours, with ECH.

    The arguments (all keywords) are
    :class:`~ech.httpcore_backend.TransportCore`'s: ``verify``, ``cafile``,
    ``http1``, ``http2``, ``http3``, ``doh``, ``resolver``, ``ech_configs``,
    ``require_ech``, ``ech_retry``, ``limits``, ``retries``,
    ``local_address``, ``socket_options``, ``config``, ``address``.
    """

    flavor = FLAVOR

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` on a pooled connection (or HTTP/3); its response."""
        response: httpx2.Response = self._handle(request, _ResponseStream)
        return response

    def close(self) -> None:
        """Close the pooled connections (and the DoH resolver made from doh=)."""
        self._close()


class AsyncECHTransport(AsyncCore, httpx2.AsyncBaseTransport):
    """The asyncio twin of :class:`ECHTransport`; the same arguments."""

    flavor = FLAVOR

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` on a pooled connection (or HTTP/3); its response."""
        response: httpx2.Response = await self._handle(request, _AsyncResponseStream)
        return response

    async def aclose(self) -> None:
        """Close the pooled connections (and the DoH resolver made from doh=)."""
        await self._close()
