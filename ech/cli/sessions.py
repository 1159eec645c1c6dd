"""``ech connect --session FILE``: session tickets kept from one run to the next.

A TLS 1.3 ticket (RFC 8446 §4.6.1) lets the next connection resume with a
PSK instead of a certificate, and send its first request as 0-RTT data
(§2.3, ``--early-data``) when the ticket allows it. The file holds what
:class:`~ech.tls.session.SessionTicket` holds, as JSON::

    {"format": "ech-session-tickets", "version": 1, "tickets": [
        {"server_name": "secret.example", "ticket": BASE64, "psk": BASE64,
         "cipher_suite": 4865, "alpn_protocol": "http/1.1",
         "ticket_age_add": 12345, "lifetime": 7200, "received_at": 1.7e9,
         "max_early_data_size": 16384}]}

The PSK is a secret: with it anyone can resume as this client and decrypt
the 0-RTT data it sent (whose keys come from the PSK alone, §7.1). So the
file is written with mode 0600 (a new file, renamed over the old one, so
a reader never sees half of it) and its contents are never printed.

Which ticket is used: the newest one still valid for ``--sni`` (the name
the ticket was issued for, the inner name with ECH). A ticket is used
once (§C.4: reuse lets an observer link the connections): after a
successful handshake the file keeps the other tickets still valid and
adds the ones the server just sent.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from ech.arguments import read_file
from ech.keys import write_owner_only
from ech.tls.session import SessionTicket

__all__ = [
    "choose_ticket",
    "load_tickets",
    "parse_tickets",
    "save_tickets",
    "session_file",
    "updated_tickets",
]

FORMAT: Final = "ech-session-tickets"
VERSION: Final = 1


def _encode(ticket: SessionTicket) -> dict[str, Any]:
    return {
        "server_name": ticket.server_name,
        "ticket": base64.b64encode(ticket.ticket).decode("ascii"),
        "psk": base64.b64encode(ticket.psk).decode("ascii"),
        "cipher_suite": ticket.cipher_suite,
        "alpn_protocol": ticket.alpn_protocol,
        "ticket_age_add": ticket.ticket_age_add,
        "lifetime": ticket.lifetime,
        "received_at": ticket.received_at,
        "max_early_data_size": ticket.max_early_data_size,
    }


def _decode(item: dict[str, Any]) -> SessionTicket:
    name, alpn = item["server_name"], item["alpn_protocol"]
    return SessionTicket(
        ticket=base64.b64decode(item["ticket"], validate=True),
        psk=base64.b64decode(item["psk"], validate=True),
        cipher_suite=int(item["cipher_suite"]),
        server_name=str(name) if name is not None else None,
        alpn_protocol=str(alpn) if alpn is not None else None,
        ticket_age_add=int(item["ticket_age_add"]),
        lifetime=int(item["lifetime"]),
        received_at=float(item["received_at"]),
        max_early_data_size=int(item["max_early_data_size"]),
    )


def parse_tickets(data: bytes) -> list[SessionTicket]:
    """The tickets of a session file's contents.

    Raises:
        ValueError: not a session file (the message never quotes it).
    """
    try:
        document = json.loads(data)
        if (
            not isinstance(document, dict)
            or document.get("format") != FORMAT
            or document.get("version") != VERSION
        ):
            raise ValueError
        return [_decode(item) for item in document["tickets"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        # Never echo the contents: they hold PSKs.
        raise ValueError(
            f"not a session file of ech connect ({FORMAT}); give a new file "
            "name, or one that ech connect --session wrote"
        ) from None


def load_tickets(path: Path) -> list[SessionTicket]:
    """The tickets in ``path``; none when it does not exist yet.

    Raises:
        ValueError: it exists but cannot be read or is not a session file.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror}") from None
    try:
        return parse_tickets(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def session_file(text: str) -> Path:
    """``--session FILE``: a session file, or a new one in an existing directory.

    Read now when it exists, so a wrong file fails before anything is sent.
    """
    path = Path(text)
    if not text or path.exists():
        try:
            parse_tickets(read_file(text))
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text}: {error}") from None
    elif not path.parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text}: no such directory to write it in; create it first"
        )
    return path


def choose_ticket(
    tickets: Iterable[SessionTicket], server_name: str, now: float
) -> SessionTicket | None:
    """The newest ticket still valid for ``server_name`` (RFC 8446 §4.6.1)."""
    usable = [t for t in tickets if t.server_name == server_name and t.is_valid(now)]
    return max(usable, key=lambda t: t.received_at, default=None)


def save_tickets(path: Path, tickets: Sequence[SessionTicket]) -> None:
    """Write ``tickets`` to ``path``, mode 0600, replacing it in one rename.

    The PSKs make it a secret, written as key files are
    (:func:`ech.keys.write_owner_only`).

    Raises:
        OSError: the directory cannot be written.
    """
    document = {
        "format": FORMAT,
        "version": VERSION,
        "tickets": [_encode(ticket) for ticket in tickets],
    }
    data = json.dumps(document, indent=1).encode() + b"\n"
    write_owner_only(path, data)


def updated_tickets(
    kept: Iterable[SessionTicket],
    used: SessionTicket | None,
    received: Iterable[SessionTicket],
    now: float,
) -> list[SessionTicket]:
    """The file's tickets after a connection: ``used`` gone, ``received`` added."""
    return [t for t in kept if t is not used and t.is_valid(now)] + list(received)
