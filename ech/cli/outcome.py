"""What a connection's outcome means, in one plain line, for people and for JSON.

``connect``, ``get`` and ``diagnose`` report many fields; the question a
person asks is one: did the network see the name? :func:`summarize` answers
it from the same fields ``--json`` prints (``ech_status``, ``ech_reason``,
``outer_server_name``, ``retried``, ``error``), so the text line and the
JSON ``summary`` and ``name_visible_to_network`` can never disagree.
:func:`plain_error` turns the errors people meet first (an untrusted
certificate, a refused connection) into what to do about them.

Colour: only on a terminal, never with ``NO_COLOR`` set (no-color.org) or
``TERM=dumb``; the words alone carry the meaning.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TextIO

from ech.errors import ECHRejectedError, ECHUnavailableError, TLSError

__all__ = [
    "Summary",
    "nothing_sent",
    "paint",
    "plain_error",
    "summarize",
    "use_colour",
]

Level = Literal["ok", "warning", "failed"]

_COLOURS: dict[Level, str] = {"ok": "32", "warning": "33", "failed": "31"}

#: Why GREASE was sent instead of ECH, by ``ech_reason``.
_GREASE_WHY = {
    "grease_requested": "GREASE as asked, no ECH config given",
    "record_without_ech": "GREASE, no usable config: the HTTPS record has no ech",
    "no_https_record": "GREASE, no usable config: no HTTPS record was found",
    "no_supported_config": "GREASE, no usable config: none of them is supported",
}


@dataclass(frozen=True)
class Summary:
    """The outcome in one line.

    Attributes:
        line: The sentence people read last.
        level: ``ok``, ``warning`` (it worked but the name was visible) or
            ``failed``.
        name_visible: Whether the real name crossed the network in clear.
    """

    line: str
    level: Level
    name_visible: bool

    def fields(self) -> dict[str, object]:
        """The ``--json`` fields: ``summary`` and ``name_visible_to_network``."""
        return {"summary": self.line, "name_visible_to_network": self.name_visible}


def summarize(result: Mapping[str, object], name: str, *, sent: bool) -> Summary:
    """The plain line for a connection to ``name`` that produced ``result``.

    Args:
        result: The command's JSON fields (``ech_status``, ``ech_reason``,
            ``outer_server_name``, ``retried``, ``error``, ``failure``: the
            plain error).
        name: The real server name asked for.
        sent: Whether a ClientHello went out (False when the connection was
            refused or DNS failed first): nothing sent shows no name.
    """
    status = result.get("ech_status")
    reason = str(result.get("ech_reason") or "")
    if result.get("error") is not None:
        failure = result.get("failure") or result["error"]
        visible = sent and status in ("grease", "not_offered")
        return Summary(
            f"FAILED: {failure}; {_reached(status, reason, name, sent)}",
            "failed",
            visible,
        )
    if status == "accepted":
        retried = ""
        if result.get("retried"):
            retried = " after one retry with the server's new configs"
        outer = result.get("outer_server_name") or "the public name"
        line = f"ECH accepted{retried}: the network saw {outer}; {name} stayed "
        return Summary(line + "encrypted", "ok", False)
    if status == "grease":
        why = _GREASE_WHY.get(reason, "GREASE, no usable config")
        line = f"WARNING: {name} was sent in clear ({why})"
        return Summary(line, "warning", True)
    line = (
        f"WARNING: ECH not offered: the network saw {name}; to hide it, pass "
        "--ech-config-list B64|@FILE or --doh URL"
    )
    return Summary(line, "warning", True)


def _reached(status: object, reason: str, name: str, sent: bool) -> str:
    """How far ECH got on a connection that failed."""
    grease_why = _GREASE_WHY.get(reason, "GREASE, no usable config")
    if not sent:
        if status == "grease":
            return f"nothing was sent (it would have been {grease_why})"
        return "nothing was sent"
    return {
        "offered": "ECH was offered, the handshake did not complete",
        "rejected": f"ECH was rejected, {name} stayed encrypted",
        "grease": f"{name} was sent in clear ({grease_why})",
        "not_offered": f"ECH was not offered, {name} was sent in clear",
    }.get(str(status), "no handshake completed")


def plain_error(
    error: BaseException,
    name: str,
    *,
    cafile: str | None,
    where: tuple[str, int] | None = None,
) -> str:
    """What went wrong and how to fix it, for the errors people meet first.

    Args:
        error: The failure.
        name: The server name the certificate is checked against.
        cafile: ``--ca``, or None for the system store.
        where: The address and port that were tried, if known.
    """
    at = f"{where[0]} port {where[1]}" if where is not None else "the server"
    text = str(error)
    doh_url = getattr(error, "url", None)  # a DNSLookupError (ech.dns: not loaded)
    if doh_url is not None and "CERTIFICATE_VERIFY_FAILED" in text:
        store = "the system store" if cafile is None else f"--ca {cafile}"
        return (
            f"DoH {doh_url}: the DoH server's certificate is not trusted by "
            f"{store}; pass --ca FILE with the CA that signed it (its "
            "certificate must also cover the URL's host)"
        )
    if isinstance(error, ECHRejectedError):
        return error.explain()
    if isinstance(error, ECHUnavailableError):
        return error.detail
    if isinstance(error, TLSError):
        if "candidates exhausted" in text or "no path to a trusted CA" in text:
            if cafile is None:
                return (
                    f"certificate for {name} is not trusted by the system store;"
                    " pass --ca FILE"
                )
            return f"certificate for {name} is not signed by a CA in --ca {cafile}"
        if "subjectAltName" in text:
            return f"the certificate {at} sent does not name {name}"
        if "not valid at validation time" in text:
            return f"the certificate for {name} has expired or is not yet valid"
        return f"{type(error).__name__}: {text} (from {at})"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {at}: is the server running there?"
    if isinstance(error, TimeoutError):
        return f"no answer from {at} in time"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {where[0] if where else name}: {error.strerror}"
    return f"{type(error).__name__}: {text}" + (f" ({at})" if where else "")


def nothing_sent(error: BaseException) -> bool:
    """Whether ``error`` stopped a connection before any ClientHello went out.

    A TCP connection that could not be made (refused, unreachable, a name
    that does not resolve) sent nothing; a reset or a timeout may come after
    the ClientHello, and a TLS error always does.
    """
    cause = error.__cause__ if not isinstance(error, OSError | TLSError) else error
    if isinstance(cause, TLSError):
        return False
    return isinstance(cause, OSError) and not isinstance(
        cause, ConnectionResetError | TimeoutError
    )


def use_colour(stream: TextIO) -> bool:
    """Whether to colour ``stream``: a terminal, without NO_COLOR or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def paint(summary: Summary, stream: TextIO) -> str:
    """The summary's line, coloured by its level when :func:`use_colour`."""
    if not use_colour(stream):
        return summary.line
    return f"\033[{_COLOURS[summary.level]}m{summary.line}\033[0m"
