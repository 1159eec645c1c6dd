"""ECH over QUIC and HTTP/3: our TLS 1.3 engine inside aioquic (RFC 9001).

* :mod:`ech.quic.tls`: the stand-in for aioquic's ``tls.Context``.
* :mod:`ech.quic.connection`: :class:`ECHQuicConnection`, aioquic's
  connection with our handshake.
* :mod:`ech.quic.client`, :mod:`ech.quic.server`: asyncio ``connect`` and
  ``serve``, as aioquic's, with ECH.
"""

from __future__ import annotations

from ech.quic.connection import ECHQuicConnection

__all__ = ["ECHQuicConnection"]
