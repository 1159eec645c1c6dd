"""Routing by path: one handler per path, a fallback for the rest."""

from __future__ import annotations

from collections.abc import Mapping

from ech.http.messages import ConnectionInfo, Handler, Request, Response, text_response

__all__ = ["Router"]


class Router:
    """A :data:`~ech.http.messages.Handler` that dispatches on the path.

    Paths match exactly (the query is ignored, RFC 9110 §4.2.1), so
    ``/dns-query?dns=...`` goes to the ``/dns-query`` handler. Methods are
    the handlers' business: a handler that allows only some answers 405
    itself (RFC 9110 §15.5.6).

    Args:
        routes: Handler for each path.
        default: Handler for every other path; 404 when None.
    """

    def __init__(
        self,
        routes: Mapping[str, Handler] | None = None,
        default: Handler | None = None,
    ) -> None:
        self.routes: dict[str, Handler] = dict(routes or {})
        self.default = default

    def add(self, path: str, handler: Handler) -> None:
        """Answer requests for ``path`` with ``handler``."""
        self.routes[path] = handler

    async def __call__(self, request: Request, info: ConnectionInfo) -> Response:
        """Answer ``request`` with the handler of its path."""
        handler = self.routes.get(request.path, self.default)
        if handler is None:
            return text_response(404, "not found")
        return await handler(request, info)
