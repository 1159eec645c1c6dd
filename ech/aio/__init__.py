"""asyncio adapter: TLS streams, the client, and the one asyncio server.

* :mod:`ech.aio.stream`: :class:`TLSStream`, the pump of :mod:`ech.blocking`
  on asyncio streams; :mod:`ech.aio.plain`: :class:`PlainStream`, the same
  face without TLS.
* :mod:`ech.aio.client`: :func:`open_connection` (ECH discovery and retry
  from :mod:`ech.dial`); :mod:`ech.aio.streams`: :func:`open_streams`, the
  same connection as a standard ``(StreamReader, StreamWriter)`` pair.
* :mod:`ech.aio.server`: :class:`Server` (accept loop, limits, timeouts,
  split-mode relay, graceful shutdown) and :func:`start_server`, its short
  form; :mod:`ech.aio.limits`, :mod:`ech.aio.report` (what it tells an
  :class:`Observer`), :mod:`ech.aio.relay` (split mode's byte mover).
"""

from __future__ import annotations

from ech.aio.client import open_connection
from ech.aio.limits import ConnectionTimeoutError, Limits
from ech.aio.plain import PlainStream
from ech.aio.report import ConnectionReport, Observer
from ech.aio.server import Handler, Server, start_server
from ech.aio.stream import TLSStream
from ech.aio.streams import open_streams

__all__ = [
    "ConnectionReport",
    "ConnectionTimeoutError",
    "Handler",
    "Limits",
    "Observer",
    "PlainStream",
    "Server",
    "TLSStream",
    "open_connection",
    "open_streams",
    "start_server",
]
