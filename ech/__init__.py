"""``ech``: TLS 1.3 with Encrypted Client Hello (RFC 9849), client and server.

What an embedder needs is importable from here:

* :class:`ECHClientContext` (:mod:`ech.context`): ``wrap_socket`` as
  :class:`ssl.SSLContext` has it, with ECH;
* :class:`ECHTransport` and :class:`AsyncECHTransport` (:mod:`ech.httpx`):
  httpx transports with DoH discovery, ECH, GREASE and one retry;
* :class:`DoHResolver` (:mod:`ech.dns`): HTTPS records over DoH (RFC 9848);
* the outcome: :class:`ECHStatus`, :class:`ECHReason` and
  :class:`ECHOutcome` (why ECH was or was not used), the errors
  :class:`ECHRejectedError` (with authenticated retry configs) and
  :class:`ECHUnavailableError` (ECH promised or required but impossible:
  nothing was sent), and :class:`ECHConfigList`.

``import ech`` stays light: the resolver (dnspython) and the httpx
transports (httpx, httpcore) are imported when first named. The
connections underneath are sans-IO (feed bytes with ``receive_data``, take
bytes with ``data_to_send``); :mod:`ech.blocking`, :mod:`ech.aio` and
:mod:`ech.quic` adapt them to sockets, asyncio and QUIC.

``ech.__version__`` is the installed distribution's version (semantic
versioning; what a 0.x version promises is in CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.config import ECHConfigList
from ech.context import ECHClientContext, ECHSocket
from ech.dial import ECHOutcome
from ech.errors import (
    Alert,
    ConnectionClosedError,
    ECHRejectedError,
    ECHUnavailableError,
    PeerAlert,
    TLSError,
)
from ech.events import (
    ConnectionClosed,
    DataReceived,
    EarlyDataReceived,
    EarlyDataStatus,
    ECHReason,
    ECHStatus,
    Event,
    HandshakeComplete,
    KeyUpdateReceived,
    SessionTicketReceived,
)
from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import AlertDescription, CipherSuite, NamedGroup, SignatureScheme
from ech.tls.session import SessionTicket

if TYPE_CHECKING:
    from ech.dns.resolver import DNSLookupError, DoHResolver
    from ech.httpx import AsyncECHTransport, ECHTransport

try:
    __version__ = _version("tls-ech")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

#: Names imported on first use, so ``import ech`` loads neither dnspython
#: nor httpx: name -> module.
_LAZY = {
    "DoHResolver": "ech.dns.resolver",
    "DNSLookupError": "ech.dns.resolver",
    "ECHTransport": "ech.httpx",
    "AsyncECHTransport": "ech.httpx",
}


def __getattr__(name: str) -> object:
    """The lazily imported names of :data:`_LAZY` (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ech' has no attribute {name!r}")
    import importlib

    value: object = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Alert",
    "AlertDescription",
    "AsyncECHTransport",
    "CertifiedKey",
    "CipherSuite",
    "ClientConfig",
    "ClientConnection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "DNSLookupError",
    "DataReceived",
    "DoHResolver",
    "ECHClientContext",
    "ECHConfigList",
    "ECHOutcome",
    "ECHReason",
    "ECHRejectedError",
    "ECHSocket",
    "ECHStatus",
    "ECHTransport",
    "ECHUnavailableError",
    "EarlyDataReceived",
    "EarlyDataStatus",
    "Event",
    "HandshakeComplete",
    "KeyUpdateReceived",
    "NamedGroup",
    "PeerAlert",
    "ServerConfig",
    "ServerConnection",
    "SessionTicket",
    "SessionTicketReceived",
    "SignatureScheme",
    "TLSError",
]
