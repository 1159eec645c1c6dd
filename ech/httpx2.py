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

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpcore2
import httpx2

from ech.config import ECHConfigList
from ech.httpcore_backend import AsyncCore, Flavor, SyncCore, Verify, make_dialer

if TYPE_CHECKING:
    from ech.client.config import ClientConfig
    from ech.dns.resolver import DoHResolver

__all__ = ["AsyncECHTransport", "ECHTransport"]

FLAVOR = Flavor(httpx2, httpcore2)

#: httpx's own default pool limits.
DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)


class _ResponseStream(httpx2.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], flavor: Flavor) -> None:
        self._stream = stream
        self._flavor = flavor

    def __iter__(self) -> Iterator[bytes]:
        with self._flavor.mapped():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _AsyncResponseStream(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterator[bytes], flavor: Flavor) -> None:
        self._stream = stream
        self._flavor = flavor

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with self._flavor.mapped():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class ECHTransport(SyncCore, httpx2.BaseTransport):
    """A blocking httpx2 transport whose TLS is ours, with ECH.

    Args:
        verify: httpx's ``verify=`` (see the module docstring).
        cafile: A PEM CA file to trust, for the servers and the DoH server.
        http1, http2: ALPN ``http/1.1`` and ``h2`` (RFC 7301).
        http3: Send https requests over HTTP/3 (QUIC) instead.
        doh: A DoH resolver URL (RFC 8484) for HTTPS records.
        resolver: A :class:`~ech.dns.DoHResolver` to use instead (not
            closed by the transport).
        ech_configs: ECH configs to use for every origin, without DNS.
        require_ech: Strict mode: real ECH or an error.
        ech_retry: Retry once after a rejection (RFC 9849 §6.1.6).
        limits, retries, local_address, socket_options: httpx's.
        config: A :class:`~ech.ClientConfig` to start from (ALPN and trust
            are set from the arguments above).
        address: Connect every origin here, whatever DNS says (as curl's
            ``--connect-to``; ``ech get --address``); names and ECH stay.
    """

    flavor = FLAVOR

    def __init__(
        self,
        *,
        verify: Verify = True,
        cafile: str | Path | None = None,
        http1: bool = True,
        http2: bool = False,
        http3: bool = False,
        doh: str | None = None,
        resolver: DoHResolver | None = None,
        ech_configs: ECHConfigList | None = None,
        require_ech: bool = False,
        ech_retry: bool = True,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
        config: ClientConfig | None = None,
        address: str | None = None,
    ) -> None:
        dialer = make_dialer(
            verify=verify,
            cafile=cafile,
            http1=http1,
            http2=http2,
            doh=doh,
            resolver=resolver,
            ech_configs=ech_configs,
            require_ech=require_ech,
            ech_retry=ech_retry,
            config=config,
            address=address,
        )
        self._setup(
            dialer, http1, http2, http3, limits, retries, local_address, socket_options
        )

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

    def __init__(
        self,
        *,
        verify: Verify = True,
        cafile: str | Path | None = None,
        http1: bool = True,
        http2: bool = False,
        http3: bool = False,
        doh: str | None = None,
        resolver: DoHResolver | None = None,
        ech_configs: ECHConfigList | None = None,
        require_ech: bool = False,
        ech_retry: bool = True,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, ...]] | None = None,
        config: ClientConfig | None = None,
        address: str | None = None,
    ) -> None:
        dialer = make_dialer(
            verify=verify,
            cafile=cafile,
            http1=http1,
            http2=http2,
            doh=doh,
            resolver=resolver,
            ech_configs=ech_configs,
            require_ech=require_ech,
            ech_retry=ech_retry,
            config=config,
            address=address,
        )
        self._setup(
            dialer, http1, http2, http3, limits, retries, local_address, socket_options
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` on a pooled connection (or HTTP/3); its response."""
        response: httpx2.Response = await self._handle(request, _AsyncResponseStream)
        return response

    async def aclose(self) -> None:
        """Close the pooled connections (and the DoH resolver made from doh=)."""
        await self._close()
