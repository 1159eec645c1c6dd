"""How much one HTTP connection may cost a server."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerOptions"]


@dataclass(frozen=True)
class ServerOptions:
    """Bounds and connection policy of :func:`ech.http.serve_http`.

    Attributes:
        request_head_timeout: Seconds a client has to send a complete
            request head: the first one from the start, each later one
            from its first byte. Without it a client that completed the
            handshake could hold the connection with nothing (or a slow
            trickle) until the idle timeout.
        max_head: Largest request head, in bytes; a longer one is answered
            431 (RFC 6585 §5) over HTTP/1.1. Over HTTP/2 it is advertised as
            SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2) and enforced by
            the HPACK decoder.
        max_body: Largest request content kept, in bytes; a longer one is
            read, dropped and answered 413 (RFC 9110 §15.5.14).
        keep_alive: Serve more than one request per HTTP/1.1 connection
            (RFC 9112 §9.3); False answers with ``Connection: close``.

    Raises:
        ValueError: A bound is not positive.
    """

    request_head_timeout: float = 10.0
    max_head: int = 16384
    max_body: int = 65535
    keep_alive: bool = True

    def __post_init__(self) -> None:
        for name in ("request_head_timeout", "max_head", "max_body"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
