"""HTTP/3 with ECH as a client, on asyncio: :func:`open_http3`.

The same policy as over TCP (:mod:`ech.dial`): with a DoH resolver and no
configs, the HTTPS record is looked up before anything is sent; its ECH
configs are used, or GREASE when it has none; after a rejection, one retry
on a new QUIC connection with the server's authenticated retry_configs
(RFC 9849 §6.1.6). The rejected connection was closed with CRYPTO_ERROR
ech_required (0x179) by our handshake.

:func:`connect` is the lower level, :func:`aioquic.asyncio.connect` with our
handshake in the connection, for other protocols than HTTP/3.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration

from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.dial import Plan, connect_with_retry_async, plan_async
from ech.errors import ECHRejectedError, PeerAlert
from ech.events import HandshakeComplete
from ech.http.http3 import H3ClientProtocol
from ech.http.messages import Headers, Request, Response
from ech.quic.connection import ECHQuicConnection
from ech.tls.enums import AlertDescription
from ech.tls.quic import CRYPTO_ERROR
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dial import ECHOutcome
    from ech.dns.resolver import DoHResolver

__all__ = ["HTTP3Connection", "connect", "open_http3", "quic_configuration"]

P = TypeVar("P", bound=QuicConnectionProtocol)

#: ALPN of HTTP/3 (RFC 9114 §3.1).
H3: tuple[str, ...] = ("h3",)


def quic_configuration(config: ClientConfig) -> QuicConfiguration:
    """The aioquic client settings matching ``config`` (ALPN from it)."""
    return QuicConfiguration(is_client=True, alpn_protocols=list(config.alpn_protocols))


class _Opened:
    """One QUIC connection whose handshake completed: transport and protocol."""

    def __init__(
        self, transport: asyncio.BaseTransport, protocol: QuicConnectionProtocol
    ) -> None:
        self.transport = transport
        self.protocol = protocol

    async def close(self) -> None:
        self.protocol.close()
        await self.protocol.wait_closed()
        self.transport.close()


async def _open(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str,
    ech_configs: ECHConfigList | None,
    session: SessionTicket | None,
    create_protocol: Callable[[ECHQuicConnection], QuicConnectionProtocol],
    timeout: float | None,
) -> _Opened:
    """Open one QUIC connection and wait for its handshake.

    Raises:
        ECHRejectedError: the server rejected ECH (the connection is closed).
        PeerAlert: the server closed with another CRYPTO_ERROR.
        ConnectionError: the handshake failed otherwise.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    connection = ECHQuicConnection(
        configuration=quic_configuration(config),
        tls=config,
        server_name=server_name,
        ech_configs=ech_configs,
        session=session,
    )
    local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)  # noqa: S104 - our ephemeral port
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: create_protocol(connection), local_addr=local
    )
    opened = _Opened(transport, protocol)
    try:
        protocol.connect(address)
        async with asyncio.timeout(timeout):
            await protocol.wait_connected()
    except ConnectionError:
        await opened.close()
        _raise_handshake_failure(connection)
        raise
    except BaseException:
        await opened.close()
        raise
    return opened


def _raise_handshake_failure(connection: ECHQuicConnection) -> None:
    """Turn how the handshake ended into our exceptions, where we can."""
    rejected = connection.ech_rejected
    if rejected is not None:
        raise ECHRejectedError(rejected.retry_configs, rejected.public_name)
    event = connection._close_event  # aioquic's record of how it closed
    if event is not None and CRYPTO_ERROR <= event.error_code < CRYPTO_ERROR + 256:
        raise PeerAlert(AlertDescription(event.error_code - CRYPTO_ERROR))


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str | None = None,
    *,
    ech_configs: ECHConfigList | None = None,
    session: SessionTicket | None = None,
    create_protocol: Callable[[ECHQuicConnection], P] = QuicConnectionProtocol,  # type: ignore[assignment]
    timeout: float | None = 30.0,
) -> AsyncIterator[P]:
    """One QUIC connection with our handshake; no retry, any protocol.

    Yields the protocol once the handshake is complete; closes it on exit.

    Raises:
        ECHRejectedError: the server rejected ECH; the connection was closed
            with CRYPTO_ERROR ech_required (RFC 9849 §6.1.6).
        PeerAlert: the server closed with another CRYPTO_ERROR.
        ConnectionError: the handshake failed otherwise.
        TimeoutError: no handshake within ``timeout`` seconds.
    """
    opened = await _open(
        host,
        port,
        config,
        server_name or host,
        ech_configs,
        session,
        create_protocol,
        timeout,
    )
    try:
        protocol: P = opened.protocol  # type: ignore[assignment]
        yield protocol
    finally:
        await opened.close()


class HTTP3Connection:
    """An HTTP/3 connection with our TLS under it, as :func:`open_http3` made it.

    Attributes:
        negotiated: the handshake's outcome: ``ech_status``, the inner and
            outer names, suite, group, ALPN.
        retried: whether this is the one retry after an ECH rejection, and
            ``retry_configs`` the configs it used.
        ech_outcome: ECH's outcome and the reason for it (ech.dial's).
        authority: what ``:authority`` names (the inner server name).
    """

    def __init__(self, opened: _Opened, authority: str) -> None:
        protocol = opened.protocol
        if not isinstance(protocol, H3ClientProtocol) or protocol.handshake is None:
            raise RuntimeError("internal error: no completed HTTP/3 handshake")
        self._opened = opened
        self._protocol = protocol
        self.negotiated: HandshakeComplete = protocol.handshake
        self.authority = authority
        self.retried = False
        self.retry_configs: ECHConfigList | None = None
        self.ech_outcome: ECHOutcome | None = None

    async def request(
        self,
        method: str = "GET",
        target: str = "/",
        *,
        headers: Headers = (),
        body: bytes = b"",
    ) -> Response:
        """Send one request and return the whole response (RFC 9114 §4.1)."""
        return await self._protocol.request(
            Request(method, target, headers, body), self.authority
        )

    @property
    def is_closed(self) -> bool:
        """Whether the connection is over (a pool then opens a new one)."""
        return self._protocol.closed_reason is not None

    async def close(self) -> None:
        """Close the QUIC connection (CONNECTION_CLOSE with NO_ERROR)."""
        await self._opened.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_http3(
    host: str,
    port: int,
    config: ClientConfig,
    server_name: str | None = None,
    *,
    ech_configs: ECHConfigList | None = None,
    resolver: DoHResolver | None = None,
    ech_retry: bool = True,
    require_ech: bool = False,
    session: SessionTicket | None = None,
    timeout: float | None = 30.0,
    plan: Plan | None = None,
) -> HTTP3Connection:
    """Connect over QUIC, complete our handshake, speak HTTP/3.

    ``config`` must offer ALPN ``h3`` (RFC 9114 §3.1); discovery, GREASE and
    the one retry are :mod:`ech.dial`'s, and so is ``require_ech`` (strict
    mode: real ECH or nothing). A caller that made the :class:`~ech.dial.Plan`
    itself (to learn the addresses, as :mod:`ech.httpx` does) passes it as
    ``plan``; the other ECH arguments are then unused.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
        ECHUnavailableError: ECH was promised or required and cannot be
            offered; nothing was sent.
        DNSLookupError: the resolver failed; nothing was sent.
        PeerAlert: the server aborted the handshake.
        ConnectionError: the handshake failed otherwise.
        TimeoutError: no handshake within ``timeout`` seconds.
    """
    if "h3" not in config.alpn_protocols:
        raise ValueError("HTTP/3 needs ALPN h3 in ClientConfig.alpn_protocols")
    name = server_name or host
    plan = plan or await plan_async(
        config,
        name,
        port,
        ech_configs=ech_configs,
        resolver=resolver,
        ech_retry=ech_retry,
        require_ech=require_ech,
    )

    async def once(
        config: ClientConfig, configs: ECHConfigList | None
    ) -> HTTP3Connection:
        opened = await _open(
            host, port, config, name, configs, session, H3ClientProtocol, timeout
        )
        return HTTP3Connection(opened, name)

    return await connect_with_retry_async(plan, once)
