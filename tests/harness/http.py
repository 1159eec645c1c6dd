"""The status page over our TLS: ask for it with :mod:`ech.http`, return its JSON.

``ech serve`` (and :func:`ech.serve.status_page.serve_status`) answer every
request with a JSON object describing the connection. Requests and
responses are :mod:`ech.http`'s (h11); this module only turns a response
into that object, checking the status: :func:`get_status_async` over an
:mod:`ech.aio` stream, :func:`page_json` for a :class:`ech.http.Response`,
and :func:`status_json` for raw bytes from another client (curl's body,
tstclnt's output).
"""

from __future__ import annotations

import json
from typing import Any

from ech.aio import TLSStream
from ech.http import Exchange, Response, fetch_async


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        page = json.loads(body)
    except ValueError:
        raise AssertionError(f"status page is not JSON: {body!r}") from None
    if not isinstance(page, dict):
        raise AssertionError(f"status page is not a JSON object: {page!r}")
    return page


def page_json(response: Response) -> dict[str, Any]:
    """The JSON object of a status page response, which must be ``HTTP/1.1 200``.

    Raises:
        AssertionError: another status, or not a JSON object.
    """
    if not response.status_line.startswith("HTTP/1.1 200"):
        raise AssertionError(f"status page answered {response.status_line!r}")
    return _json_object(response.body)


def status_json(data: bytes) -> dict[str, Any]:
    """:func:`page_json` of a whole HTTP/1.1 response in bytes, or a bare body.

    The response is read by :mod:`ech.http` (Content-Length or chunked, to
    the end of ``data``), not split at the first blank line.
    """
    if not data.startswith(b"HTTP/"):
        return _json_object(data)
    exchange = Exchange("GET", "/", host="status.invalid")
    response = exchange.receive_data(data) or exchange.receive_data(b"")
    if response is None:
        raise AssertionError(f"incomplete status page response: {data!r}")
    return page_json(response)


async def get_status_async(stream: TLSStream, host: str) -> dict[str, Any]:
    """GET / with ``Connection: close`` and read to the end; :func:`page_json`."""
    return page_json(await fetch_async(stream, "/", host=host))
