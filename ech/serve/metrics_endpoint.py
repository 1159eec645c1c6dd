"""``GET /metrics`` over plain HTTP/1.1 for Prometheus (``ech serve --metrics``).

The endpoint is an :mod:`ech.http` handler on a plain TCP stream
(:class:`ech.aio.PlainStream`), so requests are parsed by h11 like every
other: one request per connection, the head bounded (8 KiB, 431 beyond),
the whole exchange bounded in time (5 s), so the endpoint cannot be held.

The text comes from a :class:`~ech.serve.metrics.Metrics`, or from a
coroutine function that renders it: ``ech serve --workers`` collects its
workers' metrics at each scrape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from ech.aio import PlainStream
from ech.http import (
    ConnectionInfo,
    Handler,
    Request,
    Response,
    ServerOptions,
    serve_http,
    text_response,
)
from ech.serve.metrics import CONTENT_TYPE, Metrics

__all__ = ["MetricsSource", "metrics_handler", "start_metrics_server"]

#: Where the text comes from: a set of metrics, or a coroutine rendering it.
MetricsSource = Metrics | Callable[[], Awaitable[str]]

_MAX_REQUEST_HEAD: Final = 8192
_REQUEST_TIMEOUT: Final = 5.0
_OPTIONS: Final = ServerOptions(
    request_head_timeout=_REQUEST_TIMEOUT,
    max_head=_MAX_REQUEST_HEAD,
    max_body=_MAX_REQUEST_HEAD,
    keep_alive=False,
)


def metrics_handler(metrics: MetricsSource) -> Handler:
    """Answer ``GET``/``HEAD`` of ``/metrics`` (or ``/``) with the text format."""

    async def handler(request: Request, info: ConnectionInfo) -> Response:
        if request.method not in ("GET", "HEAD"):
            # RFC 9110 §15.5.6: a 405 lists the methods that are allowed.
            return text_response(405, "method not allowed", (("allow", "GET, HEAD"),))
        if request.path not in ("/metrics", "/"):
            return text_response(404, "not found")
        text = metrics.render() if isinstance(metrics, Metrics) else await metrics()
        body = text.encode()
        return Response(200, (("content-type", CONTENT_TYPE),), body)

    return handler


async def start_metrics_server(
    metrics: MetricsSource, host: str, port: int
) -> asyncio.Server:
    """Serve ``GET /metrics`` (plain HTTP/1.1, one request per connection)."""
    handler = metrics_handler(metrics)

    async def on_connect(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stream = PlainStream(reader, writer)
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                await serve_http(stream, handler, _OPTIONS)
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            await stream.close()

    return await asyncio.start_server(on_connect, host, port, limit=_MAX_REQUEST_HEAD)
