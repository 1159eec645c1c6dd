"""Seed corpora for the harnesses: RFC 8448's traces and our own hellos.

``python -m fuzz.corpus [DIR]`` writes ``DIR/<harness>/<sha1>`` files
(default ``fuzz/corpus``). A coverage-guided fuzzer finds its way much
faster from real inputs than from nothing: RFC 8448's records and messages
(``tests/vectors/``), ECHConfigLists others have published
(:data:`PUBLISHED_LISTS`), and ClientHelloOuters our own client
seals to the fuzzing key, so the server harness starts inside a decrypted
ECH offer. Regression inputs (``fuzz/regressions/<harness>/``) are added
too, so every campaign starts from every crash ever found.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

import ech
from ech.client.ech import COMPRESSED_EXTENSIONS
from ech.config import ECHConfigList
from ech.dns.publish import https_rdata
from ech.extension import parse_client_hello_extension
from ech.hpke import setup_base_recipient
from ech.inner import compress, encode_client_hello_inner
from ech.keys import generate_ech_key
from ech.server.ech import client_hello_outer_aad
from ech.tls.enums import ContentType, ExtensionType, HandshakeType, NamedGroup
from ech.tls.messages import MESSAGE_CLASSES, ClientHello
from ech.tls.wire import Reader, encode_opaque, record_header
from fuzz.harnesses import (
    _CLIENT_HELLO_VIEWS,
    _MESSAGE_TYPES,
    EXTENSION_DECODERS,
    HARNESSES,
    HERE,
    fuzz_key,
)
from tests.vectors import rfc8448

E = ExtensionType
DEFAULT_DIR = HERE / "corpus"
REGRESSIONS = HERE / "regressions"

#: ECHConfigLists published by others: RFC 9848 §3's
#: example, OpenSSL's test key, defo.ie's and Cloudflare's.
PUBLISHED_LISTS = (
    "AEj+DQBEAQAgACAdd+scUi0IYFsXnUIU7ko2Nd9+F8M26pAGZVpz/KrWPgAEAAEAAWQVZWNoLXNpdGVzLmV4YW1wbGUubmV0AAA=",
    "AD7+DQA6bAAgACCY7B0f/3KvHIFdoqFaObdU8YYU+MdBf4vzbLhAAL2QCwAEAAEAAQALZXhhbXBsZS5jb20AAA==",
    "AEb+DQBCqQAgACBlm7cfDx/gKuUAwRTe+Y9MExbIyuLpLcgTORIdi69uewAEAAEAAQATcHVibGljLnRlc3QuZGVmby5pZQAA",
    "AEX+DQBBrAAgACCInfIgdvp+4xqPkMYvPt1Rv7zxtllWm3SjIjWxBoEgfAAEAAEAAQASY2xvdWRmbGFyZS1lY2guY29tAAA=",
)


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(msg_type, body)`` of the handshake messages in a record payload."""
    r = Reader(data)
    while r.remaining():
        msg_type = r.u8()
        yield msg_type, r.opaque(3)


def _records(data: bytes) -> Iterator[tuple[int, bytes]]:
    r = Reader(data)
    while r.remaining():
        content_type = r.u8()
        r.u16()
        yield content_type, r.opaque(2)


def _client_flights() -> list[bytes]:
    """First flights of our client: ECH to the fuzzing key, GREASE, plain."""
    key = fuzz_key()
    configs = ECHConfigList((key.config,))
    base = ech.ClientConfig(
        verify_certificates=False, key_share_groups=(NamedGroup.X25519,)
    )
    variants = [
        (base, configs, "example.test"),
        (dataclasses.replace(base, alpn_protocols=("h2", "http/1.1")), configs, "a.b"),
        (dataclasses.replace(base, compatibility_mode=False), configs, "x" * 40),
        # Only P-256 is wanted by some servers: an HRR-shaped hello.
        (
            dataclasses.replace(
                base,
                groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
                key_share_groups=(NamedGroup.SECP256R1,),
            ),
            configs,
            "example.test",
        ),
        (dataclasses.replace(base, ech_grease=True), None, "example.test"),
        (base, None, "example.test"),
        (base, configs, None),
    ]
    flights = []
    for config, ech_configs, name in variants:
        client = ech.ClientConnection(config, name, ech_configs=ech_configs)
        client.start()
        flights.append(client.data_to_send())
    return flights


def _client_hellos(flights: list[bytes]) -> list[ClientHello]:
    return [
        ClientHello.parse(body)
        for flight in flights
        for content_type, payload in _records(flight)
        if content_type == ContentType.HANDSHAKE
        for msg_type, body in _messages(payload)
        if msg_type == HandshakeType.CLIENT_HELLO
    ]


def _encoded_inners(hellos: list[ClientHello]) -> list[bytes]:
    """u24 EncodedClientHelloInner + ClientHelloOuter, decrypted with our key."""
    key = fuzz_key()
    contents = key.config.contents
    assert contents is not None
    out = []
    for outer in hellos:
        data = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
        offer = parse_client_hello_extension(data) if data else None
        if offer is None or offer.config_id != contents.config_id:
            continue
        context = setup_base_recipient(
            contents.kem_id,
            offer.cipher_suite.kdf_id,
            offer.cipher_suite.aead_id,
            offer.enc,
            key.private_key,
            key.config.hpke_info(),
        )
        encoded = context.open(client_hello_outer_aad(outer, offer), offer.payload)
        out.append(encode_opaque(3, encoded) + outer.encode())
    # And one with nothing compressed, one with everything and no padding.
    if hellos:
        outer = hellos[0]
        whole = compress(outer, [])
        plain = encode_client_hello_inner(whole, 0)
        out.append(encode_opaque(3, plain) + outer.encode())
        types = [e.type for e in outer.extensions if e.type in COMPRESSED_EXTENSIONS]
        most = compress(outer, types)
        padded = encode_client_hello_inner(most, 5)
        out.append(encode_opaque(3, padded) + outer.encode())
    return out


def _config_lists() -> list[bytes]:
    lists = [base64.b64decode(text) for text in PUBLISHED_LISTS]
    key = fuzz_key()
    lists.append(ECHConfigList((key.config,)).encode())
    other = generate_ech_key("other.example", config_id=7, maximum_name_length=64)
    p256 = generate_ech_key("p256.example", config_id=9, kem_id=0x0010)
    unknown = ech.config.ECHConfig(0xFE0C, None, bytes.fromhex("fe0c000400010203"))
    lists.append(ECHConfigList((key.config, other.config, p256.config)).encode())
    lists.append(ECHConfigList((unknown, other.config)).encode())
    return lists


def _https_records() -> list[bytes]:
    lists = [ECHConfigList.parse(b) for b in _config_lists()[-3:]]
    rdatas = [
        https_rdata(lists[0]),
        https_rdata(lists[1], port=8443, alpn=("h2",), ipv4hint=("192.0.2.1",)),
        https_rdata(None, ipv6hint=("2001:db8::1",), target="svc.example.test."),
    ]
    seeds = [b"\x00" + (rd.to_wire() or b"") for rd in rdatas]
    owner = dns.name.from_text("_8443._https.example.test.")
    query = dns.message.make_query(owner, dns.rdatatype.HTTPS)
    response = dns.message.make_response(query)
    rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.HTTPS)
    for rd in rdatas:
        rrset.add(rd, 300)
    response.answer.append(rrset)
    seeds.append(b"\x01" + response.to_wire())
    return seeds


def seeds() -> dict[str, list[bytes]]:
    """Seed inputs by harness name."""
    traces = [rfc8448.load(name) for name in rfc8448.NAMES]
    flights = _client_flights()
    hellos = _client_hellos(flights)
    records: list[bytes] = []
    codec: list[bytes] = []
    framed: list[bytes] = []
    for trace in traces:
        for key, value in trace.items():
            if not isinstance(value, bytes):
                continue
            if key.endswith("_record") and value[:1] in (b"\x16", b"\x17", b"\x15"):
                records.append(b"\x00" + value)
                records.append(b"\x01" + value)
            # A whole handshake message: type, u24 length, body.
            if (
                len(value) >= 4
                and value[0] in MESSAGE_CLASSES
                and int.from_bytes(value[1:4], "big") == len(value) - 4
            ):
                codec.append(bytes((_MESSAGE_TYPES.index(value[0]),)) + value[4:])
                framed.append(value)
    records.extend(b"\x00" + flight for flight in flights)
    # Sealed TLSInnerPlaintexts (mode 2): a message, its type, some padding.
    short = [m for m in framed if len(m) <= 200]
    records.append(
        b"\x02" + b"".join(bytes((len(m) + 3,)) + m + b"\x16\x00\x00" for m in short)
    )
    records.append(b"\x02\x03\x02\x28\x15" + b"\x01\x17" + b"\x00")
    for hello in hellos:
        selector = _MESSAGE_TYPES.index(HandshakeType.CLIENT_HELLO)
        codec.append(bytes((selector,)) + hello.encode())
        for extension in hello.extensions:
            view = _CLIENT_HELLO_VIEWS.get(extension.type)
            if view is not None:
                selector = 128 + EXTENSION_DECODERS.index(view)
                codec.append(bytes((selector,)) + extension.data)
    server = list(flights)
    for trace in traces:
        first = trace.get("client_hello")
        if isinstance(first, bytes):
            server.append(record_header(ContentType.HANDSHAKE, len(first)) + first)
    out = {
        "records": records,
        "handshake_codec": codec,
        "ech_config_list": _config_lists(),
        "encoded_client_hello_inner": _encoded_inners(hellos),
        "https_record": _https_records(),
        "server_client_hello": server,
    }
    for name in out:
        folder = REGRESSIONS / name
        if folder.is_dir():
            out[name].extend(p.read_bytes() for p in sorted(folder.iterdir()))
    assert set(out) == set(HARNESSES)
    return out


def write(directory: Path) -> dict[str, int]:
    """Write the seeds under ``directory``; return how many per harness."""
    counts = {}
    for name, inputs in seeds().items():
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)  # noqa: S324
        counts[name] = len(inputs)
    return counts


def main(argv: list[str]) -> int:
    """``python -m fuzz.corpus [DIR]``."""
    directory = Path(argv[0]) if argv else DEFAULT_DIR
    for name, count in write(directory).items():
        print(f"{name}: {count} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
