"""Reusable helpers for the unit and property tests.

In-memory pumping of bytes between a client and a server, plaintext record
and handshake-message slicing for editing messages in flight, deterministic
randomness and key shares, and alert assertions.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import ech
from ech.events import ConnectionClosed, Event, SessionTicketReceived
from ech.pki import TestCA, write_private_key
from ech.tls.enums import AlertDescription, ContentType, NamedGroup
from ech.tls.groups import KeyShare
from ech.tls.handshake import Epoch
from ech.tls.wire import Reader, Writer

SERVER_NAME = "example.test"

Connection = ech.ClientConnection | ech.ServerConnection


# records and handshake messages ------------------------------------------------


def parse_records(data: bytes) -> list[tuple[int, bytes]]:
    """Cut a byte stream into ``(content_type, fragment)`` records."""
    out: list[tuple[int, bytes]] = []
    r = Reader(data)
    while r.remaining():
        content_type = r.u8()
        r.u16()
        out.append((content_type, r.opaque(2)))
    return out


def build_record(content_type: int, fragment: bytes) -> bytes:
    """A plaintext record with legacy version 0x0303."""
    w = Writer()
    w.u8(content_type)
    w.u16(0x0303)
    w.opaque(2, fragment)
    return w.getvalue()


def join_records(records: Iterable[tuple[int, bytes]]) -> bytes:
    """Inverse of :func:`parse_records`."""
    return b"".join(build_record(t, f) for t, f in records)


def split_handshake(payload: bytes) -> list[tuple[int, bytes]]:
    """Cut a handshake record payload into ``(msg_type, body)`` messages."""
    out: list[tuple[int, bytes]] = []
    r = Reader(payload)
    while r.remaining():
        msg_type = r.u8()
        out.append((msg_type, r.opaque(3)))
    return out


def frame(msg_type: int, body: bytes) -> bytes:
    """A handshake message with its 4-byte header."""
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


def plain_alert(description: int) -> bytes:
    """The bytes of an unencrypted fatal alert record."""
    return bytes((0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description))


def edit_first_handshake_record(
    data: bytes, edit: Callable[[int, bytes], bytes]
) -> bytes:
    """Rewrite the first (plaintext) handshake message in a flight.

    ``edit(msg_type, body)`` returns the new body. Only the first record is
    touched; it must hold exactly one handshake message.
    """
    records = parse_records(data)
    content_type, fragment = records[0]
    assert content_type == ContentType.HANDSHAKE
    ((msg_type, body),) = split_handshake(fragment)
    records[0] = (content_type, frame(msg_type, edit(msg_type, body)))
    return join_records(records)


def rewrite_protected_messages(
    conn: Connection, rewrite: Callable[[int, bytes], bytes]
) -> None:
    """Edit ``conn``'s encrypted handshake messages in flight.

    ``rewrite(index, message)`` sees the ``index``-th handshake message sent
    under protection (with its header, after the transcript took it) and
    returns what to send instead (nothing if empty). It goes through the
    connection's public ``outgoing_message_hook``, so the handshake's own
    logic is untouched.
    """
    count = itertools.count()

    def hook(epoch: Epoch, message: bytes) -> bytes:
        if epoch is Epoch.INITIAL:
            return message
        return rewrite(next(count), message)

    conn.outgoing_message_hook = hook


def edit_messages(
    conn: Connection, msg_type: int, edit: Callable[[bytes], bytes]
) -> None:
    """Replace the body of every outgoing ``msg_type`` message by ``edit(body)``."""

    def hook(epoch: Epoch, message: bytes) -> bytes:
        ((sent_type, body),) = split_handshake(message)
        return frame(msg_type, edit(body)) if sent_type == msg_type else message

    conn.outgoing_message_hook = hook


# randomness ------------------------------------------------------------------------


class DeterministicRandom:
    """A reproducible ``random(n)`` source: SHA-256 in counter mode."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            block = self._counter.to_bytes(8, "big")
            out += hashlib.sha256(self._seed + block).digest()
            self._counter += 1
        return bytes(out[:n])


def deterministic_key_share_factory(
    random: Callable[[int], bytes],
) -> Callable[[int], KeyShare]:
    """A ``key_share_factory`` drawing private keys from ``random``."""

    def factory(group: int) -> KeyShare:
        if group == NamedGroup.X25519:
            xkey = x25519.X25519PrivateKey.from_private_bytes(random(32))
            return KeyShare(
                NamedGroup.X25519,
                xkey.public_key().public_bytes_raw(),
                lambda peer: xkey.exchange(
                    x25519.X25519PublicKey.from_public_bytes(peer)
                ),
            )
        if group in (NamedGroup.SECP256R1, NamedGroup.SECP384R1):
            curve: ec.EllipticCurve = (
                ec.SECP256R1() if group == NamedGroup.SECP256R1 else ec.SECP384R1()
            )
            scalar = int.from_bytes(random(16), "big") + 1
            ekey = ec.derive_private_key(scalar, curve)
            public = ekey.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
            return KeyShare(
                NamedGroup(group),
                public,
                lambda peer: ekey.exchange(
                    ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(curve, peer)
                ),
            )
        if group == NamedGroup.X25519MLKEM768:
            kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(random(64))
            xkey2 = x25519.X25519PrivateKey.from_private_bytes(random(32))

            def complete(peer: bytes) -> bytes:
                if len(peer) != 1088 + 32:
                    raise ValueError("bad share")
                return kem.decapsulate(peer[:1088]) + xkey2.exchange(
                    x25519.X25519PublicKey.from_public_bytes(peer[1088:])
                )

            return KeyShare(
                NamedGroup.X25519MLKEM768,
                kem.public_key().public_bytes_raw()
                + xkey2.public_key().public_bytes_raw(),
                complete,
            )
        raise ValueError(f"unsupported group {group:#06x}")

    return factory


def deterministic_configs(
    ca_certificate: x509.Certificate,
    certificate: ech.CertifiedKey,
    seed: bytes,
    now: float,
) -> tuple[ech.ClientConfig, ech.ServerConfig]:
    """Configs whose every random choice comes from ``seed``.

    Byte-for-byte reproducible when ``certificate`` signs deterministically
    (Ed25519) and no X25519MLKEM768 share is answered (ML-KEM encapsulation
    draws its own randomness).
    """
    crandom = DeterministicRandom(b"client" + seed)
    srandom = DeterministicRandom(b"server" + seed)
    client = ech.ClientConfig(
        trust_store=(ca_certificate,),
        random=crandom,
        now=lambda: now,
        key_share_factory=deterministic_key_share_factory(crandom),
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
        key_share_groups=(NamedGroup.X25519,),
    )
    server = ech.ServerConfig(
        certificates=(certificate,),
        random=srandom,
        now=lambda: now,
        key_share_factory=deterministic_key_share_factory(srandom),
        ticket_key=b"\x01" * 32,
        cookie_key=b"\x02" * 32,
        groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
    )
    return client, server


# pumping ----------------------------------------------------------------------------


@dataclass
class Pair:
    """A client and a server with the events each has reported so far."""

    client: ech.ClientConnection
    server: ech.ServerConnection
    client_events: list[Event]
    server_events: list[Event]
    #: Every chunk of bytes delivered, in order: (sender, bytes).
    log: list[tuple[str, bytes]]

    def to_server(self) -> bytes:
        """Deliver everything the client queued to the server."""
        data = self.client.data_to_send()
        if data:
            self.log.append(("client", data))
            self.server_events.extend(self.server.receive_data(data))
        return data

    def to_client(self) -> bytes:
        """Deliver everything the server queued to the client."""
        data = self.server.data_to_send()
        if data:
            self.log.append(("server", data))
            self.client_events.extend(self.client.receive_data(data))
        return data

    def pump(self, max_rounds: int = 20) -> None:
        """Move bytes both ways until neither side has anything to send."""
        for _ in range(max_rounds):
            moved = self.to_server()
            moved += self.to_client()
            if not moved:
                return
        raise AssertionError("connections never went quiet")


def make_pair(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    server_name: str | None = SERVER_NAME,
    session: ech.SessionTicket | None = None,
    *,
    client_cls: type[ech.ClientConnection] = ech.ClientConnection,
    server_cls: type[ech.ServerConnection] = ech.ServerConnection,
) -> Pair:
    """A started client and a fresh server; nothing delivered yet."""
    client = client_cls(client_config, server_name, session=session)
    server = server_cls(server_config)
    client.start()
    return Pair(client, server, [], [], [])


def handshake(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    server_name: str | None = SERVER_NAME,
    session: ech.SessionTicket | None = None,
) -> tuple[ech.ClientConnection, ech.ServerConnection, list[Event], list[Event]]:
    """Run a whole handshake in memory (tickets included).

    Returns:
        ``(client, server, client_events, server_events)``.
    """
    pair = make_pair(client_config, server_config, server_name, session)
    pair.pump()
    return pair.client, pair.server, pair.client_events, pair.server_events


def normalize_events(events: Iterable[Event]) -> list[object]:
    """Events comparable across runs: tickets reduced to their stable fields."""
    out: list[object] = []
    for event in events:
        if isinstance(event, SessionTicketReceived):
            t = event.ticket
            out.append(("ticket", t.cipher_suite, t.server_name, t.alpn_protocol))
        else:
            out.append(event)
    return out


# alert assertions -------------------------------------------------------------------


def expect_plain_alert(
    conn: Connection, data: bytes, alert_type: type[ech.Alert]
) -> ech.Alert:
    """Feed ``data``; assert ``alert_type`` and a plaintext alert queued."""
    with pytest.raises(alert_type) as info:
        conn.receive_data(data)
    assert type(info.value) is alert_type
    assert conn.data_to_send() == plain_alert(alert_type.description)
    return info.value


def expect_encrypted_alert(
    conn: Connection,
    data: bytes,
    alert_type: type[ech.Alert],
    peer: Connection,
) -> ech.Alert:
    """Feed ``data``; assert ``alert_type`` and that ``peer`` decrypts the alert."""
    with pytest.raises(alert_type) as info:
        conn.receive_data(data)
    assert type(info.value) is alert_type
    queued = conn.data_to_send()
    records = parse_records(queued)
    assert records, "no alert queued"
    # The alert is the last record, protected: outer type application_data.
    assert records[-1][0] == ContentType.APPLICATION_DATA
    events = peer.receive_data(queued)
    assert events[-1] == ConnectionClosed(AlertDescription(alert_type.description))
    return info.value


# certificates cryptography cannot build ---------------------------------------------


def rsa_pss_leaf(
    ca: TestCA, name: str, directory: Path, *, usage: str = "serverAuth"
) -> ech.CertifiedKey:
    """A leaf whose key carries the RSASSA-PSS OID (RFC 4055), from ``ca``.

    ``cryptography`` writes every RSA public key as rsaEncryption, so the
    ``openssl`` command makes the key and signs the certificate with the
    CA's key (the key of ``rsa_pss_pss_*`` schemes, RFC 8446 §4.2.3).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is missing: apt-get install openssl")
    key, csr, cert = directory / "pss.key", directory / "pss.csr", directory / "pss.pem"
    ca_cert, ca_key = directory / "ca.pem", directory / "ca.key"
    ca_cert.write_bytes(ca.pem)
    write_private_key(ca_key, ca.key)
    extensions = directory / "ext.cnf"
    extensions.write_text(
        f"subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n"
        f"extendedKeyUsage={usage}\n"
    )

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run(
        "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
        "-out", str(key),
    )  # fmt: skip
    run("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-set_serial", "7", "-days", "30", "-extfile", str(extensions),
        "-out", str(cert),
    )  # fmt: skip
    return ech.CertifiedKey.load(cert, key)
