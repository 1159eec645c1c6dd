"""The page ``ech serve`` answers with: what the handshake was.

Each request, whatever its method and path, gets a JSON object naming the
ECH outcome and the negotiated parameters, so clients (ours, browsers,
curl) can see what the server saw. It is an :mod:`ech.http` handler, so it
answers over HTTP/1.1, HTTP/2 and HTTP/3 alike.

A request sent as 0-RTT data (``ech serve --early-data``) is answered like
any other, and like any other only once the handshake is complete
(:mod:`ech.http.server` says why that makes a replay harmless, RFC 8470
§3); ``early_data`` says whether the connection's early data was
accepted, in which case the request answered first is the one sent early.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii

from ech.aio import TLSStream
from ech.events import HandshakeComplete
from ech.http import ConnectionInfo, Request, Response, serve_http, text_response
from ech.http.messages import HTTP_1_1, HTTP_2, HTTP_3

__all__ = ["flat_json", "serve_status", "status_fields", "status_page"]


def status_fields(handshake: HandshakeComplete) -> dict[str, str | bool | None]:
    """The fields ``ech serve`` reports, named as ``ech connect --json`` prints them."""
    return {
        "ech_status": str(handshake.ech_status),
        "outer_server_name": handshake.outer_server_name,
        "server_name": handshake.server_name,
        "tls_version": handshake.version,
        "cipher_suite": str(handshake.cipher_suite),
        "group": str(handshake.group) if handshake.group is not None else None,
        "alpn": handshake.alpn_protocol,
        "resumed": handshake.resumed,
        "hello_retry": handshake.hello_retry,
        "early_data": str(handshake.early_data),
    }


#: ``http_version`` as the status page reports it: the ALPN token (RFC 7301).
HTTP_VERSIONS = {HTTP_1_1: "http/1.1", HTTP_2: "h2", HTTP_3: "h3"}

_JSON = (("content-type", "application/json"),)


async def status_page(request: Request, info: ConnectionInfo) -> Response:
    """The status JSON of the connection ``request`` came on.

    Besides :func:`status_fields`, ``http_version``: ``http/1.1``, ``h2`` or
    ``h3``, the HTTP the request came in; and ``client_certificate_subject``:
    the subject (RFC 4514) of the certificate the client authenticated with
    (``ech serve --client-ca``, RFC 8446 §4.4.2; with ECH in the inner
    handshake), or null.
    """
    if info.tls is None:  # only ever served over TLS
        return text_response(404, "not found")
    fields = status_fields(info.tls)
    fields["http_version"] = HTTP_VERSIONS[info.http_version]
    fields["client_certificate_subject"] = info.tls.client_certificate_subject
    return Response(200, _JSON, flat_json(fields))


#: The JSON literals of the scalars that are not strings.
_LITERALS = {None: "null", True: "true", False: "false"}


def _json_scalar(value: str | bool | None) -> str:
    if isinstance(value, str):
        return encode_basestring_ascii(value)  # what json.dumps does for a str
    return _LITERALS[value]


def flat_json(fields: dict[str, str | bool | None]) -> bytes:
    """``json.dumps(fields, indent=2)`` and a newline, for flat scalar fields.

    The same bytes, several times faster: ``indent`` makes :mod:`json` run
    its pure-Python encoder over the whole object, which cost more than
    anything else the page does; here each string goes through the C
    string encoder alone, between fixed punctuation.
    """
    if not fields:
        return b"{}\n"
    lines = ",\n".join(
        f"  {_json_scalar(name)}: {_json_scalar(value)}"
        for name, value in fields.items()
    )
    return f"{{\n{lines}\n}}\n".encode()


async def serve_status(stream: TLSStream) -> None:
    """Answer every request on ``stream`` with the status page."""
    await serve_http(stream, status_page)
