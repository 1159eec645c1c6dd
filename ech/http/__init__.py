"""HTTP for ``ech``: one set of request, response and handler types.

Every HTTP exchange in the package goes through here (RFC 9110 semantics,
framing by ``h11`` and ``h2``):

* :mod:`ech.http.messages`: :class:`Request`, :class:`Response`,
  :class:`ConnectionInfo` and the :data:`Handler` type;
* :mod:`ech.http.router`: :class:`Router`, dispatch by path;
* :mod:`ech.http.server`: :func:`serve_http`, which answers a connection
  with HTTP/2 (:mod:`ech.http.http2`) or HTTP/1.1 (:mod:`ech.http.http1`)
  as its ALPN says, over any :class:`~ech.http.transport.ByteStream`
  (TLS, or plain TCP for the metrics endpoint);
* :mod:`ech.http.client`: one HTTP/1.1 request from our commands,
  :func:`fetch` (blocking) and :func:`fetch_async`.

HTTP/3 (RFC 9114, aioquic's ``h3``) is meant to be a third binding beside
``http1`` and ``http2``: it would turn QUIC stream events into the same
:class:`Request` values and send the same :class:`Response` values.
"""

from __future__ import annotations

from ech.http.client import Exchange, encode_request, fetch, fetch_async
from ech.http.errors import RequestHeadTimeout, ResponseError
from ech.http.messages import (
    ConnectionInfo,
    Handler,
    Headers,
    Request,
    Response,
    reason_phrase,
    text_response,
)
from ech.http.options import ServerOptions
from ech.http.router import Router
from ech.http.server import serve_http
from ech.http.transport import BlockingByteStream, ByteStream

__all__ = [
    "BlockingByteStream",
    "ByteStream",
    "ConnectionInfo",
    "Exchange",
    "Handler",
    "Headers",
    "Request",
    "RequestHeadTimeout",
    "Response",
    "ResponseError",
    "Router",
    "ServerOptions",
    "encode_request",
    "fetch",
    "fetch_async",
    "reason_phrase",
    "serve_http",
    "text_response",
]
